// `peft-studio serve` as users run it: the built CLI as a real process on loopback, its token, Host check, static files
// with their CSP, the JSON API, the event socket with a real training run, and Ctrl-C pausing that run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { StudioEvent } from '../../shared/api.js';
import { Store } from '../../main/store/store.js';
import { demoJob } from '../api/jobs.js';
import { runCli } from '../support/cli.js';
import { request, serve, stopServe, type Served } from '../support/serve.js';

let root: string;
let home: string;
let server: Served;
const at = (pathname: string, token?: string) => {
  const url = new URL(pathname, server.url);
  if (token !== undefined) url.searchParams.set('token', token);
  return url;
};
const call = (
  method: string,
  params: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${server.token}` },
) =>
  request(at(`/api/${method}`), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(params),
  });

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-serve-'));
  home = path.join(root, 'home');
  const renderer = path.join(root, 'renderer');
  fs.mkdirSync(path.join(renderer, 'assets'), { recursive: true });
  fs.writeFileSync(
    path.join(renderer, 'index.html'),
    '<!doctype html><script type="module" src="/assets/app.js"></script>',
  );
  fs.writeFileSync(path.join(renderer, 'assets', 'app.js'), 'console.log("studio")');
  server = await serve(['--port', '0', '--home', home, '--renderer', renderer]);
});
afterAll(async () => {
  if (server?.child.exitCode === null) {
    server.child.kill('SIGKILL');
    await server.exited;
  }
  fs.rmSync(root, { recursive: true, force: true });
});

describe('peft-studio serve', () => {
  it('prints a loopback URL with a random token first', () => {
    expect(server.url.hostname).toBe('127.0.0.1');
    expect(Number(server.url.port)).toBeGreaterThan(0);
    expect(server.token).toMatch(/^[\w-]{32}$/);
  });

  it('answers 401 without the token or with a wrong one, 200 with it (header or query)', async () => {
    expect((await call('app.info', {}, {})).status).toBe(401);
    // The token with its last character changed (to something else than it is: 1 token in 64 ends in x).
    const wrongToken = `${server.token.slice(0, -1)}${server.token.endsWith('x') ? 'y' : 'x'}`;
    const wrong = await call('app.info', {}, { authorization: `Bearer ${wrongToken}` });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body)).toEqual({
      error: { name: 'ApiError', message: expect.stringContaining('access token') },
    });
    expect((await request(at('/', 'nope'))).status).toBe(401);
    expect((await request(at('/assets/app.js'))).status).toBe(401);

    const ok = await call('app.info', {});
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ home, version: '0.1.0' });
    const byQuery = await request(at('/api/demo.paths', server.token), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(byQuery.status).toBe(200);
  });

  it('keeps its token in the studio folder, owner-only, so a link survives a restart; --token sets one', async () => {
    const kept = path.join(home, 'serve-token');
    expect(fs.readFileSync(kept, 'utf8').trim()).toBe(server.token);
    expect(fs.statSync(kept).mode & 0o777).toBe(0o600);

    const otherHome = path.join(root, 'restarts');
    const first = await serve(['--port', '0', '--home', otherHome, '--renderer', path.join(root, 'renderer')]);
    await stopServe(first);
    const second = await serve(['--port', '0', '--home', otherHome, '--renderer', path.join(root, 'renderer')]);
    expect(second.token).toBe(first.token);
    await stopServe(second);
    const chosen = 'my-own-token-of-28-characters';
    const third = await serve([...['--port', '0', '--home', otherHome], '--token', chosen]);
    expect(third.token).toBe(chosen);
    await stopServe(third);
    expect(fs.readFileSync(path.join(otherHome, 'serve-token'), 'utf8').trim()).toBe(chosen);

    const short = runCli(['serve', '--port', '0', '--home', otherHome, '--token', 'short']);
    expect(short.code).toBe(2);
    expect(short.stderr.split('\n')[0]).toBe('peft-studio serve: --token: expected 24 to 128 letters, digits, - or _');
  });

  it('answers a browser that opens a page with an old token with a page saying what to do, not JSON', async () => {
    const page = await request(at('/', 'an-old-token-from-yesterday'), { headers: { accept: 'text/html,*/*' } });
    expect(page.status).toBe(401);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBeDefined();
    expect(page.body).toContain('<h1>PEFT Studio did not open</h1>');
    expect(page.body).toContain('Open the link that <code>peft-studio serve</code> printed');
    expect(page.body).not.toMatch(/<script|style=/);
    // Scripts and API calls still get the one-line JSON error.
    expect(JSON.parse((await request(at('/api/app.info', 'x'), { method: 'POST' })).body).error.name).toBe('ApiError');
  });

  it('refuses a Host header that is not the bound host (DNS rebinding)', async () => {
    const rebound = await call(
      'app.info',
      {},
      { authorization: `Bearer ${server.token}`, host: `evil.example:${server.url.port}` },
    );
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).error.message).toContain('evil.example');
    expect(
      (await call('app.info', {}, { authorization: `Bearer ${server.token}`, host: `localhost:${server.url.port}` }))
        .status,
    ).toBe(200);
  });

  it('answers bad calls with an error body and a 4xx status', async () => {
    const unknown = await call('runs.explode', {});
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body)).toEqual({ error: { name: 'ApiError', message: 'unknown method "runs.explode"' } });
    const bad = await call('runs.get', { id: 'one' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.message).toMatch(/^runs\.get: params\.id: /);
    const missing = await call('runs.get', { id: 42 });
    expect(missing.status).toBe(422);
    expect(JSON.parse(missing.body)).toEqual({ error: { name: 'UserError', message: 'run 42: no such run' } });
    const notJson = await request(at('/api/app.info'), {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: '{',
    });
    expect(notJson.status).toBe(400);
    expect((await request(at('/api/app.info', server.token))).status).toBe(405);
  });

  it('refuses params nested deeper than 64 levels, counting no bracket inside a string, in any character set', async () => {
    const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
    const deep = await call('runs.get', { id: JSON.parse(nested(65)) });
    expect(deep.status).toBe(400);
    expect(JSON.parse(deep.body).error.message).toBe('runs.get: the params nest deeper than 64 levels');
    // 63 levels in the value plus the params object: the depth check passes, the schema refuses the id.
    const shallow = await call('runs.get', { id: JSON.parse(nested(63)) });
    expect(JSON.parse(shallow.body).error.message).toMatch(/^runs\.get: params\.id: /);
    // Brackets, escaped quotes and multi-byte characters inside strings, across the chunks of a body of megabytes.
    const text = `é"[{\\ ${'[{ 漢字 "'.repeat(300_000)} 🙂`;
    const inString = await call('runs.rename', { id: 1, name: text });
    expect(inString.status).toBe(400);
    expect(JSON.parse(inString.body).error.message).toMatch(/^runs\.rename: params\.name: /);
  });

  it('serves the built renderer with a strict Content-Security-Policy; the page sets a cookie for its own assets', async () => {
    const page = await request(at('/', server.token));
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('/assets/app.js');
    const csp = page.headers['content-security-policy']!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(csp).toMatch(/connect-src 'self' ws:/);
    const cookie = String(page.headers['set-cookie']).split(';')[0];
    expect(String(page.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict/);

    const script = await request(at('/assets/app.js'), { headers: { cookie } });
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.headers['content-security-policy']).toBe(csp);
    // The cookie is for the page's files only: the API wants the token itself.
    expect((await call('app.info', {}, { cookie })).status).toBe(401);
    expect((await request(at('/%2e%2e/%2e%2e/package.json', server.token))).status).toBe(404);
    expect((await request(at('/runs/3', server.token))).body).toContain('/assets/app.js');
  });

  it('streams run events over the WebSocket, and refuses sockets without the token or from another origin', async () => {
    const socketUrl = `ws://${server.url.host}/api/events`;
    const refusedStatus = (ws: WebSocket) =>
      new Promise<number>((resolve) => ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!)));
    expect(await refusedStatus(new WebSocket(socketUrl))).toBe(401);
    expect(
      await refusedStatus(new WebSocket(`${socketUrl}?token=${server.token}`, { origin: 'http://evil.example' })),
    ).toBe(403);

    const ws = new WebSocket(`${socketUrl}?token=${server.token}`, { origin: `http://${server.url.host}` });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const events: StudioEvent[] = [];
    const completed = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        const event = JSON.parse(String(data)) as StudioEvent;
        events.push(event);
        if (
          event.kind === 'run' &&
          event.event.type === 'status' &&
          ['completed', 'failed'].includes(event.event.status)
        )
          resolve();
      }),
    );
    const started = await call('runs.start', { job: demoJob(path.join(root, 'adapter'), 3) });
    expect(started.status).toBe(200);
    const run = JSON.parse(started.body);
    await completed;
    ws.close();
    const runEvents = events.flatMap((e) => (e.kind === 'run' && e.event.runId === run.id ? [e.event] : []));
    expect(runEvents.flatMap((e) => (e.type === 'status' ? [e.status] : []))).toEqual([
      'queued',
      'running',
      'completed',
    ]);
    expect(runEvents.filter((e) => e.type === 'engine' && e.event.type === 'step')).toHaveLength(3);
    const chart = JSON.parse((await call('runs.chart', { id: run.id, maxPoints: 50 })).body);
    expect(chart.loss).toHaveLength(3);
  });

  it('pauses the running run at a checkpoint on Ctrl-C and exits cleanly', async () => {
    const started = JSON.parse(
      (await call('runs.start', { job: { ...demoJob(path.join(root, 'long-adapter'), 100_000), checkpointEvery: 0 } }))
        .body,
    );
    for (let step = 0; step < 1;) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      step = JSON.parse((await call('runs.get', { id: started.id })).body).run.step;
    }
    server.child.kill('SIGINT');
    expect(await server.exited).toBe(0);
    const store = Store.open(home);
    try {
      const run = store.run(started.id)!;
      expect(run.status).toBe('paused');
      expect(store.checkpoints(run.id).length).toBe(1);
    } finally {
      store.close();
    }
  });

  it('refuses a non-loopback host unless --allow-remote is given, and then warns', async () => {
    const refused = runCli(['serve', '--host', '0.0.0.0', '--port', '0', '--home', path.join(root, 'remote')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--host 0.0.0.0 is not a loopback address');
    expect(refused.stderr).toContain('--allow-remote');
    expect(refused.stderr.trim().split('\n')[0]).not.toContain('\n');

    const remote = await serve([
      '--host',
      '0.0.0.0',
      '--port',
      '0',
      '--allow-remote',
      '--home',
      path.join(root, 'remote'),
    ]);
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(remote.stderr()).toMatch(/^warning: serving on 0\.0\.0\.0/);
      const answer = await request(new URL('/api/app.info', remote.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${remote.token}` },
        body: '{}',
      });
      expect(answer.status).toBe(200);
    } finally {
      remote.child.kill('SIGINT');
      expect(await remote.exited).toBe(0);
    }
  });
});
