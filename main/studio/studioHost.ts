// The studio API on a worker thread of its own (studioWorker.ts): the thread that owns the window or the HTTP server
// never runs SQLite, a memory plan or a tokenizer, so it never stops answering. The token vault stays on this thread
// (Electron's safeStorage works only here); the worker keeps the token in memory and sends each change back.
import { Worker } from 'node:worker_threads';
import type { MethodName, Params, Result, StudioEvent } from '../../shared/api.js';
import { fromWire, UserError, type WireError } from '../../shared/errors.js';
import type { StudioService } from './studioApi.js';
import { memoryTokenVault, type TokenVault } from './services/tokenVault.js';

export interface HostedStudioOptions {
  /** The studio folder: database, runs, settings. */
  home: string;
  /** Where a token entered in the studio is kept; default: memory (browser mode). */
  tokenVault?: TokenVault;
}

export interface StudioWorkerData {
  home: string;
  hfToken: string | undefined;
}

export type StudioRequest = { type: 'call'; seq: number; method: unknown; params: unknown } | { type: 'close' };

export type StudioReply =
  | { type: 'ready' }
  | { type: 'startFailed'; error: WireError }
  | { type: 'reply'; seq: number; ok: true; value: unknown }
  | { type: 'reply'; seq: number; ok: false; error: WireError }
  | { type: 'event'; event: StudioEvent }
  | { type: 'hfToken'; token: string | null }
  | { type: 'closed' };

export interface HostedStudio extends StudioService {
  /** Settles when the worker ends: null after close(), the reason when it died on its own. */
  readonly stopped: Promise<Error | null>;
}

/** Starts the studio API on its worker thread; rejects with the store's or the lock's reason when it cannot open. */
export function startStudio(options: HostedStudioOptions): Promise<HostedStudio> {
  const vault = options.tokenVault ?? memoryTokenVault();
  const worker = new Worker(new URL('./studioWorker.js', import.meta.url), {
    workerData: { home: options.home, hfToken: vault.read() } satisfies StudioWorkerData,
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  const listeners = new Set<(event: StudioEvent) => void>();
  let nextSeq = 1;
  let closing = false;
  let death: Error | null = null;

  const stopped = new Promise<Error | null>((resolve) => {
    worker.once('error', (err) => (death = err));
    worker.once('exit', (code) => {
      death ??= closing ? null : new Error(`the studio's worker thread exited (code ${code})`);
      for (const call of pending.values()) call.reject(death ?? new UserError('the studio closed before answering'));
      pending.clear();
      resolve(death);
    });
  });

  return new Promise((resolveStart, rejectStart) => {
    void stopped.then((err) => rejectStart(err ?? new Error('the studio closed while starting')));
    worker.on('message', (reply: StudioReply) => {
      switch (reply.type) {
        case 'ready':
          return resolveStart(service);
        case 'startFailed':
          closing = true;
          return rejectStart(fromWire(reply.error));
        case 'reply': {
          const call = pending.get(reply.seq);
          pending.delete(reply.seq);
          if (reply.ok) call?.resolve(reply.value);
          else call?.reject(fromWire(reply.error));
          return;
        }
        case 'event':
          for (const listener of listeners) listener(reply.event);
          return;
        case 'hfToken':
          try {
            vault.write(reply.token);
          } catch (err) {
            process.stderr.write(`peft-studio: could not keep the Hub token: ${(err as Error).message}\n`);
          }
          return;
        case 'closed':
          return void worker.terminate();
      }
    });

    const dispatch = (method: unknown, params: unknown): Promise<unknown> => {
      if (death || closing) return Promise.reject(death ?? new UserError('the studio is closing'));
      const seq = nextSeq++;
      return new Promise((resolve, reject) => {
        pending.set(seq, { resolve, reject });
        worker.postMessage({ type: 'call', seq, method, params } satisfies StudioRequest);
      });
    };

    const service: HostedStudio = {
      dispatch,
      call: <M extends MethodName>(method: M, params: Params<M>) => dispatch(method, params) as Promise<Result<M>>,
      subscribe(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      async close() {
        if (!closing && !death) {
          closing = true;
          worker.postMessage({ type: 'close' } satisfies StudioRequest);
        }
        await stopped;
        listeners.clear();
      },
      stopped,
    };
  });
}
