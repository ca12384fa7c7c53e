// The worker thread behind startStudio: createStudioApi, answering calls by sequence number and forwarding events.
import { parentPort, workerData } from 'node:worker_threads';
import { toWire } from '../../shared/errors.js';
import type { StudioReply, StudioRequest, StudioWorkerData } from './studioHost.js';
import { createStudioApi, type StudioService } from './studioApi.js';
import type { TokenVault } from './services/tokenVault.js';

const port = parentPort!;
const { home, hfToken } = workerData as StudioWorkerData;
const send = (message: StudioReply) => port.postMessage(message);

/** The token lives here in memory; the host thread keeps it lasting (encrypted where the OS can). */
let token = hfToken;
const mirroredVault: TokenVault = {
  read: () => token,
  write(next) {
    token = next ?? undefined;
    send({ type: 'hfToken', token: next });
  },
};

let api: StudioService;
try {
  api = createStudioApi({ home, tokenVault: mirroredVault });
} catch (err) {
  send({ type: 'startFailed', error: toWire(err) });
  process.exit(0);
}
api.subscribe((event) => send({ type: 'event', event }));
send({ type: 'ready' });

/** A result the channel cannot carry (not cloneable) becomes the call's error instead of ending the worker. */
function answer(seq: number, outcome: Promise<unknown>): void {
  void outcome.then(
    (value) => {
      try {
        send({ type: 'reply', seq, ok: true, value });
      } catch (err) {
        send({
          type: 'reply',
          seq,
          ok: false,
          error: toWire(new Error(`the result could not be sent: ${(err as Error).message}`)),
        });
      }
    },
    (err: unknown) => send({ type: 'reply', seq, ok: false, error: toWire(err) }),
  );
}

port.on('message', (request: StudioRequest) => {
  if (request.type === 'call')
    return answer(
      request.seq,
      Promise.resolve().then(() => api.dispatch(request.method, request.params)),
    );
  void api.close().finally(() => send({ type: 'closed' }));
});
