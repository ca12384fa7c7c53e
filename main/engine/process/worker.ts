// The engine process: ONNX Runtime's session.run blocks its thread and a native crash or out-of-memory kill must never
// take the app down, so jobs run in a child process of their own. It answers exactly one EngineRequest with one
// result or one error; a `pause` or `stop` control message ends a training run at its next step boundary.
import { toWire, UserError } from '../../../shared/errors.js';
import type { EngineControl, EngineReply, EngineRequest } from '../../../shared/training.js';
import { runBenchmark, runEvaluation, runTraining, type Emit } from '../jobs/trainer.js';

if (!process.send) throw new Error('the engine must run as a child process with an IPC channel');
const reply = (message: EngineReply) => process.send!(message);
// The host went away (closed or killed): nothing would receive the result.
process.on('disconnect', () => process.exit(0));

let pauseRequested = false;
let stopRequested = false;
process.on('message', (message: EngineRequest | EngineControl) => {
  if ('type' in message) {
    if (message.type === 'pause') pauseRequested = true;
    if (message.type === 'stop') stopRequested = true;
    return;
  }
  void handle(message);
});

async function handle(request: EngineRequest): Promise<void> {
  const emit: Emit = (event) => reply({ type: 'event', event });
  try {
    switch (request.kind) {
      case 'train':
        reply({
          type: 'result',
          result: await runTraining(request.job, emit, {
            checkpointDir: request.checkpointDir,
            resume: request.resume,
            pauseRequested: () => pauseRequested,
            stopRequested: () => stopRequested,
          }),
        });
        break;
      case 'eval':
        reply({ type: 'result', result: await runEvaluation(request.job, emit) });
        break;
      case 'bench':
        reply({ type: 'result', result: await runBenchmark(request.job, emit) });
        break;
    }
  } catch (err) {
    // The wire carries one line: a bug's stack is printed here when PEFT_STUDIO_DEBUG asks, as the CLI prints its own.
    if (process.env.PEFT_STUDIO_DEBUG && !(err instanceof UserError))
      process.stderr.write(`${(err as Error).stack ?? err}\n`);
    reply({ type: 'error', error: toWire(err) });
  }
}
