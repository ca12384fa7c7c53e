// Browser mode: the built renderer and the studio API over HTTP + WebSocket, for a headless GPU box and for tests.
// Every request and socket carries the access token; the Host header must name the bound host (DNS rebinding); pages
// get a strict Content-Security-Policy.
//   POST /api/<method>   params as JSON -> 200 result as JSON | 4xx/5xx { error: { name, message } }
//   GET  /api/events     WebSocket of StudioEvents as JSON
//   GET  /anything-else  files of the built renderer (index.html for paths without a file)
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { WebSocketServer, type WebSocket } from 'ws';
import { errorShape, type ApiErrorShape } from '../../shared/api.js';
import { ApiError, oneLine, UserError } from '../../shared/errors.js';
import type { StudioService } from '../studio/studioApi.js';

export interface ServeOptions {
  /** The address to bind; the CLI refuses non-loopback ones unless remote access was asked for. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The built renderer (vite's output). */
  staticDir: string;
  api: StudioService;
  /** The access token (serveToken.ts keeps one per studio folder); a random one when absent. */
  token?: string;
}

export interface StudioServer {
  /** The URL to open, token included. */
  url: string;
  token: string;
  port: number;
  /** Closes sockets and the server; the API is the caller's to close. */
  close(): Promise<void>;
}

/**
 * Nothing inline, nothing from elsewhere (the renderer's bundle has no inline scripts or styles; the e2e test fails on
 * any CSP report).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  // The page URL carries the token: never send it on as a referrer.
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

/**
 * Static files fetched by the page itself (scripts, styles) cannot add the token: a cookie set from ?token= covers
 * them.
 */
const TOKEN_COOKIE = 'peft_studio_token';
const MAX_BODY_BYTES = 8 * 2 ** 20;
/** No answer of the studio's is near this; one that is would stall the page and is refused instead. */
const MAX_RESPONSE_BYTES = 32 * 2 ** 20;
const MAX_SOCKET_BACKLOG_BYTES = 16 * 2 ** 20;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return net.isIPv6(host) && (host === '::1' || /^::ffff:127\./i.test(host));
}

const isWildcard = (host: string) => host === '0.0.0.0' || host === '::';
const hostWithPort = (host: string, port: number) => `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;

/** Host headers that name this server: the bound host, and for loopback binds its usual spellings. */
function allowedHosts(host: string, port: number): Set<string> | null {
  // A wildcard bind answers on every address of the machine; the token alone guards it.
  if (isWildcard(host)) return null;
  const names = isLoopbackHost(host) ? [host, 'localhost', '127.0.0.1', '::1'] : [host];
  return new Set(names.map((name) => hostWithPort(name, port).toLowerCase()));
}

function sameSecret(given: string | undefined, token: string): boolean {
  if (!given) return false;
  // Digests have equal length, so the comparison takes the same time whatever was sent.
  const digest = (s: string) => crypto.createHash('sha256').update(s).digest();
  return crypto.timingSafeEqual(digest(given), digest(token));
}

function bearer(req: http.IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
}

function cookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

/** Serialises first, then writes: a body that cannot be serialised becomes an error answer, never a half-sent one. */
function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  extraHeaders: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  let text: string;
  try {
    text = JSON.stringify(body) ?? 'null';
    if (Buffer.byteLength(text) > MAX_RESPONSE_BYTES) throw new Error(`the answer is over ${MAX_RESPONSE_BYTES} bytes`);
  } catch (err) {
    status = 500;
    text = JSON.stringify({
      error: {
        name: 'Error',
        message: `internal error: the answer could not be sent (${oneLine((err as Error).message, 200)})`,
      },
    });
  }
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...extraHeaders,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

const sendError = (
  res: http.ServerResponse,
  status: number,
  error: ApiErrorShape,
  extraHeaders?: Record<string, string>,
) => sendJson(res, status, { error: { ...error, message: oneLine(error.message) } }, extraHeaders);

/** Deeper than any call's params: deeper ones would only exhaust the stack of whatever walks them next. */
const MAX_JSON_DEPTH = 64;

/**
 * How deep the arrays and objects of a JSON text nest (brackets inside strings do not count), fed the body chunk by
 * chunk as it arrives, so that a large body is never scanned in one stretch of the event loop. It reads bytes: in
 * UTF-8 no byte of a multi-byte character is an ASCII quote, backslash or bracket.
 */
class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  deepest = 0;

  feed(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (this.escaped) this.escaped = false;
      else if (this.inString) {
        if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
      } else if (c === 0x22) this.inString = true;
      else if (c === 0x5b || c === 0x7b) this.deepest = Math.max(this.deepest, ++this.depth);
      else if (c === 0x5d || c === 0x7d) this.depth--;
    }
  }
}

/** A request body over MAX_BODY_BYTES. */
class BodyTooLarge extends ApiError {}

function statusOf(err: unknown): number {
  if (err instanceof ApiError) return 400;
  if (err instanceof UserError) return 422;
  return 500;
}

/** The body as text, with how deep its JSON nests, measured while it arrives. */
function readBody(req: http.IncomingMessage): Promise<{ text: string; depth: number }> {
  return new Promise((resolve, reject) => {
    const tooLarge = new BodyTooLarge(`the request body is over ${MAX_BODY_BYTES} bytes`);
    // Past the limit the body is read and dropped, so that the client gets the 413 rather than a reset connection;
    // far past it (or announced so) the answer comes at once and the connection closes.
    const dropLimit = 4 * MAX_BODY_BYTES;
    if (Number(req.headers['content-length']) > dropLimit) return reject(tooLarge);
    // Decoded chunk by chunk too: one decode of megabytes at the end would hold the event loop as long.
    const decoder = new StringDecoder('utf8');
    const pieces: string[] = [];
    const depth = new JsonDepthScanner();
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        pieces.push(decoder.write(chunk));
        depth.feed(chunk);
      } else if (size > dropLimit) reject(tooLarge);
    });
    req.on('end', () =>
      size > MAX_BODY_BYTES
        ? reject(tooLarge)
        : resolve({ text: pieces.join('') + decoder.end(), depth: depth.deepest }),
    );
    req.on('error', reject);
  });
}

async function answerApiCall(
  api: StudioService,
  method: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  if (req.method !== 'POST')
    return sendError(res, 405, { name: 'ApiError', message: `${method}: use POST with JSON params` });
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? ''))
    return sendError(res, 415, { name: 'ApiError', message: `${method}: the body must be application/json` });
  let params: unknown;
  try {
    const body = await readBody(req);
    if (body.depth > MAX_JSON_DEPTH) throw new ApiError(`the params nest deeper than ${MAX_JSON_DEPTH} levels`);
    // Parsing a body of megabytes takes tens of ms: calls that came meanwhile are answered first.
    if (body.text.length > 2 ** 20) await new Promise((resolve) => setImmediate(resolve));
    params = body.text.trim() === '' ? {} : JSON.parse(body.text);
  } catch (err) {
    if (err instanceof BodyTooLarge)
      return sendError(res, 413, { name: 'ApiError', message: `${method}: ${err.message}` }, { Connection: 'close' });
    return sendError(res, 400, {
      name: 'ApiError',
      message: `${method}: ${err instanceof ApiError ? err.message : `invalid JSON body (${(err as Error).message})`}`,
    });
  }
  try {
    sendJson(res, 200, (await api.dispatch(method, params)) ?? null);
  } catch (err) {
    const status = statusOf(err);
    sendError(
      res,
      status,
      status === 500 ? { name: 'Error', message: `internal error: ${(err as Error).message}` } : errorShape(err),
    );
  }
}

/** answerApiCall that cannot throw: whatever goes wrong answers 500 (or ends the socket), and the server lives on. */
function answerSafely(api: StudioService, method: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  answerApiCall(api, method, req, res).catch((err: unknown) => {
    if (!res.headersSent) sendError(res, 500, { name: 'Error', message: `internal error: ${(err as Error).message}` });
    else res.destroy();
  });
}

function serveStatic(staticDir: string, pathname: string, res: http.ServerResponse, setCookie: string | null): void {
  const root = path.resolve(staticDir);
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return sendError(res, 400, { name: 'Error', message: `${pathname}: malformed path` });
  }
  let file = path.resolve(root, `.${decoded}`);
  if (file !== root && !file.startsWith(root + path.sep))
    return sendError(res, 404, { name: 'Error', message: 'not found' });
  // Client-side routes (no file extension) get the app's page.
  if (!fs.existsSync(file) || fs.statSync(file).isDirectory())
    file = path.extname(pathname) ? file : path.join(root, 'index.html');
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    const message = fs.existsSync(path.join(root, 'index.html'))
      ? `${pathname}: not found`
      : `the renderer is not built (no ${path.join(root, 'index.html')}); the API is served at /api/`;
    return sendError(res, 404, { name: 'Error', message });
  }
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'Content-Type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Cache-Control': 'no-cache',
  };
  if (setCookie) headers['Set-Cookie'] = setCookie;
  res.writeHead(200, headers);
  fs.createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

/** A static page (the CSP allows nothing inline: no script, no style) saying why the studio did not open. */
function sendRefusalPage(res: http.ServerResponse, status: number, reason: string): void {
  const escape = (text: string) =>
    text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PEFT Studio: not opened</title></head>
<body>
<h1>PEFT Studio did not open</h1>
<p>${escape(reason)}.</p>
<p>Open the link that <code>peft-studio serve</code> printed when it started (the desktop app opens it for you).
The link keeps working across restarts of the same studio folder; <code>--token</code> sets it yourself.</p>
</body></html>
`;
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

export async function startServer(options: ServeOptions): Promise<StudioServer> {
  const token = options.token ?? crypto.randomBytes(24).toString('base64url');
  const { api } = options;
  let hosts: Set<string> | null = null;

  /** Why a request may not come in, or null when it may. */
  const refusal = (
    req: http.IncomingMessage,
    url: URL,
    allowCookie: boolean,
  ): { status: number; message: string } | null => {
    if (hosts && !hosts.has((req.headers.host ?? '').toLowerCase()))
      return { status: 403, message: `Host ${JSON.stringify(req.headers.host ?? '')} is not this server's` };
    const given = url.searchParams.get('token') ?? bearer(req) ?? (allowCookie ? cookie(req, TOKEN_COOKIE) : undefined);
    if (!sameSecret(given, token))
      return { status: 401, message: 'missing or wrong access token: open the URL peft-studio serve printed' };
    return null;
  };

  const server = http.createServer((req, res) => {
    try {
      answerRequest(req, res);
    } catch (err) {
      if (!res.headersSent)
        sendError(res, 500, { name: 'Error', message: `internal error: ${(err as Error).message}` });
      else res.destroy();
    }
  });

  const answerRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://server');
    const isApi = url.pathname.startsWith('/api/');
    const refused = refusal(req, url, !isApi);
    // A browser opening a page with a missing or old token gets a page that says what to do, not JSON.
    if (refused && !isApi && req.method === 'GET' && /text\/html/.test(req.headers.accept ?? ''))
      return sendRefusalPage(res, refused.status, refused.message);
    if (refused) return sendError(res, refused.status, { name: 'ApiError', message: refused.message });
    if (isApi) return answerSafely(api, url.pathname.slice('/api/'.length), req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendError(res, 405, { name: 'ApiError', message: `${req.method} ${url.pathname}: only GET` });
    const fromQuery = url.searchParams.get('token');
    serveStatic(
      options.staticDir,
      url.pathname,
      res,
      fromQuery ? `${TOKEN_COOKIE}=${fromQuery}; HttpOnly; SameSite=Strict; Path=/` : null,
    );
  };

  const sockets = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://server');
    const origin = req.headers.origin;
    // A page elsewhere may open sockets to us with the user's cookies; only our own origin (or a non-browser) may.
    const foreignOrigin =
      origin !== undefined && origin.toLowerCase() !== `http://${(req.headers.host ?? '').toLowerCase()}`;
    const refused =
      url.pathname !== '/api/events'
        ? { status: 404, message: 'no such socket' }
        : foreignOrigin
          ? { status: 403, message: `origin ${origin} refused` }
          : refusal(req, url, false);
    if (refused) {
      socket.end(
        `HTTP/1.1 ${refused.status} ${http.STATUS_CODES[refused.status]}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${refused.message}\n`,
      );
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const unsubscribe = api.subscribe((event) => {
        if (ws.readyState !== ws.OPEN) return;
        // A client that stopped reading would grow this buffer without bound: drop it; it reconnects and re-reads
        // state.
        if (ws.bufferedAmount > MAX_SOCKET_BACKLOG_BYTES) ws.close(1013, 'too far behind');
        else ws.send(JSON.stringify(event));
      });
      ws.on('close', unsubscribe);
      ws.on('error', unsubscribe);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  hosts = allowedHosts(options.host, port);
  const shownHost = isWildcard(options.host) ? '127.0.0.1' : options.host;
  return {
    url: `http://${hostWithPort(shownHost, port)}/?token=${token}`,
    token,
    port,
    async close() {
      for (const ws of sockets.clients) ws.close(1001, 'server closing');
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
