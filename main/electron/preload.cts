// The renderer's only door to the main process: `window.peftStudio` = { call, subscribe, pick }, never ipcRenderer
// itself. CommonJS (.cts -> .cjs) because a sandboxed preload runs as a plain script that may require only
// 'electron' and a few built-ins: the channel names are repeated here rather than imported from ipc.ts, and
// test/electron/security.test.ts checks that they match.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { StudioEvent } from '../../shared/api.js';
import type { WireError } from '../../shared/errors.js';
import type { DesktopBridge, IpcReply } from './ipc.js';

/**
 * shared/errors.ts's fromWire, restated since this script cannot load it: the error keeps the wire's name (ApiError,
 * UserError, Error), which lets the UI tell a bad call from bad input, its one-line message and a UserError's field.
 * test/electron/security.test.ts runs this file and checks that the two agree.
 */
function fromWire(wire: WireError): Error {
  return Object.assign(new Error(wire.message), wire);
}

async function invoke<T>(channel: string, ...args: unknown[]): Promise<T> {
  const reply = (await ipcRenderer.invoke(channel, ...args)) as IpcReply<T>;
  if (reply.ok) return reply.value;
  throw fromWire(reply.error);
}

const bridge: DesktopBridge = {
  call: (method, params) => invoke('studio:call', method, params),
  subscribe(listener) {
    const forward = (_event: IpcRendererEvent, studioEvent: StudioEvent) => listener(studioEvent);
    ipcRenderer.on('studio:event', forward);
    return () => void ipcRenderer.removeListener('studio:event', forward);
  },
  pick: (request) => invoke('studio:pick', request),
};

contextBridge.exposeInMainWorld('peftStudio', bridge);
