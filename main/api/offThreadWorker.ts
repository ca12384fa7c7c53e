// The worker thread behind runOffThread: one task, one reply, then it exits.
import { parentPort, workerData } from 'node:worker_threads';
import { toWire } from '../../shared/errors.js';
import type { TaskName, TaskReply } from './offThread.js';
import { OFF_THREAD_TASKS } from './offThreadTasks.js';

const { task, args } = workerData as { task: TaskName; args: unknown[] };
const run = OFF_THREAD_TASKS[task] as (...args: unknown[]) => unknown;
let reply: TaskReply;
try {
  reply = { ok: true, value: await run(...args) };
} catch (err) {
  reply = { ok: false, error: toWire(err) };
}
parentPort!.postMessage(reply);
