// playground.generate / playground.stop with generation on a worker thread of its own: tokenizing a long prompt and
// every session.run of the decoder would otherwise hold up every other API call. The worker keeps the last model
// loaded between prompts; a worker that dies (out of memory, a native crash) fails its requests and is started anew.
import { Worker } from 'node:worker_threads';
import type { CheckedParams, GenerationSummary } from '../../../shared/api.js';
import { fromWire, UserError, type WireError } from '../../../shared/errors.js';
import type { GenerationEngine, TokenListener } from './playgroundSessions.js';

export interface PlaygroundWorkerData {
  quantizedRoot: string;
}

export type PlaygroundRequest =
  | { type: 'generate'; params: CheckedParams<'playground.generate'>; engine: GenerationEngine }
  | { type: 'stop'; requestId: string }
  | { type: 'close' };

export type PlaygroundReply =
  | { type: 'token'; requestId: string; token: { id: number; text: string } }
  | { type: 'done'; requestId: string; ok: true; value: GenerationSummary }
  | { type: 'done'; requestId: string; ok: false; error: WireError }
  | { type: 'closed' };

interface Pending {
  resolve: (summary: GenerationSummary) => void;
  reject: (err: Error) => void;
}

export class PlaygroundHost {
  private worker: Worker | null = null;
  private readonly pending = new Map<string, Pending>();
  private closed: Promise<void> | null = null;

  /** `quantizedRoot`: where the studio keeps 4-bit copies of base models (store/home.ts). */
  constructor(
    private readonly onToken: TokenListener,
    private readonly quantizedRoot: string,
  ) {}

  generate(params: CheckedParams<'playground.generate'>, engine: GenerationEngine): Promise<GenerationSummary> {
    if (this.closed) throw new UserError('the studio is closing: generation is stopped');
    if (this.pending.has(params.requestId))
      throw new UserError(`playground request ${params.requestId} is already running`);
    return new Promise((resolve, reject) => {
      this.pending.set(params.requestId, { resolve, reject });
      this.post({ type: 'generate', params, engine });
    });
  }

  stop(requestId: string): boolean {
    if (!this.pending.has(requestId)) return false;
    this.post({ type: 'stop', requestId });
    return true;
  }

  /** Stops every generation and ends the worker (its model and sessions with it). */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      const worker = this.worker;
      if (!worker) return resolve();
      worker.once('exit', () => resolve());
      worker.postMessage({ type: 'close' } satisfies PlaygroundRequest);
      // A generation stuck in a native call cannot hear the message: end the thread after a grace period.
      setTimeout(() => void worker.terminate(), 10_000).unref();
    });
    return this.closed;
  }

  private post(request: PlaygroundRequest): void {
    this.started().postMessage(request);
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const workerData: PlaygroundWorkerData = { quantizedRoot: this.quantizedRoot };
    const worker = new Worker(new URL('./playgroundWorker.js', import.meta.url), { workerData });
    worker.on('message', (reply: PlaygroundReply) => this.answer(reply));
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = null;
      this.failAll(new Error(`generation stopped: its worker thread exited (code ${code})`));
    });
    // An idle generation worker must not keep the process alive.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private answer(reply: PlaygroundReply): void {
    if (reply.type === 'token') return this.onToken(reply.requestId, reply.token);
    if (reply.type === 'closed') return;
    const pending = this.pending.get(reply.requestId);
    this.pending.delete(reply.requestId);
    if (reply.ok) pending?.resolve(reply.value);
    else pending?.reject(fromWire(reply.error));
  }

  private failAll(err: Error & { code?: string }): void {
    const reason =
      err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new UserError('generation ran out of memory: try a shorter prompt or fewer new tokens')
        : err;
    for (const pending of this.pending.values()) pending.reject(reason);
    this.pending.clear();
  }
}
