// The run manager: a queue of training runs executed one at a time in the engine process, their events streamed to
// subscribers and written to the store in batches, and pause / resume / cancel. A run survives its engine process
// (killed: interrupted, resumable from its last checkpoint) and the app itself (an orphaned `running` run is marked
// interrupted when the store is next opened).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../../shared/errors.js';
import {
  etaSeconds,
  paceAnchor,
  RESUMABLE,
  type MetricPoint,
  type PaceAnchor,
  type RunEvent,
  type RunRecord,
  type RunStatus,
} from '../../../shared/runs.js';
import type { EngineEvent, TrainJob } from '../../../shared/training.js';
import { adapterManifestText, checkOutputFolder, removeIfEmpty, studioPlaces } from '../../adapter/adapterFiles.js';
import { removeCheckpoints } from '../../engine/jobs/checkpoint.js';
import { EngineExitError, runEngine, type EngineRun } from '../../engine/process/host.js';
import { explainFileError } from '../../util/fileErrors.js';
import type { Store } from '../../store/store.js';
import { DEMO_MODEL_DIR } from '../../demo.js';
import { isProcessAlive } from '../../util/process.js';
import { describeModelFolder } from './modelRecord.js';

export interface RunManagerOptions {
  /** Start queued runs by itself, one after another (the app); the CLI runs one run with `execute`. */
  autoStart?: boolean;
  /** How often buffered metrics and log lines go to the store, and requests from other processes are read. */
  flushIntervalMs?: number;
}

// The kernel's out-of-memory killer sends SIGKILL, and so does nothing else on its own: say what it likely was.
const OOM_HINT =
  'unless someone stopped it, the system ran out of memory: lower the batch size or sequence length, or turn gradient checkpointing on';

/** Where a run's engine keeps its checkpoints. */
export const checkpointFolder = (run: RunRecord) => path.join(run.runDir, 'checkpoints');

/**
 * Deletes what the studio wrote for a run: its checkpoints, then its folder if that leaves it empty. Only the folder
 * the store made for the run (a record naming another is not trusted), never through a link; other files stay.
 */
export function removeRunFolder(store: Store, run: RunRecord): void {
  const folder = fs.lstatSync(run.runDir, { throwIfNoEntry: false });
  if (run.runDir !== store.runFolder(run.id) || folder?.isDirectory() !== true) return;
  try {
    removeCheckpoints(checkpointFolder(run));
    removeIfEmpty(run.runDir);
  } catch (err) {
    throw explainFileError(err, run.runDir) ?? err;
  }
}

/** One run being executed by this process: its engine, and what is waiting to be written. */
interface ActiveRun {
  engine: EngineRun<'train'>;
  metrics: Map<number, MetricPoint>;
  log: string[];
  progress: { step?: number; totalSteps?: number };
  cancelRequested: boolean;
  /** The step this engine session resumed after (0: it started the run). */
  resumedAt: number;
  /** Where this session's pace is measured from, for the ETA; set by its first step. */
  pace: PaceAnchor | null;
  /** The store could not be written (disk full, folder gone read-only): the engine is stopped, its checkpoints stay. */
  storageFailure: Error | null;
}

/** How often a status the store refused (a full disk) is offered to it again. */
const RETRY_UNRECORDED_MS = 2000;

export class RunManager {
  private readonly listeners = new Set<(event: RunEvent) => void>();
  private readonly active = new Map<number, ActiveRun>();
  /**
   * Statuses the store refused to take (disk full, folder gone read-only), shown instead of the stored ones and
   * offered to the store again until it takes them: a run whose engine stopped never stays "running".
   */
  private readonly unrecorded = new Map<number, { status: RunStatus; error: string | null }>();
  /** Paused runs resumed only to be stopped and saved: their engine is told to stop as it starts. */
  private readonly stopOnStart = new Set<number>();
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly flushIntervalMs: number;
  private pumping = false;
  /** Set by close: queued runs stay queued for the next start of the app. */
  private closing = false;

  constructor(
    readonly store: Store,
    private readonly options: RunManagerOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 500;
    store.markOrphansInterrupted(isProcessAlive);
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private publish(event: RunEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private setStatus(id: number, status: RunStatus, error: string | null = null): void {
    this.store.setRunStatus(id, status, error);
    this.unrecorded.delete(id);
    this.publish({ runId: id, type: 'status', status, error });
  }

  /** setStatus for a run that has stopped: when the store refuses, the status is kept here and written later. */
  private settle(id: number, status: RunStatus, error: string | null = null): void {
    try {
      this.setStatus(id, status, error);
    } catch {
      this.unrecorded.set(id, { status, error });
      this.publish({ runId: id, type: 'status', status, error });
      this.retryTimer ??= setInterval(() => this.recordUnrecorded(), RETRY_UNRECORDED_MS).unref();
    }
  }

  private recordUnrecorded(): void {
    for (const [id, { status, error }] of this.unrecorded) {
      try {
        this.store.setRunStatus(id, status, error);
        this.unrecorded.delete(id);
      } catch {
        return; // the disk is still full: try again at the next tick
      }
    }
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = null;
  }

  /** A run as the store has it, with a status the store could not take yet. */
  run(id: number): RunRecord | null {
    const run = this.store.run(id);
    const pending = this.unrecorded.get(id);
    return run && pending ? { ...run, ...pending } : run;
  }

  runs(): RunRecord[] {
    return this.store
      .runs()
      .map((run) => (this.unrecorded.has(run.id) ? { ...run, ...this.unrecorded.get(run.id)! } : run));
  }

  /**
   * Records the model and queues a run of `job` (named `name`, else after its model, data and date); an output folder
   * it may not write into is refused first.
   */
  enqueue(job: TrainJob, name?: string): RunRecord {
    checkOutputFolder(job, studioPlaces(this.store, job), null);
    const model = this.store.addModel(describeModelFolder(job.modelDir, [DEMO_MODEL_DIR]));
    const run = this.store.createRun(job, model.id, null, name);
    this.publish({ runId: run.id, type: 'status', status: 'queued', error: null });
    if (this.options.autoStart) void this.pump();
    return run;
  }

  /** Runs queued runs one at a time until none is left. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let next = this.store.nextQueuedRun(); next && !this.closing; next = this.store.nextQueuedRun()) {
        await this.execute(next.id).catch(() => {});
        // Still queued: it could not even be claimed (the store refuses writes); the next resume or start tries again.
        if (this.store.run(next.id)?.status === 'queued') break;
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Executes queued run `id` in this process until it completes, pauses, fails or is interrupted; returns its record.
   */
  async execute(id: number): Promise<RunRecord> {
    const run = this.store.run(id);
    if (!run) throw new UserError(`run ${id}: no such run`);
    if (!this.store.claimRun(id, process.pid))
      throw new UserError(`run ${id} is ${this.store.run(id)!.status}, not queued`);
    this.publish({ runId: id, type: 'status', status: 'running', error: null });
    const checkpointDir = checkpointFolder(run);
    const engine = runEngine(
      { kind: 'train', job: run.job, checkpointDir, resume: fs.existsSync(checkpointDir) },
      (event) => this.onEngineEvent(id, event),
    );
    if (this.stopOnStart.delete(id)) engine.stop();
    const active: ActiveRun = {
      engine,
      metrics: new Map(),
      log: [],
      progress: {},
      cancelRequested: false,
      resumedAt: 0,
      pace: null,
      storageFailure: null,
    };
    this.active.set(id, active);
    this.guardStorage(active, () => this.store.setRunProgress(id, { workerPid: engine.pid }));
    const timer = setInterval(() => this.guardStorage(active, () => this.flush(id)), this.flushIntervalMs);
    try {
      const result = await engine.result;
      this.guardStorage(active, () => {
        this.flush(id);
        if (result.status === 'paused') return this.setStatus(id, 'paused');
        const parent = run.job.initAdapterDir ? this.store.adapterByFolder(run.job.initAdapterDir) : null;
        this.store.addAdapter(
          {
            runId: id,
            parentAdapterId: parent?.id ?? null,
            folder: result.adapterDir,
            method: run.method,
            baseModelId: run.modelId,
            metrics: { finalLoss: result.finalLoss, evalLoss: result.evalLoss, steps: result.steps },
          },
          adapterManifestText(result.adapterDir),
        );
        this.setStatus(id, 'completed');
      });
      if (active.storageFailure) throw active.storageFailure;
    } catch (err) {
      if (active.storageFailure) {
        this.settle(id, 'failed', `${active.storageFailure.message}; resume continues from its last checkpoint`);
        throw active.storageFailure;
      }
      this.guardStorage(active, () => this.flush(id));
      const step = this.store.run(id)!.step;
      if (err instanceof EngineExitError && active.cancelRequested) this.settle(id, 'cancelled');
      else if (err instanceof EngineExitError && err.signal === 'SIGKILL')
        this.settle(
          id,
          'interrupted',
          `${err.message} at step ${step}; ${OOM_HINT}; resume continues from its last checkpoint`,
        );
      else if (err instanceof EngineExitError && err.signal)
        this.settle(id, 'interrupted', `${err.message} at step ${step}; resume continues from its last checkpoint`);
      else if (err instanceof EngineExitError)
        this.settle(id, 'failed', `${err.message} at step ${step}; resume continues from its last checkpoint`);
      else if (err instanceof UserError) this.settle(id, 'failed', err.message);
      else this.settle(id, 'failed', `internal error: ${(err as Error).message}`);
      if (active.storageFailure) throw active.storageFailure;
    } finally {
      clearInterval(timer);
      this.active.delete(id);
    }
    return this.store.run(id)!;
  }

  /** Runs a store write for an active run; when the disk refuses it, stops the engine instead of crashing the app. */
  private guardStorage(active: ActiveRun, write: () => void): void {
    try {
      write();
    } catch (err) {
      active.storageFailure ??= err as Error;
      active.engine.cancel();
    }
  }

  private onEngineEvent(id: number, event: EngineEvent): void {
    const active = this.active.get(id);
    if (active) this.guardStorage(active, () => this.recordEngineEvent(id, active, event));
  }

  private recordEngineEvent(id: number, active: ActiveRun, event: EngineEvent): void {
    let eta: number | null = null;
    switch (event.type) {
      case 'step': {
        active.metrics.set(event.step, {
          ...(active.metrics.get(event.step) ?? { evalLoss: null }),
          step: event.step,
          loss: event.loss,
          learningRate: event.learningRate,
          gradNorm: event.gradNorm,
          tokensPerSecond: event.tokensPerSecond,
          memoryBytes: event.memoryBytes,
        });
        active.progress = { step: event.step, totalSteps: event.totalSteps };
        active.pace ??= paceAnchor(active.resumedAt, event);
        eta = etaSeconds(active.pace, event);
        break;
      }
      case 'eval': {
        const point = active.metrics.get(event.step) ?? {
          step: event.step,
          loss: null,
          learningRate: null,
          gradNorm: null,
          tokensPerSecond: null,
          memoryBytes: null,
          evalLoss: null,
        };
        active.metrics.set(event.step, { ...point, evalLoss: event.loss });
        break;
      }
      case 'log':
        active.log.push(event.message);
        break;
      case 'device':
        this.store.setRunProgress(id, { device: event.device, threads: event.threads });
        active.log.push(`device: ${event.device} (${event.reason}), ${event.threads} CPU threads`);
        break;
      case 'dataset':
        if (event.role === 'train') {
          const dataset = this.store.addDataset({
            source: 'local',
            location: event.file,
            format: event.format,
            sha256: event.sha256,
            stats: event.stats,
          });
          this.store.setRunDataset(id, dataset.id);
        }
        break;
      case 'checkpoint':
        this.flush(id);
        this.store.syncCheckpoints(id, event.kept);
        break;
      case 'resumed':
        // The steps after the checkpoint are computed again: their earlier metrics go.
        active.metrics.clear();
        this.store.deleteMetricsAfter(id, event.step);
        this.store.setRunProgress(id, { step: event.step });
        active.resumedAt = event.step;
        active.pace = null;
        break;
    }
    this.publish({ runId: id, type: 'engine', event, etaSeconds: eta });
  }

  /** Writes what is buffered in one transaction, and acts on a pause or cancel asked for by another process. */
  private flush(id: number): void {
    const active = this.active.get(id);
    if (!active) return;
    const metrics = [...active.metrics.values()];
    const log = active.log;
    active.metrics = new Map();
    active.log = [];
    this.store.write(() => {
      this.store.writeMetrics(id, metrics);
      this.store.appendLog(id, log);
      if (active.progress.step !== undefined) this.store.setRunProgress(id, active.progress);
    });
    const request = this.store.takeRunRequest(id);
    if (request === 'pause') active.engine.pause();
    if (request === 'cancel') this.cancel(id);
  }

  /** Pause: a running run checkpoints after its current step and frees the device; a queued one just waits. */
  pause(id: number): void {
    const run = this.requireRun(id);
    if (this.unrecorded.has(id))
      throw new UserError(`run ${id} is ${run.status}: only queued or running runs can be paused`);
    const active = this.active.get(id);
    if (active) active.engine.pause();
    else if (run.status === 'queued') this.setStatus(id, 'paused');
    else if (run.status === 'running') this.store.requestRunAction(id, 'pause');
    else throw new UserError(`run ${id} is ${run.status}: only queued or running runs can be paused`);
  }

  /**
   * Stop and save: a running run ends after its current step with its adapter written as the weights are then
   * (validated first); a paused or interrupted one is resumed from its checkpoint just for that, with no more steps.
   */
  stop(id: number): void {
    const run = this.requireRun(id);
    const active = this.active.get(id);
    if (active) return active.engine.stop();
    if (run.status === 'running')
      throw new UserError(`run ${id} is running in another process: pause it there or here, then stop and save it`);
    if (run.status !== 'paused' && run.status !== 'interrupted')
      throw new UserError(
        `run ${id} is ${run.status}: only running, paused or interrupted runs can be stopped and saved`,
      );
    if (!fs.existsSync(checkpointFolder(run)))
      throw new UserError(`run ${id} has no checkpoint to save an adapter from: resume it instead`);
    this.stopOnStart.add(id);
    this.resume(id);
  }

  /** Puts a paused, failed or interrupted run back in the queue; it continues from its last good checkpoint. */
  resume(id: number): RunRecord {
    const run = this.requireRun(id);
    if (!RESUMABLE.includes(run.status))
      throw new UserError(`run ${id} is ${run.status}: only ${RESUMABLE.join(', ')} runs can be resumed`);
    this.setStatus(id, 'queued');
    if (this.options.autoStart) void this.pump();
    return this.store.run(id)!;
  }

  cancel(id: number): void {
    const run = this.requireRun(id);
    const active = this.active.get(id);
    if (active) {
      active.cancelRequested = true;
      active.engine.cancel();
    } else if (run.status === 'running') this.store.requestRunAction(id, 'cancel');
    else if (run.status === 'completed' || run.status === 'cancelled')
      throw new UserError(`run ${id} is already ${run.status}`);
    else this.settle(id, 'cancelled');
  }

  /** Stops starting queued runs and pauses the running ones (each writes a checkpoint); resolves once they stopped. */
  async close(): Promise<void> {
    this.closing = true;
    const ids = [...this.active.keys()];
    const stopped = ids.map(
      (id) =>
        new Promise<void>((resolve) => {
          const unsubscribe = this.subscribe((e) => {
            if (e.runId === id && e.type === 'status' && e.status !== 'running') {
              unsubscribe();
              resolve();
            }
          });
        }),
    );
    for (const id of ids) this.pause(id);
    await Promise.all(stopped);
    this.recordUnrecorded();
    if (this.retryTimer) clearInterval(this.retryTimer);
  }

  private requireRun(id: number): RunRecord {
    const run = this.run(id);
    if (!run) throw new UserError(`run ${id}: no such run`);
    return run;
  }
}
