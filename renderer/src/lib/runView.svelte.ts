// One run as the dashboard shows it: the stored record and chart, kept current by the run's live events.
import { quotedValuesWarning } from '../../../shared/data.js';
import type { RunDetails, StudioApi, StudioEvent } from '../../../shared/api.js';
import { RESUMABLE, runNameProblem, type AdapterRecord, type RunEvent } from '../../../shared/runs.js';
import { errorMessage } from './client.js';

/** Log lines kept on screen; older ones stay in the run's record. */
const LOG_LIMIT = 500;

export interface LiveProgress {
  step: number;
  totalSteps: number | null;
  learningRate: number | null;
  tokensPerSecond: number | null;
  memoryBytes: number | null;
  etaSeconds: number | null;
}

export class RunView {
  details = $state<RunDetails | null>(null);
  trainLoss = $state<{ step: number; loss: number }[]>([]);
  evalLoss = $state<{ step: number; loss: number }[]>([]);
  log = $state<string[]>([]);
  progress = $state<LiveProgress>({
    step: 0,
    totalSteps: null,
    learningRate: null,
    tokensPerSecond: null,
    memoryBytes: null,
    etaSeconds: null,
  });
  error = $state<string | null>(null);
  renameError = $state<string | null>(null);
  /** The step of the checkpoint being made into an adapter. */
  checkpointBusy = $state<number | null>(null);

  constructor(
    private readonly api: StudioApi,
    readonly runId: number,
  ) {}

  /** Subscribes first and then reads the record, so no event falls between the two; returns the unsubscribe. */
  open(): () => void {
    const unsubscribe = this.api.subscribe((event: StudioEvent) => {
      if (event.kind === 'run' && event.event.runId === this.runId) this.apply(event.event);
    });
    void this.reload();
    return unsubscribe;
  }

  async reload(): Promise<void> {
    try {
      const [details, chart] = await Promise.all([
        this.api.call('runs.get', { id: this.runId, logLines: LOG_LIMIT }),
        this.api.call('runs.chart', { id: this.runId, maxPoints: 400 }),
      ]);
      this.details = details;
      // Live points newer than the stored chart stay.
      const storedUntil = chart.loss.at(-1)?.step ?? 0;
      this.trainLoss = [
        ...chart.loss.map((p) => ({ step: p.step, loss: p.loss })),
        ...this.trainLoss.filter((p) => p.step > storedUntil),
      ];
      const evalUntil = chart.eval.at(-1)?.step ?? 0;
      this.evalLoss = [...chart.eval, ...this.evalLoss.filter((p) => p.step > evalUntil)];
      this.log = details.log;
      const latest = details.latest;
      this.progress = {
        ...this.progress,
        step: Math.max(this.progress.step, details.run.step),
        totalSteps: details.run.totalSteps ?? this.progress.totalSteps,
        learningRate: latest?.learningRate ?? this.progress.learningRate,
        tokensPerSecond: latest?.tokensPerSecond ?? this.progress.tokensPerSecond,
        memoryBytes: latest?.memoryBytes ?? this.progress.memoryBytes,
      };
    } catch (err) {
      this.error = errorMessage(err);
    }
  }

  get status() {
    return this.details?.run.status ?? null;
  }
  get canPause(): boolean {
    return this.status === 'running' || this.status === 'queued';
  }
  get canResume(): boolean {
    return this.status !== null && RESUMABLE.includes(this.status);
  }
  /** Stop and save: a running run after its current step, a paused or interrupted one from its checkpoint. */
  get canStop(): boolean {
    return this.status === 'running' || this.status === 'paused' || this.status === 'interrupted';
  }
  get canCancel(): boolean {
    return this.canPause || this.status === 'paused';
  }

  async control(action: 'runs.pause' | 'runs.stop' | 'runs.resume' | 'runs.cancel'): Promise<void> {
    try {
      const run = await this.api.call(action, { id: this.runId });
      if (this.details) this.details = { ...this.details, run };
    } catch (err) {
      this.error = errorMessage(err);
    }
  }

  /** Gives the run another name; false (with the reason in `renameError`) when it cannot be one. */
  async rename(name: string): Promise<boolean> {
    this.renameError = runNameProblem(name);
    if (this.renameError) return false;
    try {
      const run = await this.api.call('runs.rename', { id: this.runId, name });
      if (this.details) this.details = { ...this.details, run };
      return true;
    } catch (err) {
      this.renameError = errorMessage(err);
      return false;
    }
  }

  /** Deletes the run (its record and checkpoints; its adapter folders stay); true once it is gone. */
  async delete(): Promise<boolean> {
    try {
      await this.api.call('runs.delete', { id: this.runId });
      return true;
    } catch (err) {
      this.error = errorMessage(err);
      return false;
    }
  }

  /** The checkpoint at `step` as an adapter in the library (made once; the same one after); null on failure. */
  async checkpointAdapter(step: number): Promise<AdapterRecord | null> {
    this.checkpointBusy = step;
    this.error = null;
    try {
      const adapter = await this.api.call('runs.checkpointAdapter', { id: this.runId, step });
      if (this.details && !this.details.adapters.some((a) => a.id === adapter.id))
        this.details = { ...this.details, adapters: [...this.details.adapters, adapter] };
      return adapter;
    } catch (err) {
      this.error = errorMessage(err);
      return null;
    } finally {
      this.checkpointBusy = null;
    }
  }

  private apply(event: RunEvent): void {
    if (event.type === 'status') {
      if (this.details)
        this.details = { ...this.details, run: { ...this.details.run, status: event.status, error: event.error } };
      // A finished run has new adapters and a final chart to read.
      if (event.status !== 'running' && event.status !== 'queued') void this.reload();
      return;
    }
    const engine = event.event;
    switch (engine.type) {
      case 'step':
        if (engine.step > (this.trainLoss.at(-1)?.step ?? 0))
          this.trainLoss.push({ step: engine.step, loss: engine.loss });
        this.progress = {
          step: engine.step,
          totalSteps: engine.totalSteps,
          learningRate: engine.learningRate,
          tokensPerSecond: engine.tokensPerSecond,
          memoryBytes: engine.memoryBytes,
          etaSeconds: event.etaSeconds,
        };
        break;
      case 'eval':
        if (engine.step > (this.evalLoss.at(-1)?.step ?? -1))
          this.evalLoss.push({ step: engine.step, loss: engine.loss });
        this.addLog(`validation loss ${engine.loss.toFixed(4)} at step ${engine.step}`);
        break;
      case 'log':
        this.addLog(engine.message);
        break;
      case 'compile':
        this.addLog(`compiling graphs ${engine.done}/${engine.total}`);
        break;
      case 'quantize':
        if (engine.cached) this.addLog('4-bit base weights reused from the cache');
        else if (engine.done === engine.total) this.addLog(`quantized ${engine.total} base tensors to 4 bits`);
        break;
      case 'device':
        this.addLog(`training on ${engine.device} (${engine.reason}), ${engine.threads} CPU threads`);
        break;
      case 'dataset': {
        this.addLog(`read ${engine.role} data ${engine.file} (${engine.format})`);
        const quoted = quotedValuesWarning(engine.stats);
        if (quoted) this.addLog(`warning: ${quoted}`);
        break;
      }
      case 'checkpoint':
        this.addLog(`checkpoint at step ${engine.step}`);
        break;
      case 'resumed':
        this.addLog(`resumed after step ${engine.step}`);
        break;
    }
  }

  private addLog(line: string): void {
    this.log = [...this.log, line].slice(-LOG_LIMIT);
  }
}
