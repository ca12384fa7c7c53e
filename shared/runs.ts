// The typed contract of the studio's records: models, datasets, runs, metrics, adapters, and the events a run streams.
// Pure TypeScript: no Node, no DOM.
import type { DatasetStats } from './data.js';
import type { AdapterMethod, EngineEvent, ExecutionDevice, TrainJob } from './training.js';

/**
 * queued -> running -> completed | paused | failed | interrupted | cancelled.
 * paused, failed and interrupted runs keep their checkpoints and can be resumed (back to queued).
 */
export type RunStatus = 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'interrupted' | 'cancelled';
export const RESUMABLE: readonly RunStatus[] = ['paused', 'failed', 'interrupted'];
/** Runs in the queue or training: they are cancelled before they can be deleted. */
export const ACTIVE: readonly RunStatus[] = ['queued', 'running'];

export interface ModelRecord {
  id: number;
  source: 'local' | 'hub' | 'builtin';
  /** Folder path, or Hub repo id. */
  location: string;
  revision: string | null;
  folder: string;
  architecture: string;
  parameters: number;
  dtype: string;
  sizeBytes: number;
  addedAt: string;
}

export interface DatasetRecord {
  id: number;
  source: 'local' | 'hub';
  location: string;
  format: string;
  sha256: string;
  stats: DatasetStats;
  addedAt: string;
}

export interface RunRecord {
  id: number;
  /** What the user calls the run; editable. Runs recorded before runs had names are called "Run <id>". */
  name: string;
  method: AdapterMethod;
  modelId: number;
  datasetId: number | null;
  job: TrainJob;
  status: RunStatus;
  device: ExecutionDevice | null;
  /** CPU threads the engine ran with (null until it starts). */
  threads: number | null;
  step: number;
  totalSteps: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Why the run failed or stopped, in words the user can act on. */
  error: string | null;
  runDir: string;
}

export interface MetricPoint {
  step: number;
  loss: number | null;
  learningRate: number | null;
  gradNorm: number | null;
  tokensPerSecond: number | null;
  memoryBytes: number | null;
  evalLoss: number | null;
}

/** One point of a downsampled loss curve: the mean over a bucket of steps, with its spread. */
export interface ChartPoint {
  step: number;
  loss: number;
  minLoss: number;
  maxLoss: number;
}

export interface CheckpointRecord {
  runId: number;
  step: number;
  folder: string;
  createdAt: string;
}

export interface AdapterRecord {
  id: number;
  runId: number | null;
  parentAdapterId: number | null;
  folder: string;
  method: AdapterMethod;
  baseModelId: number;
  metrics: { finalLoss: number | null; evalLoss: number | null; steps: number };
  /** Whether its training rows went through the model's chat template (from its manifest); null when not known. */
  chatTemplate: boolean | null;
  /**
   * Where an adapter trained elsewhere was imported from: its folder, or `hub:org/name@commit`; null (or absent in
   * records made before imports) for adapters the studio trained.
   */
  origin?: string | null;
  createdAt: string;
}

export type ExportFormat = 'peft' | 'merged' | 'gguf' | 'gguf-model' | 'hub';

/**
 * A merged model GGUF's tensor types: llama.cpp's file types MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_0, MOSTLY_Q4_K_M,
 * MOSTLY_Q5_K_M, MOSTLY_Q6_K.
 */
export const GGUF_MODEL_QUANTS = ['f16', 'q8_0', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k'] as const;
export type GgufModelQuant = (typeof GGUF_MODEL_QUANTS)[number];

export interface ExportRecord {
  id: number;
  adapterId: number;
  format: ExportFormat;
  destination: string;
  hubUrl: string | null;
  createdAt: string;
}

/** What a run streams to its subscribers: the engine's own events (with an ETA on steps), and status changes. */
export type RunEvent =
  | { runId: number; type: 'status'; status: RunStatus; error: string | null }
  | { runId: number; type: 'engine'; event: EngineEvent; etaSeconds: number | null };

/** The longest run name: enough for a sentence, short enough for a table cell. */
export const RUN_NAME_MAX = 120;

/** A run name as it is kept: trimmed, inner runs of whitespace (line breaks too) made one space. */
export function normalizeRunName(name: string): string {
  return name.replace(/\s+/g, ' ').trim();
}

/** Why `name` (normalized) cannot name a run, in words; null when it can. */
export function runNameProblem(name: string): string | null {
  const normalized = normalizeRunName(name);
  if (normalized === '') return 'a run name cannot be empty';
  if (normalized.length > RUN_NAME_MAX) return `a run name must be at most ${RUN_NAME_MAX} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(normalized)) return 'a run name cannot contain control characters';
  return null;
}

/** The last part of a path written with / or \; a Hugging Face cache snapshot is named by its repository. */
function folderName(location: string): string {
  const cached = /models--[^\\/]+?--([^\\/]+)[\\/]snapshots[\\/]/.exec(location);
  if (cached) return cached[1];
  return (
    location
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .at(-1) || location
  );
}

/**
 * A run's name until the user gives it one: its model, its data and when it was created ("SmolLM2-135M on
 * support.csv, 2026-12-01 10:00").
 */
export function defaultRunName(job: Pick<TrainJob, 'modelDir' | 'dataFile'>, createdAt: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const when = `${createdAt.getFullYear()}-${pad(createdAt.getMonth() + 1)}-${pad(createdAt.getDate())} ${pad(createdAt.getHours())}:${pad(createdAt.getMinutes())}`;
  const name = `${folderName(job.modelDir)} on ${folderName(job.dataFile)}, ${when}`;
  return name.length <= RUN_NAME_MAX ? name : `${name.slice(0, RUN_NAME_MAX - 1)}…`;
}

/** Where this engine session's pace is measured from: a step and the engine's elapsed training seconds at it. */
export interface PaceAnchor {
  step: number;
  elapsedSeconds: number;
}

/**
 * The anchor a step event sets when none is set yet for this engine session. A run that starts at step 0 is timed
 * from its start; a resumed one from its first step after the resume, because the engine's elapsed seconds include
 * the earlier sessions and their pace (another device, other threads, a cold start) says nothing about this one's.
 */
export function paceAnchor(resumedAt: number, event: { step: number; elapsedSeconds: number }): PaceAnchor {
  return resumedAt === 0 ? { step: 0, elapsedSeconds: 0 } : { step: event.step, elapsedSeconds: event.elapsedSeconds };
}

/**
 * Seconds left at the pace since `anchor` (steps per second of this engine session only); null until a step past
 * the anchor has been timed.
 */
export function etaSeconds(
  anchor: PaceAnchor,
  event: { step: number; totalSteps: number; elapsedSeconds: number },
): number | null {
  const steps = event.step - anchor.step;
  const seconds = event.elapsedSeconds - anchor.elapsedSeconds;
  if (steps <= 0 || !(seconds > 0)) return null;
  return (seconds / steps) * Math.max(0, event.totalSteps - event.step);
}

interface LossPoint {
  step: number;
  loss: number;
}

/**
 * A warning in plain words when the last validation rose while the training loss fell since the one before: the
 * adapter is learning its training rows rather than the task. Compares the mean training loss between the last two
 * validations with the mean before; null when there is nothing to warn about (or fewer than two validations).
 */
export function overfittingWarning(train: readonly LossPoint[], evals: readonly LossPoint[]): string | null {
  if (evals.length < 2) return null;
  const [before, last] = evals.slice(-2);
  if (!(last.loss > before.loss)) return null;
  const from = evals.length > 2 ? evals[evals.length - 3].step : 0;
  const mean = (points: LossPoint[]) => points.reduce((sum, p) => sum + p.loss, 0) / points.length;
  const earlier = train.filter((p) => p.step > from && p.step <= before.step);
  const later = train.filter((p) => p.step > before.step && p.step <= last.step);
  if (!earlier.length || !later.length || !(mean(later) < mean(earlier))) return null;
  const best = evals.reduce((a, b) => (b.loss < a.loss ? b : a));
  return (
    `Validation loss rose from ${before.loss.toFixed(3)} to ${last.loss.toFixed(3)} (step ${last.step}) while ` +
    `training loss fell: the adapter is starting to memorise its training rows (overfitting). Its best validation ` +
    `loss was ${best.loss.toFixed(3)} at step ${best.step}: fewer steps, or Stop and save adapter while it runs, ` +
    `keep it nearer that point.`
  );
}
