// `peft-studio serve` as users run it, for tests: the built CLI as a real process, its printed URL and token, and raw
// HTTP calls to it (fetch may not set Host).
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import readline from 'node:readline';
import { CLI } from './cli.js';

export interface Served {
  child: ChildProcess;
  url: URL;
  token: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Starts serve with `args` and resolves with the URL it prints first; rejects with stderr when it exits instead. */
export function serve(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; wrap?: (argv: string[]) => string[] } = {},
): Promise<Served> {
  const [command, ...rest] = (options.wrap ?? ((argv) => argv))([process.execPath, CLI, 'serve', ...args]);
  const child = spawn(command, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      const url = new URL(line);
      resolve({ child, url, token: url.searchParams.get('token')!, stderr: () => stderr, exited });
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
}

/** Stops a serve process (SIGTERM, then SIGKILL after `graceMs`) and waits for it. */
export async function stopServe(served: Served | undefined, graceMs = 20_000): Promise<void> {
  if (!served || served.child.exitCode !== null || served.child.signalCode !== null) return;
  served.child.kill('SIGTERM');
  const timer = setTimeout(() => served.child.kill('SIGKILL'), graceMs);
  await served.exited;
  clearTimeout(timer);
}

export function request(
  url: URL,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** POST /api/<method> with the token. */
export function callApi(served: Pick<Served, 'url' | 'token'>, method: string, params: unknown): Promise<HttpAnswer> {
  return request(new URL(`/api/${method}`, served.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${served.token}` },
    body: JSON.stringify(params),
  });
}
