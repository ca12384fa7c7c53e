// What a download would bring, before it starts: size, parameters, architecture support and whether training fits
// the device, so nobody fetches 15 GB to learn the model cannot run. Only config.json (a few kB) is fetched.
import fs from 'node:fs';
import { datasetInfo, modelInfo } from '@huggingface/hub';
import { UserError } from '../../shared/errors.js';
import { expectedShapes, parseModelConfig, type ModelSpec } from '../model/architecture.js';
import { credentials, type HubAccess, type HubRepo } from './access.js';
import { checkHash, checkRevision, COMMIT_HASH } from './cache.js';
import { errorContext, fetchIntoCache, listRepoFiles, type SnapshotPlan } from './download.js';
import { explainHubError } from './errors.js';
import { fileSelector, isWeightsFile } from './select.js';

export interface PreflightOptions {
  /** Branch, tag or commit; "main" when absent. */
  revision?: string;
  /** Replace the default file choice with the files matching these fnmatch patterns. */
  include?: string[];
}

/** What the checkpoint says beyond the architecture, for the memory planner. */
export interface CheckpointFacts {
  /** Bytes per stored weight: 4 for float32, 2 for bfloat16 and float16. */
  weightBytesPerElement: number;
}

export interface ModelPreflightOptions extends PreflightOptions {
  /** Bytes training needs for this model on the chosen device: the engine's memory planner. */
  estimateTrainingBytes?: (spec: ModelSpec, checkpoint: CheckpointFacts) => number;
  /** Bytes the chosen device has for training. */
  availableBytes?: number;
}

export interface DatasetPreflightOptions extends PreflightOptions {
  /** Keep only this split's files (train, validation, test...). */
  split?: string;
}

export interface ModelPreflight extends SnapshotPlan {
  repoId: string;
  gated: false | 'auto' | 'manual';
  /** config.json's model_type (llama, qwen2...), null when there is none. */
  architecture: string | null;
  /** Whether the studio can train it: a supported architecture with safetensors weights. */
  supported: boolean;
  /** Why not, when it cannot. */
  reason?: string;
  spec: ModelSpec | null;
  /** From the Hub's safetensors metadata, else counted from the config; null when neither says. */
  parameterCount: number | null;
  estimateBytes?: number;
  /** estimateBytes <= availableBytes, when both are known. */
  fits?: boolean;
}

export interface DatasetPreflight extends SnapshotPlan {
  repoId: string;
  gated: false | 'auto' | 'manual';
}

/** Weights the architecture implies: every frozen tensor, embeddings and head included. */
export function countParameters(spec: ModelSpec): number {
  let total = 0;
  for (const shape of expectedShapes(spec).values()) total += shape.reduce((a, b) => a * b, 1);
  return total;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, bfloat16: 2, float16: 2 };

/** config.json's dtype (torch_dtype before transformers 4.56), else the weights' size over their count. */
function weightBytesPerElement(config: Record<string, unknown>, weightsBytes: number, parameterCount: number): number {
  const declared = DTYPE_BYTES[String(config.dtype ?? config.torch_dtype)];
  return declared ?? (Math.round(weightsBytes / parameterCount) >= 4 ? 4 : 2);
}

function readConfig(file: string): Record<string, unknown> | string {
  try {
    const config = JSON.parse(fs.readFileSync(file, 'utf8'));
    return config && typeof config === 'object' && !Array.isArray(config) ? config : 'config.json is not a JSON object';
  } catch {
    return 'config.json is not valid JSON'; // not the parser's words: they quote the file
  }
}

/** The commit the Hub says `revision` is, checked: it names the snapshot folder. */
function resolvedCommit(repo: HubRepo, revision: string, sha: unknown): string {
  if (sha === undefined) {
    throw new UserError(`look up ${repo.type} ${repo.name}: the Hub did not say which commit ${revision} is`);
  }
  checkHash(repo, sha, `the commit sha of ${revision}`, 'commit');
  if (COMMIT_HASH.test(revision) && sha !== revision) {
    throw new UserError(`${repo.name}: asked for commit ${revision}, the Hub answered with ${sha}; refusing to use it`);
  }
  return sha;
}

export async function preflightModel(
  hub: HubAccess,
  repoId: string,
  options: ModelPreflightOptions = {},
): Promise<ModelPreflight> {
  const repo: HubRepo = { type: 'model', name: repoId };
  const revision = options.revision ?? 'main';
  checkRevision(hub.cacheDir, repo, revision); // the repo id and revision name folders in the cache
  let info: { sha?: string; gated: false | 'auto' | 'manual'; safetensors?: { total: number } };
  try {
    info = await modelInfo({
      name: repoId,
      revision,
      additionalFields: ['sha', 'safetensors'],
      hubUrl: hub.hubUrl,
      fetch: hub.fetch,
      ...credentials(hub),
    });
  } catch (err) {
    throw explainHubError(err, `look up model ${repoId}`, errorContext(hub, repo));
  }
  const commit = resolvedCommit(repo, revision, info.sha);

  const all = await listRepoFiles(hub, repo, commit, () => true);
  const select = fileSelector({ type: 'model', include: options.include });
  const files = all.filter((f) => select(f.path));
  if (!files.length)
    throw new UserError(
      `${repoId}: no files to download${options.include ? ` match ${options.include.join(', ')}` : ''}`,
    );

  let architecture: string | null = null;
  let spec: ModelSpec | null = null;
  let config: Record<string, unknown> | string = {};
  let reason: string | undefined;
  const configEntry = all.find((f) => f.path === 'config.json');
  if (!configEntry) {
    reason = 'no config.json: not a transformers model repo';
  } else {
    const { path: configFile } = await fetchIntoCache(hub, repo, commit, configEntry);
    config = readConfig(configFile);
    if (typeof config === 'string') reason = config;
    else {
      architecture = typeof config.model_type === 'string' ? config.model_type : null;
      try {
        spec = parseModelConfig(config, 'config.json');
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        reason = err.message;
      }
    }
  }
  if (spec && !all.some((f) => isWeightsFile(f.path))) {
    reason = 'no model.safetensors weights (only other formats); the studio reads safetensors checkpoints';
  }

  const report: ModelPreflight = {
    repo,
    revision,
    commit,
    files,
    totalBytes: files.reduce((sum, f) => sum + f.size, 0),
    repoId,
    gated: info.gated ?? false,
    architecture,
    supported: reason === undefined,
    spec: reason === undefined ? spec : null,
    parameterCount: info.safetensors?.total ?? (spec ? countParameters(spec) : null),
  };
  if (reason !== undefined) report.reason = reason;
  if (report.spec && report.parameterCount && typeof config === 'object' && options.estimateTrainingBytes) {
    const weightsBytes = all.filter((f) => isWeightsFile(f.path)).reduce((sum, f) => sum + f.size, 0);
    report.estimateBytes = options.estimateTrainingBytes(report.spec, {
      weightBytesPerElement: weightBytesPerElement(config, weightsBytes, report.parameterCount),
    });
    if (options.availableBytes !== undefined) report.fits = report.estimateBytes <= options.availableBytes;
  }
  return report;
}

export async function preflightDataset(
  hub: HubAccess,
  repoId: string,
  options: DatasetPreflightOptions = {},
): Promise<DatasetPreflight> {
  const repo: HubRepo = { type: 'dataset', name: repoId };
  const revision = options.revision ?? 'main';
  checkRevision(hub.cacheDir, repo, revision); // the repo id and revision name folders in the cache
  let info: { sha?: string; gated: false | 'auto' | 'manual' };
  try {
    info = await datasetInfo({
      name: repoId,
      revision,
      additionalFields: ['sha'],
      hubUrl: hub.hubUrl,
      fetch: hub.fetch,
      ...credentials(hub),
    });
  } catch (err) {
    throw explainHubError(err, `look up dataset ${repoId}`, errorContext(hub, repo));
  }
  const commit = resolvedCommit(repo, revision, info.sha);
  const files = await listRepoFiles(
    hub,
    repo,
    commit,
    fileSelector({ type: 'dataset', include: options.include, split: options.split }),
  );
  if (!files.length) {
    const asked = [
      options.include && `match ${options.include.join(', ')}`,
      options.split && `belong to split "${options.split}"`,
    ]
      .filter(Boolean)
      .join(' and ');
    throw new UserError(
      `dataset ${repoId}: no data files (JSONL, JSON, CSV, TSV, Parquet)${asked ? ` ${asked}` : ''}; list its files on ${hub.hubUrl}/datasets/${repoId}/tree/${revision} and choose them with --include`,
    );
  }
  return {
    repo,
    revision,
    commit,
    files,
    totalBytes: files.reduce((sum, f) => sum + f.size, 0),
    repoId,
    gated: info.gated ?? false,
  };
}
