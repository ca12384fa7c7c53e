// The one way screens reach the main process: the Electron preload's bridge when there is one, else `peft-studio
// serve` over HTTP (calls) and a WebSocket (events), with the access token from the page URL.
import type { ApiErrorShape, MethodName, Params, Result, StudioApi, StudioEvent } from '../../../shared/api.js';
import type { DataSuggestion } from '../../../shared/errors.js';

/**
 * The Electron preload's native file and folder dialogs (DesktopBridge in main/electron/ipc.ts, which the renderer may
 * not import). The browser mode has none: paths are typed there.
 */
export interface PathPicker {
  /** The chosen path, or null when the user cancelled. */
  pick(request: {
    kind: 'file' | 'folder';
    title?: string;
    filters?: { name: string; extensions: string[] }[];
  }): Promise<string | null>;
}

declare global {
  interface Window {
    /** Exposed by the Electron preload through contextBridge. */
    peftStudio?: StudioApi & Partial<PathPicker>;
  }
}

/** A failed call, carrying the main process's error name (UserError: bad input, shown as it is). */
export class CallError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
    /** The job field the error is about, when it is about one: the UI names it by its label. */
    readonly field?: string,
    /** Data settings that would work, guessed by the main process (a CSV's question/answer columns). */
    readonly suggestion?: DataSuggestion,
  ) {
    super(message);
    this.name = 'CallError';
  }
}

export function pickTransport(win: Window): StudioApi {
  if (win.peftStudio) return win.peftStudio;
  return new HttpStudioApi(win.location.href, new URL(win.location.href).searchParams.get('token') ?? '');
}

export function pathPicker(win: Window): PathPicker | null {
  const bridge = win.peftStudio;
  return bridge?.pick ? { pick: (request) => bridge.pick!(request) } : null;
}

/**
 * The desktop app asks before a delete in its main process (a native dialog); a second question here would repeat it.
 */
export function confirmsInMain(win: Window): boolean {
  return win.peftStudio !== undefined;
}

const RECONNECT_DELAY_MS = 1000;

export class HttpStudioApi implements StudioApi {
  private readonly listeners = new Set<(event: StudioEvent) => void>();
  private readonly connectionListeners = new Set<(connected: boolean) => void>();
  private socket: WebSocket | null = null;
  /** Whether the event socket is open; it stands for the server being there. */
  private connected = true;

  constructor(
    private readonly pageUrl: string,
    private readonly token: string,
  ) {}

  async call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
    const response = await fetch(new URL(`api/${method}`, this.baseUrl()), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.token}` },
      body: JSON.stringify(params),
    });
    const body: unknown = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (body as { error?: ApiErrorShape } | null)?.error;
      throw new CallError(
        error?.name ?? 'Error',
        error?.message ?? `${method} failed with HTTP ${response.status}`,
        error?.field,
        error?.suggestion,
      );
    }
    return body as Result<M>;
  }

  subscribe(listener: (event: StudioEvent) => void): () => void {
    this.listeners.add(listener);
    this.connect();
    return () => {
      this.listeners.delete(listener);
      this.disconnectWhenUnwatched();
    };
  }

  connection(listener: (connected: boolean) => void): () => void {
    this.connectionListeners.add(listener);
    this.connect();
    return () => {
      this.connectionListeners.delete(listener);
      this.disconnectWhenUnwatched();
    };
  }

  private watched(): boolean {
    return this.listeners.size > 0 || this.connectionListeners.size > 0;
  }

  private disconnectWhenUnwatched(): void {
    if (this.watched()) return;
    this.socket?.close();
    this.socket = null;
  }

  private setConnected(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    for (const listener of this.connectionListeners) listener(connected);
  }

  /** The server root: the page may be /index.html or /, always served from the root. */
  private baseUrl(): URL {
    return new URL('/', this.pageUrl);
  }

  private connect(): void {
    if (this.socket) return;
    const url = new URL('api/events', this.baseUrl());
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', this.token);
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener('open', () => this.setConnected(true));
    socket.addEventListener('message', (message) => {
      const event = JSON.parse(String(message.data)) as StudioEvent;
      for (const listener of this.listeners) listener(event);
    });
    // A server restart or a sleeping laptop drops the socket (or it never opens): say so, and keep trying while
    // anyone listens.
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!this.watched()) return;
      this.setConnected(false);
      setTimeout(() => this.connect(), RECONNECT_DELAY_MS);
    });
  }
}

/** Turns any thrown value into one line for the screen. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
