// Faults a desktop studio meets, against a real `peft-studio serve`: a second studio on the same storage folder, a
// disk that fills under a training run (in a private mount namespace with a tiny tmpfs, as root), bodies over the
// limit, and the owner-only files. Nothing is stuck, nothing is lost, every error is one line.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../shared/runs.js';
import { demoJob } from '../api/jobs.js';
import { ROOT } from '../support/cli.js';
import { callApi, request, serve, stopServe, type Served } from '../support/serve.js';

let root: string;
const running: Served[] = [];
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-faults-'));
});
afterAll(async () => {
  await Promise.all(running.map((s) => stopServe(s, 2000)));
  fs.rmSync(root, { recursive: true, force: true });
});

/** The environment of a studio that keeps its chosen-folder record and Hub cache inside the test's folder. */
const studioEnv = () => ({
  ...process.env,
  XDG_DATA_HOME: path.join(root, 'data'),
  HF_HOME: path.join(root, 'hf'),
  HF_HUB_OFFLINE: '1',
});

async function started(args: string[], wrap?: (argv: string[]) => string[]): Promise<Served> {
  const served = await serve(['--port', '0', ...args], { env: studioEnv(), wrap });
  running.push(served);
  return served;
}

async function ok<T>(served: Served, method: string, params: unknown): Promise<T> {
  const answer = await callApi(served, method, params);
  expect(answer.status, answer.body).toBe(200);
  return JSON.parse(answer.body) as T;
}

async function until<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const runOf = (served: Served, id: number) =>
  ok<{ run: RunRecord }>(served, 'runs.get', { id, logLines: 5 }).then((r) => r.run);

describe('one studio per storage folder', () => {
  it('refuses a second studio on the same folder in one line, and takes over the lock of one that was killed', async () => {
    const home = path.join(root, 'locked');
    const first = await started(['--home', home]);
    const second = await serve(['--port', '0', '--home', home], { env: studioEnv() }).then(
      (s) => (running.push(s), null),
      (err: Error) => err.message,
    );
    expect(second).toMatch(
      new RegExp(`another PEFT Studio \\(process ${first.child.pid}\\) is using this storage folder`),
    );
    expect(second!.split('\n').filter(Boolean).at(-1)).toMatch(/^serve exited with 1: peft-studio serve: error: /);
    // The first one is untouched by the attempt.
    expect((await callApi(first, 'runs.list', {})).status).toBe(200);

    first.child.kill('SIGKILL');
    await first.exited;
    const third = await started(['--home', home]);
    expect((await callApi(third, 'runs.list', {})).status).toBe(200);
    await stopServe(third);
    expect(fs.existsSync(path.join(home, 'studio.lock'))).toBe(false);
  });
});

describe('owner-only files', () => {
  it('creates the studio folder and its database readable by the user alone', async () => {
    const home = path.join(root, 'private');
    const served = await started(['--home', home]);
    await ok(served, 'runs.list', {});
    expect(fs.statSync(home).mode & 0o077).toBe(0);
    for (const file of ['studio.db', 'studio.db-wal', 'studio.db-shm'])
      expect(fs.statSync(path.join(home, file)).mode & 0o077, file).toBe(0);
    await stopServe(served);
  });
});

describe('request bodies', () => {
  it('answers a body over the limit with a 413 and a message, and stays up', async () => {
    const served = await started(['--home', path.join(root, 'bodies')]);
    const big = Buffer.alloc(9 * 2 ** 20, 0x20);
    const answer = await request(new URL('/api/runs.list', served.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${served.token}` },
      body: big,
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({
      error: { name: 'ApiError', message: 'runs.list: the request body is over 8388608 bytes' },
    });
    expect((await callApi(served, 'runs.list', {})).status).toBe(200);
    await stopServe(served);
  });
});

describe('a disk that fills under a run', () => {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const inNamespaceOf = (pid: number, script: string) =>
    spawnSync('nsenter', ['--target', String(pid), '--mount', 'sh', '-c', script], { encoding: 'utf8' });

  it('fails the run in one line instead of leaving it running; cancel answers; it resumes once there is room', async () => {
    const home = path.join(root, 'full-home');
    fs.mkdirSync(home);
    // The studio's whole folder (database, runs, checkpoints) on an 8 MB tmpfs only that serve process sees.
    const served = await started(['--home', home], (argv) => [
      'unshare',
      '--mount',
      'sh',
      '-ec',
      `mount -t tmpfs -o size=8m tmpfs ${quote(home)}; exec ${argv.map(quote).join(' ')}`,
    ]);
    const pid = served.child.pid!;
    const filler = path.join(home, 'filler');

    const fillDisk = () => inNamespaceOf(pid, `cat /dev/zero > ${quote(filler)} 2>/dev/null; true`);
    const freeDisk = () => expect(inNamespaceOf(pid, `rm -f ${quote(filler)}`).status).toBe(0);

    // Run 1: the disk fills mid-run, then is freed and the run resumes to its end.
    const job = { ...demoJob(path.join(root, 'full-adapter-1'), 60), checkpointEvery: 10 };
    const { id } = await ok<RunRecord>(served, 'runs.start', { job });
    await until('run 1 to take steps', async () => ((await runOf(served, id)).step >= 3 ? true : null));
    fillDisk();
    const failed = await until('run 1 to fail', async () => {
      const run = await runOf(served, id);
      return run.status === 'running' ? null : run;
    });
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/the disk is full/);
    expect(failed.error).not.toContain('\n');
    const listed = await ok<RunRecord[]>(served, 'runs.list', {});
    expect(listed.find((r) => r.id === id)?.status).toBe('failed');

    freeDisk();
    await ok(served, 'runs.resume', { id });
    const completed = await until('run 1 to complete', async () => {
      const run = await runOf(served, id);
      return run.status === 'completed' || run.status === 'failed' ? run : null;
    });
    expect(completed).toMatchObject({ status: 'completed', step: 60, error: null });

    // Run 2: the disk fills again; cancel does what it says even though nothing can be written.
    const second = await ok<RunRecord>(served, 'runs.start', {
      job: { ...job, outDir: path.join(root, 'full-adapter-2') },
    });
    await until('run 2 to take steps', async () => ((await runOf(served, second.id)).step >= 3 ? true : null));
    fillDisk();
    await until('run 2 to stop', async () => ((await runOf(served, second.id)).status === 'running' ? null : true));
    const cancelled = await callApi(served, 'runs.cancel', { id: second.id });
    expect(cancelled.status, cancelled.body).toBe(200);
    expect((await runOf(served, second.id)).status).toBe('cancelled');
    freeDisk();
    // Once there is room the status reaches the database (read through the serve process's own mount namespace).
    const readStatus = `new (require('better-sqlite3'))(${JSON.stringify(path.join(home, 'studio.db'))}, { readonly: true }).prepare('SELECT status FROM runs WHERE id = ${second.id}').pluck().get()`;
    await until(
      'the cancel to be recorded',
      async () => {
        const status = inNamespaceOf(pid, `cd ${quote(ROOT)} && ${quote(process.execPath)} -p ${quote(readStatus)}`);
        expect(status.stderr).toBe('');
        return status.stdout.trim() === 'cancelled' ? true : null;
      },
      30_000,
    );
    await stopServe(served);
    expect(await served.exited).toBe(0);
  });
});

describe('answers the server cannot send', () => {
  it('become a one-line 500 (not a crash) when a result cannot be serialised or is too large, and the server lives on', async () => {
    const { startServer } = await import('../../main/server/serve.js');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const results: Record<string, () => unknown> = {
      'app.info': () => ({ version: 'ok' }),
      'runs.list': () => [1n],
      'models.list': () => circular,
      'datasets.list': () => 'x'.repeat(40 * 2 ** 20),
    };
    // A stand-in for the studio: the fault is the result itself, which no real handler returns today.
    const api = {
      dispatch: async (method: unknown) => results[method as string](),
      call: async () => null,
      subscribe: () => () => {},
      close: async () => {},
    } as unknown as import('../../main/studio/studioApi.js').StudioService;
    const server = await startServer({ host: '127.0.0.1', port: 0, staticDir: root, api });
    const served = { url: new URL(server.url), token: server.token };
    try {
      for (const method of ['runs.list', 'models.list', 'datasets.list']) {
        const answer = await callApi(served, method, {});
        expect(answer.status, method).toBe(500);
        const { error } = JSON.parse(answer.body) as { error: { name: string; message: string } };
        expect(error.message, method).toMatch(/^internal error: the answer could not be sent \(/);
        expect(error.message).not.toContain('\n');
        expect((await callApi(served, 'app.info', {})).body).toBe('{"version":"ok"}');
      }
    } finally {
      await server.close();
    }
  });
});
