// Publishing an adapter folder: check the token (whoAmI), create the repo (private unless asked), and commit the
// adapter, its tokenizer, a model card with a loss chart, and optionally the merged model and a GGUF file.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { commitIter, createRepo, modelInfo, whoAmI, type CommitOperation } from '@huggingface/hub';
import { UserError } from '../../shared/errors.js';
import { adapterWeightsFile, readAdapterConfig } from '../adapter/loraAdapter.js';
import { HUB_REPO_ID, repoPageUrl, type HubAccess, type HubRepo } from './access.js';
import { repoFromSnapshotPath } from './cache.js';
import { errorContext } from './download.js';
import { explainHubError, HubHttpError } from './errors.js';
import { renderLossChart } from './lossChart.js';
import {
  readTrainingFacts,
  renderModelCard,
  type AdapterMethod,
  type ModelCardInput,
  type TrainingFacts,
} from './modelCard.js';

/** Tokenizer files pushed when the adapter folder has them, so the repo loads without the base's tokenizer. */
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.jinja',
  'tokenizer.model',
];
const CHART = 'loss.png';
const MERGED = 'merged';

export interface PushOptions {
  adapterDir: string;
  /** org/name, or a bare name for the token owner's namespace. */
  repoId: string;
  /** Visibility of a new repo (private unless false); an existing repo keeps its own. */
  private?: boolean;
  /** The base model's Hub id, when adapter_config.json records a local folder outside the Hugging Face cache. */
  baseModel?: string;
  /** Training facts for the card; by default ADAPTER_DIR/training.json when present. */
  training?: TrainingFacts;
  /** A merged model folder, pushed under merged/. */
  mergedDir?: string;
  /** A GGUF file, pushed at the repo root under its own name. */
  ggufFile?: string;
  /** The name of the studio run that trained the adapter, for the card. */
  runName?: string;
}

export type PushProgress =
  | { phase: 'checking' | 'creating' | 'preuploading' | 'uploadingLargeFiles' | 'committing' }
  | { phase: 'file'; file: string; state: 'hashing' | 'uploading' | 'error'; progress: number };

export interface PushResult {
  repoId: string;
  repoUrl: string;
  commit: string;
  /** False when the repo existed already (this commit updated it). */
  created: boolean;
  /** The new repo's visibility; null for an existing repo, which keeps its own. */
  private: boolean | null;
  baseModel: string;
  files: string[];
}

/** The Hub id of the base model: given, or read from adapter_config.json (a Hub id, or a snapshot in an HF cache). */
function baseModelId(dir: string, config: Record<string, unknown>, given: string | undefined): string {
  if (given !== undefined) {
    if (!HUB_REPO_ID.test(given)) throw new UserError(`base model "${given}" is not a Hub repo id (organisation/name)`);
    return given;
  }
  const recorded = config.base_model_name_or_path;
  if (typeof recorded === 'string') {
    const snapshot = repoFromSnapshotPath(path.resolve(recorded));
    if (fs.existsSync(recorded) && snapshot) return snapshot.name;
    if (!fs.existsSync(recorded) && HUB_REPO_ID.test(recorded)) return recorded;
  }
  throw new UserError(
    `${path.join(dir, 'adapter_config.json')}: base_model_name_or_path ${JSON.stringify(recorded)} is not a Hub repo id; pass --base-model ORGANISATION/NAME (the model it was trained on)`,
  );
}

function adapterMethod(dir: string, config: Record<string, unknown>): AdapterMethod {
  if (config.peft_type === 'LORA') return 'lora';
  if (config.peft_type === 'PROMPT_TUNING') return 'prompt-tuning';
  throw new UserError(
    `${path.join(dir, 'adapter_config.json')}: peft_type ${JSON.stringify(config.peft_type)} is not supported (LORA, PROMPT_TUNING)`,
  );
}

function checkFile(file: string, what: string): string {
  const absolute = path.resolve(file);
  if (!fs.statSync(absolute, { throwIfNoEntry: false })?.isFile())
    throw new UserError(`${absolute}: ${what} not found`);
  return absolute;
}

const blob = (content: string | Uint8Array) =>
  new Blob([typeof content === 'string' ? content : new Uint8Array(content)]);

interface AdapterFolder {
  dir: string;
  config: Record<string, unknown>;
  method: AdapterMethod;
  weights: string;
  baseModel: string;
  training: TrainingFacts | undefined;
  tokenizerFiles: string[];
  merged?: string;
  gguf?: string;
  runName?: string;
}

/** Everything local, checked before the first request. */
function readAdapterFolder(options: PushOptions): AdapterFolder {
  const dir = path.resolve(options.adapterDir);
  const config = readAdapterConfig(dir);
  return {
    dir,
    config,
    method: adapterMethod(dir, config),
    weights: adapterWeightsFile(dir),
    baseModel: baseModelId(dir, config, options.baseModel),
    training: options.training ?? readTrainingFacts(path.join(dir, 'training.json')),
    runName: options.runName,
    tokenizerFiles: TOKENIZER_FILES.filter((f) => fs.statSync(path.join(dir, f), { throwIfNoEntry: false })?.isFile()),
    merged:
      options.mergedDir === undefined
        ? undefined
        : path.dirname(checkFile(path.join(options.mergedDir, 'config.json'), 'config.json of the merged model')),
    gguf: options.ggufFile === undefined ? undefined : checkFile(options.ggufFile, 'GGUF file'),
  };
}

/** The commit's files: the adapter, its tokenizer, the chart, the extras and the card that describes them. */
function commitOperations(
  adapter: AdapterFolder,
  repoId: string,
  hubUrl: string,
  license: ModelCardInput['license'],
): CommitOperation[] {
  const add = (file: string, content: Blob | URL): CommitOperation => ({
    operation: 'addOrUpdate',
    path: file,
    content,
  });
  // The uploaded config names the Hub base model: a local path would not load elsewhere and would publish the
  // user's folder names.
  const config: Record<string, unknown> = { ...adapter.config, base_model_name_or_path: adapter.baseModel };
  if (typeof adapter.config.tokenizer_name_or_path === 'string') config.tokenizer_name_or_path = adapter.baseModel;
  const operations = [
    add('adapter_config.json', blob(JSON.stringify(config, null, 2) + '\n')),
    add('adapter_model.safetensors', pathToFileURL(adapter.weights)),
    ...adapter.tokenizerFiles.map((f) => add(f, pathToFileURL(path.join(adapter.dir, f)))),
  ];
  const losses = adapter.training?.losses ?? [];
  if (losses.length) operations.push(add(CHART, blob(renderLossChart(losses))));
  // The library uploads the folder's files.
  if (adapter.merged) operations.push(add(MERGED, pathToFileURL(adapter.merged)));
  if (adapter.gguf) operations.push(add(path.basename(adapter.gguf), pathToFileURL(adapter.gguf)));
  operations.push(add('README.md', blob(cardFor(adapter, repoId, hubUrl, license))));
  return operations;
}

function cardFor(adapter: AdapterFolder, repoId: string, hubUrl: string, license: ModelCardInput['license']): string {
  return renderModelCard({
    repoId,
    baseModel: adapter.baseModel,
    hubUrl,
    method: adapter.method,
    adapterConfig: adapter.config,
    license,
    training: adapter.training,
    chart: adapter.training?.losses?.length ? CHART : undefined,
    merged: adapter.merged && MERGED,
    gguf: adapter.gguf && path.basename(adapter.gguf),
    hasTokenizer: adapter.tokenizerFiles.includes('tokenizer.json'),
    runName: adapter.runName,
  });
}

/** The README.md a push would write, from local files only (the base model's license is looked up at push time). */
export function previewModelCard(options: PushOptions, hubUrl: string): string {
  return cardFor(readAdapterFolder(options), options.repoId, hubUrl, undefined);
}

export async function pushAdapter(
  hub: HubAccess,
  options: PushOptions,
  onProgress: (progress: PushProgress) => void = () => {},
): Promise<PushResult> {
  const adapter = readAdapterFolder(options);
  let repo: HubRepo = { type: 'model', name: options.repoId };
  const what = () => `push ${repo.name}`;
  const ctx = () => errorContext(hub, repo, 'run the same command again');
  const tokens = `${hub.hubUrl}/settings/tokens`;
  if (!hub.token) throw new UserError(`${what()}: no token; set HF_TOKEN to a write token from ${tokens}`);
  const common = { hubUrl: hub.hubUrl, fetch: hub.fetch, accessToken: hub.token };

  onProgress({ phase: 'checking' });
  let user: Awaited<ReturnType<typeof whoAmI>>;
  try {
    user = await whoAmI(common);
  } catch (err) {
    if (err instanceof HubHttpError && err.status === 401)
      throw new UserError(
        `${what()}: the Hub refused the token in HF_TOKEN (401: invalid or expired); create a write token at ${tokens}`,
      );
    throw explainHubError(err, `${what()}: check the token`, ctx());
  }
  if (user.auth.accessToken?.role === 'read')
    throw new UserError(`${what()}: the token in HF_TOKEN is read-only; create a write token at ${tokens}`);
  if (!options.repoId.includes('/')) repo = { type: 'model', name: `${user.name}/${options.repoId}` };
  if (!HUB_REPO_ID.test(repo.name))
    throw new UserError(`${what()}: not a repo id (organisation/name, letters, digits, - _ .)`);

  let license: ModelCardInput['license'];
  try {
    const { cardData } = await modelInfo({ ...common, name: adapter.baseModel, additionalFields: ['cardData'] });
    license = {
      license: cardData?.license,
      license_name: cardData?.license_name,
      license_link: cardData?.license_link,
    };
  } catch (err) {
    throw explainHubError(err, `${what()}: look up base model ${adapter.baseModel}`, {
      ...ctx(),
      repoId: adapter.baseModel,
      repoUrl: repoPageUrl(hub, { type: 'model', name: adapter.baseModel }),
    });
  }
  const operations = commitOperations(adapter, repo.name, hub.hubUrl, license);

  onProgress({ phase: 'creating' });
  const wantPrivate = options.private !== false;
  let created = true;
  try {
    await createRepo({ ...common, repo, visibility: wantPrivate ? 'private' : 'public' });
  } catch (err) {
    if (!(err instanceof HubHttpError && err.status === 409))
      throw explainHubError(err, `${what()}: create the repo`, ctx());
    created = false; // it exists: this push adds a commit to it
  }

  try {
    // useXet: false keeps to the Hub's LFS protocol (basic PUT, multipart for large files), which the Hub accepts
    // and the loopback test server implements, so the path tested is the path taken.
    const commit = commitIter({
      ...common,
      repo,
      operations,
      title: `Upload ${adapter.method} adapter with PEFT Studio`,
      useXet: false,
    });
    let step = await commit.next();
    while (!step.done) {
      const event = step.value;
      onProgress(
        event.event === 'phase'
          ? { phase: event.phase }
          : { phase: 'file', file: event.path, state: event.state, progress: event.progress },
      );
      step = await commit.next();
    }
    const merged = adapter.merged;
    const mergedFiles = merged
      ? (fs.readdirSync(merged, { recursive: true }) as string[])
          .filter((f) => fs.statSync(path.join(merged, f)).isFile())
          .map((f) => `${MERGED}/${f.split(path.sep).join('/')}`)
      : [];
    return {
      repoId: repo.name,
      repoUrl: repoPageUrl(hub, repo),
      commit: step.value?.commit.oid ?? '',
      created,
      private: created ? wantPrivate : null,
      baseModel: adapter.baseModel,
      files: [...operations.filter((op) => op.path !== MERGED).map((op) => op.path), ...mergedFiles].sort(),
    };
  } catch (err) {
    throw explainHubError(err, `${what()}: upload`, ctx());
  }
}
