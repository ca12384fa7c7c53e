// Runs one export on its own thread: merging and GGUF writing are synchronous and would stall the server's sockets.
import { parentPort, workerData } from 'node:worker_threads';
import { exportAdapter, type ExportRequest } from './exportAdapter.js';

const request = workerData as ExportRequest;
try {
  parentPort!.postMessage({ ok: true, value: exportAdapter(request.adapter, request.baseModelDir, request.format, request.destination) });
} catch (err) {
  parentPort!.postMessage({ ok: false, error: { name: (err as Error).name, message: (err as Error).message } });
}
