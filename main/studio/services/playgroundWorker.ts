// The worker thread behind PlaygroundHost: PlaygroundSessions, fed by messages.
import { parentPort, workerData } from 'node:worker_threads';
import { toWire } from '../../../shared/errors.js';
import type { PlaygroundReply, PlaygroundRequest, PlaygroundWorkerData } from './playgroundHost.js';
import { PlaygroundSessions } from './playgroundSessions.js';

const port = parentPort!;
const reply = (message: PlaygroundReply) => port.postMessage(message);
const { quantizedRoot } = workerData as PlaygroundWorkerData;
const sessions = new PlaygroundSessions(
  (requestId, token) => reply({ type: 'token', requestId, token }),
  quantizedRoot,
);

port.on('message', (request: PlaygroundRequest) => {
  switch (request.type) {
    case 'generate': {
      const { requestId } = request.params;
      Promise.resolve()
        .then(() => sessions.generate(request.params, request.engine))
        .then(
          (value) => reply({ type: 'done', requestId, ok: true, value }),
          (err: unknown) => reply({ type: 'done', requestId, ok: false, error: toWire(err) }),
        );
      break;
    }
    case 'stop':
      sessions.stop(request.requestId);
      break;
    case 'close':
      void sessions.close().finally(() => {
        reply({ type: 'closed' });
        port.close();
      });
      break;
  }
});
