// The worker thread behind runOffThread: one task at a time, one reply each, until the pool ends it.
import { parentPort } from 'node:worker_threads';
import { toWire } from '../../shared/errors.js';
import type { TaskReply, TaskRequest } from './offThread.js';
import { OFF_THREAD_TASKS } from './offThreadTasks.js';

const port = parentPort!;
port.on('message', async ({ task, args }: TaskRequest) => {
  const run = OFF_THREAD_TASKS[task] as (...args: unknown[]) => unknown;
  let reply: TaskReply;
  try {
    reply = { ok: true, value: await run(...args) };
  } catch (err) {
    reply = { ok: false, error: toWire(err) };
  }
  port.postMessage(reply);
});
