// Starts the engine in a child process, streams its events, and settles with its one result or error.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fromWire } from '../../../shared/errors.js';
import { engineMallocEnv } from '../compile/mallocEnv.js';
import type {
  EngineControl,
  EngineEvent,
  EngineReply,
  EngineRequest,
  EngineResults,
} from '../../../shared/training.js';

/** The engine process ended without answering: killed (a signal) or crashed. */
export class EngineExitError extends Error {
  constructor(
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(
      signal
        ? `the engine process was killed (${signal})`
        : `the engine process stopped unexpectedly (exit code ${code})`,
    );
  }
}

export interface EngineRun<K extends EngineRequest['kind']> {
  result: Promise<EngineResults[K]>;
  /** The engine process id. */
  pid: number;
  /** Training only: checkpoint after the current step and settle with a paused result. */
  pause(): void;
  /** Training only: end after the current step, with the adapter written as the weights are then. */
  stop(): void;
  /** Kills the engine process; `result` then rejects with an EngineExitError. */
  cancel(): void;
}

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

export function runEngine<R extends EngineRequest>(
  request: R,
  onEvent: (event: EngineEvent) => void,
): EngineRun<R['kind']> {
  // Structured clone over the IPC channel keeps typed arrays and undefined intact; engine stderr (driver warnings)
  // stays visible.
  const child = fork(WORKER, [], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // glibc's allocator for this run (engineMallocEnv), unless the user's environment sets it.
    env: { ...engineMallocEnv(request.job.quantize), ...process.env },
  });
  let reply: EngineReply | null = null;
  const result = new Promise<EngineResults[R['kind']]>((resolve, reject) => {
    child.on('message', (message: EngineReply) => {
      if (message.type === 'event') onEvent(message.event);
      else {
        reply = message;
        child.disconnect();
      }
    });
    child.on('error', reject);
    // 'exit', not 'close': with inherited stdio and a disconnected channel Node 20 never emits 'close'.
    child.on('exit', (code, signal) => {
      if (reply?.type === 'result') resolve(reply.result as EngineResults[R['kind']]);
      else if (reply?.type === 'error') reject(fromWire(reply.error));
      else reject(new EngineExitError(code, signal));
    });
  });
  child.send(request);
  return {
    result,
    pid: child.pid!,
    pause: () => {
      if (child.connected) child.send({ type: 'pause' } satisfies EngineControl);
    },
    stop: () => {
      if (child.connected) child.send({ type: 'stop' } satisfies EngineControl);
    },
    cancel: () => void child.kill('SIGKILL'),
  };
}
