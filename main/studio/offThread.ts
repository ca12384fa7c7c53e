// Heavy one-shot work of the studio API (dataset inspection, memory plans, exports) on worker threads of their own,
// so the thread answering the API never waits for it: a runaway call costs its worker, which a heap limit bounds.
// Idle workers are kept for a minute, so that the wizard's live memory plan does not pay a thread start per call.
import { Worker } from 'node:worker_threads';
import { fromWire, UserError, type WireError } from '../../shared/errors.js';
import type { OFF_THREAD_TASKS } from './offThreadTasks.js';

type Tasks = typeof OFF_THREAD_TASKS;
export type TaskName = keyof Tasks;
export type TaskRequest = { task: TaskName; args: unknown[] };
export type TaskReply = { ok: true; value: unknown } | { ok: false; error: WireError };

/** Enough for a dataset inspection or a plan of any real model; a call beyond it fails alone. */
const HEAP_LIMIT_MB = 2048;
const MAX_IDLE_WORKERS = 2;
const IDLE_WORKER_MS = 60_000;

const idle: { worker: Worker; timer: NodeJS.Timeout }[] = [];

function takeWorker(): Worker {
  const kept = idle.pop();
  if (kept) {
    clearTimeout(kept.timer);
    kept.worker.ref();
    return kept.worker;
  }
  return new Worker(new URL('./offThreadWorker.js', import.meta.url), {
    resourceLimits: { maxOldGenerationSizeMb: HEAP_LIMIT_MB },
  });
}

/** A worker whose task succeeded waits for the next one, without keeping the process alive. */
function keepWorker(worker: Worker): void {
  if (idle.length >= MAX_IDLE_WORKERS) return void worker.terminate();
  worker.unref();
  const timer = setTimeout(() => {
    idle.splice(
      idle.findIndex((kept) => kept.worker === worker),
      1,
    );
    void worker.terminate();
  }, IDLE_WORKER_MS).unref();
  idle.push({ worker, timer });
}

/** Runs `OFF_THREAD_TASKS[task](...args)` on a worker thread; its error, rebuilt, is this call's error. */
export function runOffThread<T extends TaskName>(
  task: T,
  ...args: Parameters<Tasks[T]>
): Promise<Awaited<ReturnType<Tasks[T]>>> {
  return new Promise((resolve, reject) => {
    const worker = takeWorker();
    const done = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const onMessage = (reply: TaskReply) => {
      done();
      if (reply.ok) {
        keepWorker(worker);
        resolve(reply.value as Awaited<ReturnType<Tasks[T]>>);
      } else {
        // A task that failed half-way may have left descriptors or memory behind: its thread goes with it.
        void worker.terminate();
        reject(fromWire(reply.error));
      }
    };
    const onError = (err: NodeJS.ErrnoException) => {
      done();
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY')
        reject(new UserError(`${task}: the input needs more than ${HEAP_LIMIT_MB} MB of memory to process`));
      else reject(err);
    };
    const onExit = (code: number) => {
      done();
      reject(new Error(`${task}: its worker thread exited with code ${code} before answering`));
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    worker.postMessage({ task, args } satisfies TaskRequest);
  });
}
