// peft-studio hub download / hub push: base models and datasets from the Hugging Face Hub into the shared cache, and
// adapters back to it. The token comes from HF_TOKEN (never a flag: command lines end up in shell history).
import { UserError } from '../../shared/errors.js';
import { hubAccessFromEnv, type HubAccess, type HubRepo } from '../hub/access.js';
import { cachedSnapshot } from '../hub/cache.js';
import { downloadSnapshot, type DownloadProgress } from '../hub/download.js';
import { formatBytes, HubUnreachableError } from '../hub/errors.js';
import {
  preflightDataset,
  preflightModel,
  type DatasetPreflight,
  type ModelPreflight,
  type ModelPreflightOptions,
} from '../hub/preflight.js';
import { pushAdapter, type PushProgress } from '../hub/push.js';
import { json, str, UsageError, type Command } from './options.js';

type Values = Record<string, string | boolean | string[] | undefined>;

/** The engine's memory planner and the device's memory, for the preflight's "does it fit". */
export type HubCommandDeps = Pick<ModelPreflightOptions, 'estimateTrainingBytes' | 'availableBytes'>;

const REPO_ID = /^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/;
const DOWNLOAD_FLAGS = ['revision', 'dataset', 'include', 'split', 'force'];
const PUSH_FLAGS = ['private', 'public', 'base-model', 'merged', 'gguf'];

const say = (line: string) => process.stderr.write(`${line}\n`);

function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : `${n}`;
}

const isModel = (report: ModelPreflight | DatasetPreflight): report is ModelPreflight => report.repo.type === 'model';

function printPreflight(report: ModelPreflight | DatasetPreflight): void {
  const largest = [...report.files]
    .sort((a, b) => b.size - a.size)
    .slice(0, 3)
    .map((f) => `${f.path} ${formatBytes(f.size)}`);
  say(
    `${report.repo.type} ${report.repoId} @ ${report.revision} (commit ${report.commit.slice(0, 12)})${report.gated ? ', gated' : ''}`,
  );
  say(
    `  ${report.files.length} file${report.files.length === 1 ? '' : 's'}, ${formatBytes(report.totalBytes)} (${largest.join(', ')}${report.files.length > 3 ? ', ...' : ''})`,
  );
  if (!isModel(report)) return;
  say(`  parameters: ${report.parameterCount === null ? 'unknown' : formatCount(report.parameterCount)}`);
  say(
    `  architecture: ${report.architecture ?? 'unknown'}, ${report.supported ? 'supported' : `not supported: ${report.reason}`}`,
  );
  if (report.estimateBytes !== undefined) {
    say(
      `  training memory: about ${formatBytes(report.estimateBytes)}${report.fits === undefined ? '' : report.fits ? ', fits this device' : ', more than this device has'}`,
    );
  }
}

/** Progress on stderr: a line when a file is done, and at most one a second while a large one streams. */
function downloadPrinter(): (p: DownloadProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    const fileDone = p.fileBytes === p.fileSize;
    if (!fileDone && now - last < 1000) return;
    last = now;
    const width = 24;
    const filled = p.totalBytes ? Math.round((p.doneBytes / p.totalBytes) * width) : width;
    say(
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${formatBytes(p.doneBytes)} / ${formatBytes(p.totalBytes)}  ${p.file} ${fileDone ? 'done' : `${formatBytes(p.fileBytes)} / ${formatBytes(p.fileSize)}`} (${p.index}/${p.count})`,
    );
  };
}

function pushPrinter(): (p: PushProgress) => void {
  const seen = new Set<string>();
  const phases: Record<string, string> = {
    checking: 'checking the token',
    creating: 'creating the repo',
    preuploading: 'preparing the upload',
    uploadingLargeFiles: 'uploading large files',
    committing: 'committing',
  };
  return (p) => {
    const line =
      p.phase === 'file'
        ? p.state === 'uploading' && p.progress >= 1
          ? `uploaded ${p.file}`
          : `${p.state} ${p.file}`
        : phases[p.phase];
    if (line && !seen.has(line)) {
      seen.add(line);
      say(line);
    }
  };
}

function checkFlags(values: Values, verb: string, foreign: string[]): void {
  const wrong = foreign.find((flag) => values[flag] !== undefined && values[flag] !== false);
  if (wrong) throw new UsageError(`--${wrong} does not apply to hub ${verb}`);
}

async function download(hub: HubAccess, id: string, values: Values, deps: HubCommandDeps): Promise<void> {
  const asJson = values.json === true;
  const repo: HubRepo = { type: values.dataset ? 'dataset' : 'model', name: id };
  const revision = (values.revision as string | undefined) ?? 'main';
  const fromCache = (why: string) => {
    const dir = cachedSnapshot(hub.cacheDir, repo, revision);
    if (!dir) return false;
    if (!asJson) say(`${why}; using the cached snapshot`);
    process.stdout.write(
      asJson
        ? `${JSON.stringify({ snapshotDir: dir, repoId: id, type: repo.type, revision, offline: true })}\n`
        : `${dir}\n`,
    );
    return true;
  };
  if (hub.offline) {
    if (fromCache('HF_HUB_OFFLINE is set')) return;
    throw new UserError(
      `${repo.type} ${id} @ ${revision} is not in the cache ${hub.cacheDir}, and HF_HUB_OFFLINE is set`,
    );
  }

  const include = values.include as string[] | undefined;
  let report: ModelPreflight | DatasetPreflight;
  try {
    report =
      repo.type === 'dataset'
        ? await preflightDataset(hub, id, { revision, include, split: values.split as string | undefined })
        : await preflightModel(hub, id, { revision, include, ...deps });
  } catch (err) {
    if (err instanceof HubUnreachableError && fromCache(`offline (${err.message})`)) return;
    throw err;
  }
  if (!asJson) printPreflight(report);
  if (isModel(report) && !values.force) {
    if (!report.supported)
      throw new UserError(`${id}: ${report.reason}; the studio cannot train it (pass --force to download anyway)`);
    if (report.fits === false)
      throw new UserError(
        `${id}: training needs about ${formatBytes(report.estimateBytes!)}, more than this device has (${formatBytes(deps.availableBytes!)}); pass --force to download anyway`,
      );
  }
  const result = await downloadSnapshot(hub, report, asJson ? undefined : downloadPrinter());
  if (asJson) {
    const { repo: _, ...preflight } = report;
    process.stdout.write(`${JSON.stringify({ ...result, repoId: id, type: repo.type, revision, preflight })}\n`);
    return;
  }
  say(
    `${formatBytes(result.fetchedBytes)} downloaded, ${result.cachedFiles} of ${result.files.length} files were already in the cache`,
  );
  process.stdout.write(`${result.snapshotDir}\n`);
}

async function push(hub: HubAccess, adapterDir: string, repoId: string, values: Values): Promise<void> {
  if (values.private && values.public) throw new UsageError('give --private or --public, not both');
  const asJson = values.json === true;
  const result = await pushAdapter(
    hub,
    {
      adapterDir,
      repoId,
      private: values.public !== true,
      baseModel: values['base-model'] as string | undefined,
      mergedDir: values.merged as string | undefined,
      ggufFile: values.gguf as string | undefined,
    },
    asJson ? undefined : pushPrinter(),
  );
  if (asJson) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  say(
    `pushed ${result.files.length} files (commit ${result.commit.slice(0, 12)}) to ${result.created ? `a new ${result.private ? 'private' : 'public'} repo` : 'the existing repo'}`,
  );
  process.stdout.write(`${result.repoUrl}\n`);
}

/** Hub errors already blank the token; this net catches any other message that might carry it. */
function redact(err: unknown, token: string | undefined): unknown {
  if (token && err instanceof Error && err.message.includes(token))
    err.message = err.message.split(token).join('hf_***');
  return err;
}

export function hubCommands(deps: HubCommandDeps = {}): Record<string, Command> {
  return {
    hub: {
      positionals: true,
      summary: 'download a model or dataset from the Hugging Face Hub, or push an adapter to it (token: HF_TOKEN)',
      usage:
        'peft-studio hub download MODEL_OR_DATASET_ID [--revision R] [--dataset] [--include GLOB]... [--split NAME] [--force] [--json]\n' +
        '       peft-studio hub push ADAPTER_DIR REPO_ID [--private|--public] [--base-model ID] [--merged DIR] [--gguf FILE] [--json]',
      options: {
        revision: str,
        dataset: { type: 'boolean' },
        include: { type: 'string', multiple: true },
        split: str,
        force: { type: 'boolean' },
        private: { type: 'boolean' },
        public: { type: 'boolean' },
        'base-model': str,
        merged: str,
        gguf: str,
        json,
      },
      async run(values, positionals) {
        const [verb, ...args] = positionals;
        const hub = hubAccessFromEnv();
        try {
          if (verb === 'download') {
            if (args.length !== 1) throw new UsageError('hub download takes one repo id (organisation/name)');
            if (!REPO_ID.test(args[0])) throw new UsageError(`"${args[0]}" is not a repo id (organisation/name)`);
            checkFlags(values, verb, PUSH_FLAGS);
            if (values.split !== undefined && !values.dataset)
              throw new UsageError('--split applies to datasets (--dataset)');
            await download(hub, args[0], values, deps);
          } else if (verb === 'push') {
            if (args.length !== 2) throw new UsageError('hub push takes an adapter folder and a repo id');
            if (!REPO_ID.test(args[1])) throw new UsageError(`"${args[1]}" is not a repo id (organisation/name)`);
            checkFlags(values, verb, DOWNLOAD_FLAGS);
            await push(hub, args[0], args[1], values);
          } else {
            throw new UsageError(
              verb ? `unknown hub command "${verb}" (download, push)` : 'hub needs a command: download or push',
            );
          }
        } catch (err) {
          throw redact(err, hub.token);
        }
      },
    },
  };
}
