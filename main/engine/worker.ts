// The engine's thread: ONNX Runtime's session.run blocks its thread, so training never runs where the UI or CLI does.
import { parentPort } from 'node:worker_threads';
import type { EngineReply, EngineRequest } from '../../shared/training.js';
import { runBenchmark, runEvaluation, runTraining, type Emit } from './trainer.js';

const port = parentPort;
if (!port) throw new Error('engine worker must run in a worker thread');

port.once('message', async (request: EngineRequest) => {
  const reply = (message: EngineReply) => port.postMessage(message);
  const emit: Emit = (event) => reply({ type: 'event', event });
  try {
    switch (request.kind) {
      case 'train':
        reply({ type: 'result', result: await runTraining(request.job, emit) });
        break;
      case 'eval':
        reply({ type: 'result', result: await runEvaluation(request.job, emit) });
        break;
      case 'bench':
        reply({ type: 'result', result: await runBenchmark(request.job, emit) });
        break;
    }
  } catch (err) {
    const error = err as Error;
    reply({ type: 'error', error: { name: error.name, message: error.message, stack: error.stack } });
  }
});
