// Starts the engine in a worker thread, streams its events, and settles with its one result or error.
import { Worker } from 'node:worker_threads';
import { UserError } from '../../shared/errors.js';
import type { EngineEvent, EngineReply, EngineRequest, EngineResults } from '../../shared/training.js';

export interface EngineRun<K extends EngineRequest['kind']> {
  result: Promise<EngineResults[K]>;
  /** Stops the worker; `result` then rejects. */
  cancel(): Promise<void>;
}

export function runEngine<R extends EngineRequest>(request: R, onEvent: (event: EngineEvent) => void): EngineRun<R['kind']> {
  const worker = new Worker(new URL('./worker.js', import.meta.url));
  let settled = false;
  const result = new Promise<EngineResults[R['kind']]>((resolve, reject) => {
    worker.on('message', (reply: EngineReply) => {
      if (reply.type === 'event') onEvent(reply.event);
      else if (reply.type === 'result') {
        settled = true;
        resolve(reply.result as EngineResults[R['kind']]);
        void worker.terminate();
      } else {
        settled = true;
        // A UserError stays one line; anything else keeps its stack for a bug report.
        const error = reply.error.name === 'UserError' ? new UserError(reply.error.message) : Object.assign(new Error(reply.error.message), { stack: reply.error.stack });
        reject(error);
        void worker.terminate();
      }
    });
    worker.on('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`engine worker stopped (exit code ${code})`));
    });
  });
  worker.postMessage(request);
  return { result, cancel: async () => void (await worker.terminate()) };
}
