// Heavy one-shot work of the studio API (dataset inspection, memory plans) on a worker thread of its own, so the
// thread answering the API never waits for it: a runaway call costs its worker, which a heap limit bounds.
import { Worker } from 'node:worker_threads';
import { fromWire, UserError, type WireError } from '../../shared/errors.js';
import type { OFF_THREAD_TASKS } from './offThreadTasks.js';

type Tasks = typeof OFF_THREAD_TASKS;
export type TaskName = keyof Tasks;
export type TaskReply = { ok: true; value: unknown } | { ok: false; error: WireError };

/** Enough for a dataset inspection or a plan of any real model; a call beyond it fails alone. */
const HEAP_LIMIT_MB = 2048;

/** Runs `OFF_THREAD_TASKS[task](...args)` on a new worker thread; its error, rebuilt, is this call's error. */
export function runOffThread<T extends TaskName>(task: T, ...args: Parameters<Tasks[T]>): Promise<Awaited<ReturnType<Tasks[T]>>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./offThreadWorker.js', import.meta.url), {
      workerData: { task, args },
      resourceLimits: { maxOldGenerationSizeMb: HEAP_LIMIT_MB },
    });
    let settled = false;
    worker.once('message', (reply: TaskReply) => {
      settled = true;
      if (reply.ok) resolve(reply.value as Awaited<ReturnType<Tasks[T]>>);
      else reject(fromWire(reply.error));
    });
    worker.once('error', (err: NodeJS.ErrnoException) => {
      settled = true;
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') reject(new UserError(`${task}: the input needs more than ${HEAP_LIMIT_MB} MB of memory to process`));
      else reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`${task}: its worker thread exited with code ${code} before answering`));
    });
  });
}
