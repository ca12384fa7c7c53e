// adapters.import and `peft-studio import`: a PEFT adapter trained elsewhere (a folder, or a Hub repo) copied into the
// studio's adapters/ folder and recorded in the library on a base model the studio can open, optionally as the
// adapter of the run that was handed over (its lineage, playground, exports and model card then work as for a local
// run). Every check (PEFT type, targets, base model, tensor shapes) runs before anything is copied.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../../shared/errors.js';
import type { AdapterRecord, ModelRecord, RunRecord } from '../../../shared/runs.js';
import type { DataFormat, TrainJob } from '../../../shared/training.js';
import { realPath, studioPlaces } from '../../adapter/adapterFiles.js';
import { loadAdapter } from '../../adapter/anyAdapter.js';
import { copyForeignAdapter, findForeignAdapter, type ForeignAdapter } from '../../adapter/importAdapter.js';
import { rendersThroughChatTemplate } from '../../data/render.js';
import { DEMO_MODEL_DIR } from '../../demo.js';
import { HUB_REPO_ID, type HubAccess, type HubRepo } from '../../hub/access.js';
import { downloadAdapterRepo, parseHubSource } from '../../hub/adapterDownload.js';
import { cachedSnapshot } from '../../hub/cache.js';
import type { DownloadProgress } from '../../hub/download.js';
import { loadChatTemplate } from '../../model/chatTemplate.js';
import { openModelFolder } from '../../model/modelFolder.js';
import type { Store } from '../../store/store.js';
import { adapterBaseModel } from '../../engine/jobs/trainer.js';
import { describeModelFolder } from '../runs/modelRecord.js';
import { explainFileError } from '../../util/fileErrors.js';

export interface ImportRequest {
  /** An adapter folder (absolute path), or a Hub repo id: org/name, optionally @revision. */
  source: string;
  /** The run that was handed over: the adapter becomes its adapter. */
  runId?: number | null;
  /** The folder's name under <home>/adapters/; by default made from the source's name. */
  name?: string;
}

export interface ImportResult {
  adapter: AdapterRecord;
  /** The checkpoint-N folder the adapter was taken from, when the source had none at its top. */
  checkpoint: string | null;
}

/** A folder name of letters, digits, - _ . (not starting with a dot): it names the copy under adapters/. */
const ADAPTER_NAME = /^[A-Za-z0-9_][\w.-]{0,99}$/;

const readJson = (file: string): Record<string, unknown> => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Imports `request.source` into `store`'s library; Hub downloads report through `onProgress`. */
export async function importAdapter(
  store: Store,
  hub: () => HubAccess,
  request: ImportRequest,
  onProgress: (progress: DownloadProgress) => void = () => {},
): Promise<ImportResult> {
  const run = request.runId ? linkableRun(store, request.runId) : null;
  if (request.name !== undefined && !ADAPTER_NAME.test(request.name))
    throw new UserError(
      `adapter name ${JSON.stringify(request.name.slice(0, 100))}: use letters, digits, - _ and . (up to 100; it names the adapter's folder)`,
    );
  const { dir, origin, defaultName, staged } = await fetchSource(hub, request.source.trim(), onProgress);
  try {
    return importFrom(store, hub, request, run, { dir, origin, defaultName });
  } catch (err) {
    // A Hub adapter is read from a copy of its snapshot: the messages name the repo, not that temp folder.
    if (staged && err instanceof UserError) throw new UserError(err.message.split(dir).join(origin));
    throw err;
  } finally {
    if (staged) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Checks the adapter in `dir` against its base (the run's model, or the one it names), then copies and records it. */
function importFrom(
  store: Store,
  hub: () => HubAccess,
  request: ImportRequest,
  run: RunRecord | null,
  { dir, origin, defaultName }: { dir: string; origin: string; defaultName: string },
): ImportResult {
  const adapter = findForeignAdapter(dir);
  const base = run ? runBase(store, run, adapter) : libraryBase(store, hub(), adapter);
  if (run && adapter.method !== run.method)
    throw new UserError(
      `${adapter.dir}: a ${methodName(adapter.method)} adapter, but run ${run.id} trained ${methodName(run.method)}`,
    );
  checkLoads(adapter, base, run);

  const name = request.name ?? freeName(store.home, defaultName);
  const outDir = path.join(store.home, 'adapters', name);
  const dataset = run?.datasetId ? store.dataset(run.datasetId) : null;
  const manifest = copyForeignAdapter(adapter, {
    outDir,
    places: studioPlaces(store),
    chatTemplate: run ? trainedThroughTemplate(run.job, (dataset?.format as DataFormat | undefined) ?? null) : null,
    chatTemplateFile: run?.job.data.chatTemplate ?? null,
    training: trainingRecord(adapter, run, dataset?.sha256 ?? null),
  });
  const parent = run?.job.initAdapterDir ? store.adapterByFolder(run.job.initAdapterDir) : null;
  const record = store.addAdapter(
    {
      runId: run?.id ?? null,
      parentAdapterId: parent?.id ?? null,
      folder: outDir,
      method: adapter.method,
      baseModelId: base.id,
      metrics: {
        finalLoss: adapter.trainer?.finalLoss ?? null,
        evalLoss: adapter.trainer?.evalLoss ?? null,
        steps: adapter.trainer?.steps ?? 0,
      },
      origin: adapter.checkpoint ? `${origin}/${adapter.checkpoint}` : origin,
    },
    manifest,
  );
  if (run) {
    // The run finished elsewhere: its page shows this adapter as a finished local run's, and its log says where from.
    store.appendLog(run.id, [`adapter ${record.id} trained elsewhere, imported from ${record.origin} into ${outDir}`]);
    if (run.status !== 'completed') store.setRunStatus(run.id, 'completed');
  }
  return { adapter: record, checkpoint: adapter.checkpoint };
}

const methodName = (method: string) => (method === 'lora' ? 'LoRA' : 'prompt-tuning');

/** The run an import may become the adapter of: one no engine is writing an adapter for right now. */
function linkableRun(store: Store, id: number): RunRecord {
  const run = store.run(id);
  if (!run) throw new UserError(`run ${id}: no such run`);
  if (run.status === 'queued' || run.status === 'running')
    throw new UserError(`run ${id} is ${run.status} here: cancel it before importing the adapter trained elsewhere`);
  return run;
}

/**
 * The adapter's folder on this computer: `source` itself, or a temp copy of its Hub repo's snapshot (`staged`): the
 * snapshot's files are links into the cache's blobs, which the adapter loader refuses in a folder.
 */
async function fetchSource(
  hub: () => HubAccess,
  source: string,
  onProgress: (progress: DownloadProgress) => void,
): Promise<{ dir: string; origin: string; defaultName: string; staged: boolean }> {
  if (path.isAbsolute(source)) {
    const dir = path.resolve(source);
    return { dir, origin: dir, defaultName: `imported-${path.basename(dir)}`, staged: false };
  }
  const hubSource = parseHubSource(source);
  if (!hubSource)
    throw new UserError(
      `${JSON.stringify(source.slice(0, 200))}: neither an adapter folder (give its full path) nor a Hub repo id (organisation/name, optionally @revision)`,
    );
  const { repoId, revision } = hubSource;
  const snapshot = await downloadAdapterRepo(hub(), repoId, revision, onProgress);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-studio-import-'));
  try {
    for (const name of fs.readdirSync(snapshot.dir))
      if (fs.statSync(path.join(snapshot.dir, name)).isFile())
        fs.copyFileSync(path.join(snapshot.dir, name), path.join(dir, name));
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw explainFileError(err, dir) ?? err;
  }
  return {
    dir,
    origin: `hub:${repoId}@${snapshot.commit}`,
    defaultName: `imported-${repoId.replace('/', '-')}`,
    staged: true,
  };
}

/** `wanted`, or `wanted-2`, `wanted-3`... : the first name under <home>/adapters/ not taken. */
function freeName(home: string, wanted: string): string {
  const clean = wanted.replace(/[^\w.-]/g, '-').slice(0, 90);
  for (let n = 1; ; n++) {
    const name = n === 1 ? clean : `${clean}-${n}`;
    if (!fs.existsSync(path.join(home, 'adapters', name))) return name;
  }
}

/** How the lists name a model: its Hub id, or its folder. */
const modelName = (model: ModelRecord) => model.location;

/**
 * The run's own model, when the adapter's recorded base is that model (its folder, the Hub id it came from, the name
 * the studio writes into its adapters) or a path that means nothing on this computer (a folder on the machine it was
 * trained on: its tensor shapes are checked against the run's model instead). Any other model is refused.
 */
function runBase(store: Store, run: RunRecord, adapter: ForeignAdapter): ModelRecord {
  const model = store.model(run.modelId);
  if (!model) throw new UserError(`run ${run.id}: its model (record ${run.modelId}) is gone from the library`);
  const recorded = adapter.baseModel;
  if (recorded === null) return model;
  const names = new Set([model.location, model.folder, run.job.modelDir, adapterBaseModel(run.job.modelDir)]);
  if (names.has(recorded)) return model;
  const here = path.isAbsolute(recorded) && fs.existsSync(recorded) ? realPath(recorded) : null;
  if (here && here === realPath(model.folder)) return model;
  const namesAModel = here !== null || HUB_REPO_ID.test(recorded);
  if (!namesAModel) return model;
  throw new UserError(
    `${path.join(adapter.dir, 'adapter_config.json')}: the adapter's base model is ${JSON.stringify(recorded)}, but run ${run.id} was trained on ${JSON.stringify(modelName(model))}; import it without linking it to run ${run.id}, or link it to a run on its base`,
  );
}

/**
 * The model the adapter records as its base, when the studio can open it: a model folder on this computer, a model of
 * the library, or a Hub model in the cache (at the revision PEFT recorded); recorded in the library.
 */
function libraryBase(store: Store, hub: HubAccess, adapter: ForeignAdapter): ModelRecord {
  const configFile = path.join(adapter.dir, 'adapter_config.json');
  const recorded = adapter.baseModel;
  if (recorded === null)
    throw new UserError(
      `${configFile}: names no base model (base_model_name_or_path); import it with the run it belongs to`,
    );
  const known = store.models().find((m) => m.location === recorded || m.folder === recorded);
  if (known && fs.existsSync(known.folder)) return known;
  let folder: string | null = null;
  if (path.isAbsolute(recorded) && fs.existsSync(path.join(recorded, 'config.json'))) folder = recorded;
  else if (HUB_REPO_ID.test(recorded)) {
    const repo: HubRepo = { type: 'model', name: recorded };
    const revision = typeof adapter.config.revision === 'string' ? adapter.config.revision : 'main';
    folder = cachedSnapshot(hub.cacheDir, repo, revision);
    if (!folder)
      throw new UserError(
        `${configFile}: its base model ${recorded} is not in the Hub cache ${hub.cacheDir}; download ${recorded} first, then import again`,
      );
  }
  if (!folder)
    throw new UserError(
      `${configFile}: its base model ${JSON.stringify(recorded)} is not a model folder on this computer nor a Hub model id; import it with the run it was trained for`,
    );
  return store.addModel(describeModelFolder(folder, [DEMO_MODEL_DIR]));
}

/** Loads the adapter against its base as the playground will: every tensor present with the base's shapes. */
function checkLoads(adapter: ForeignAdapter, base: ModelRecord, run: RunRecord | null): void {
  const folder = openModelFolder(base.folder);
  try {
    loadAdapter(adapter.dir, folder.spec);
  } catch (err) {
    if (!(err instanceof UserError) || !run) throw err;
    throw new UserError(
      `the adapter does not fit run ${run.id}'s model ${JSON.stringify(modelName(base))} (its base is ${JSON.stringify(adapter.baseModel)}): ${err.message}`,
    );
  }
}

/** Whether the run's rows went through a chat template, as the adapter it trains records it (checkpointAdapter.ts). */
function trainedThroughTemplate(job: TrainJob, format: DataFormat | null): boolean | null {
  if (format === null) return null;
  if (job.data.chatTemplate) return rendersThroughChatTemplate(format, true);
  const modelDir = path.resolve(job.modelDir);
  const tokenizerConfig = path.join(modelDir, 'tokenizer_config.json');
  const config = fs.existsSync(tokenizerConfig) ? readJson(tokenizerConfig) : {};
  return rendersThroughChatTemplate(format, loadChatTemplate(modelDir, config) !== null);
}

/**
 * The training.json the model card reads (trainer.ts writes one for local runs): the run's settings and data, and the
 * trainer's losses; null when there is nothing to say.
 */
function trainingRecord(
  adapter: ForeignAdapter,
  run: RunRecord | null,
  dataSha256: string | null,
): Record<string, unknown> | null {
  if (!run && !adapter.trainer) return null;
  const facts = {
    finalLoss: adapter.trainer?.finalLoss ?? null,
    evalLoss: adapter.trainer?.evalLoss ?? null,
    losses: adapter.trainer?.losses ?? [],
  };
  if (!run) return facts;
  const { outDir, overwriteOutput, modelDir, dataFile, evalDataFile, initAdapterDir, ...settings } = run.job;
  return {
    settings,
    baseModel: path.basename(modelDir),
    dataset: { name: path.basename(dataFile), ...(dataSha256 ? { sha256: dataSha256 } : {}) },
    ...facts,
  };
}
