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
  createdAt: string;
}

export type ExportFormat = 'peft' | 'merged' | 'gguf' | 'hub';

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
