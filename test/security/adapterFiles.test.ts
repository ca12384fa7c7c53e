// Attacks on the user's files through a real `peft-studio serve` over HTTP, and through the CLI: training into a
// folder that holds files, a model folder or the studio's own folder is refused before it starts; deleting an adapter
// or a run removes only what the studio wrote; adapter ids are never reused; export destinations inside the adapter,
// with a NUL byte or under /proc are refused; a disk that fills during a merged export (a tiny tmpfs in a private mount
// namespace, `unshare --mount`, as root) fails in one line and leaves nothing half-written. Every decoy folder is
// hashed before and after: nothing outside the studio's own files changes.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainJob } from '../../shared/training.js';
import { deleteAdapterFiles, type ProtectedPlaces } from '../../main/adapter/adapterFiles.js';
import { removeCheckpoints } from '../../main/engine/jobs/checkpoint.js';
import { DEMO_MODEL, demoJob } from '../api/jobs.js';
import { CLI, runCliAsync } from '../support/cli.js';
import { treeHashes } from '../support/decoy.js';
import { callApi } from '../support/serve.js';

const MANIFEST = 'peft-studio-manifest.json';

/** A folder of the user's own: a note, a nested binary file, an empty folder. */
function makeDecoy(dir: string): string {
  fs.mkdirSync(path.join(dir, 'photos', 'empty'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'notes.txt'), "my notes, not the studio's\n");
  fs.writeFileSync(path.join(dir, 'photos', 'cat.bin'), crypto.randomBytes(4096));
  return dir;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let root: string;
let home: string;
/** The mount point of a 1 MiB tmpfs inside serve's mount namespace: too small for the demo model merged (3.9 MB). */
let full: string;
let listing: string;
let pidFile: string;
let child: ChildProcess;
let closed: Promise<number | null>;
let url: URL;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-security-'));
  home = path.join(root, 'home');
  full = path.join(root, 'full');
  listing = path.join(root, 'full-listing');
  pidFile = path.join(root, 'serve.pid');
  fs.mkdirSync(full);
  const renderer = path.join(root, 'renderer');
  fs.mkdirSync(renderer);
  fs.writeFileSync(path.join(renderer, 'index.html'), '<!doctype html>');
  // serve runs in the background of a shell that, once it stopped, lists the tmpfs (only visible in its namespace).
  const serve = `${quote(process.execPath)} ${quote(CLI)} serve --port 0 --home ${quote(home)} --renderer ${quote(renderer)}`;
  const script = `mount -t tmpfs -o size=1m tmpfs ${quote(full)}; ${serve} & echo $! >${quote(pidFile)}; wait $! || true; ls -A ${quote(full)} >${quote(listing)}`;
  child = spawn('unshare', ['--mount', 'sh', '-ec', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  closed = new Promise((resolve) => child.on('close', resolve));
  url = await new Promise<URL>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', (line) => resolve(new URL(line)));
    void closed.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
});

afterAll(async () => {
  if (fs.existsSync(pidFile) && !fs.existsSync(listing)) {
    process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
    await closed;
  }
  fs.rmSync(root, { recursive: true, force: true });
});

/** POST /api/<method> with the token; the status and the parsed body. */
// JSON bodies of every method's shape, read field by field by the tests.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(method: string, params: unknown): Promise<{ status: number; body: any }> {
  const answer = await callApi({ url, token: url.searchParams.get('token')! }, method, params);
  return { status: answer.status, body: JSON.parse(answer.body) };
}

/** A refused call: a 4xx status and one line that matches `message`. */
async function expectRefused(method: string, params: unknown, message: RegExp): Promise<void> {
  const { status, body } = await call(method, params);
  expect(status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
  expect(status).toBeLessThan(500);
  expect(body.error.message).not.toContain('\n');
  expect(body.error.message).toMatch(message);
}

async function trainToCompletion(job: TrainJob): Promise<{ id: number }> {
  const started = await call('runs.start', { job });
  expect(started.status, JSON.stringify(started.body)).toBe(200);
  for (;;) {
    const { run } = (await call('runs.get', { id: started.body.id })).body;
    if (run.status === 'completed') return run;
    if (!['queued', 'running'].includes(run.status)) throw new Error(`run ${run.id} ${run.status}: ${run.error}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const runCount = async () => (await call('runs.list', {})).body.length;
/** The studio folder as the user sees it: everything but the database's own files, which every call may touch. */
const homeSnapshot = () => treeHashes(home, (name) => /^studio\.(db|lock)/.test(name));

describe('a studio served over HTTP', () => {
  let adapterOne: string;

  it('trains an adapter and writes the manifest of its files last', async () => {
    adapterOne = path.join(home, 'adapters', 'one');
    await trainToCompletion(demoJob(adapterOne, 2));
    const manifest = JSON.parse(fs.readFileSync(path.join(adapterOne, MANIFEST), 'utf8'));
    expect(manifest.files.map((f: { path: string }) => f.path).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'training.json',
    ]);
    for (const entry of manifest.files) {
      const bytes = fs.readFileSync(path.join(adapterOne, entry.path));
      expect(entry).toEqual({
        path: entry.path,
        size: bytes.length,
        sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
      });
    }
    expect(manifest.run).toEqual({
      checkpoints: path.join(home, 'runs', '1', 'checkpoints'),
      fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect((await call('adapters.list', {})).body).toEqual([expect.objectContaining({ id: 1, folder: adapterOne })]);
  });

  it("(a) refuses to train into a folder of the user's that holds files, overwrite or not", async () => {
    const decoy = makeDecoy(path.join(root, 'decoy-a'));
    const before = treeHashes(decoy);
    await expectRefused(
      'runs.start',
      { job: demoJob(decoy) },
      new RegExp(
        `^${decoy}: the output folder holds other files \\(notes\\.txt, photos\\); choose a new or empty folder`,
      ),
    );
    await expectRefused('runs.start', { job: { ...demoJob(decoy), overwriteOutput: true } }, /holds other files/);
    // A folder holding a copy of a studio adapter's config but not its manifest is not the studio's either.
    fs.copyFileSync(path.join(adapterOne, 'adapter_config.json'), path.join(decoy, 'adapter_config.json'));
    await expectRefused('runs.start', { job: { ...demoJob(decoy), overwriteOutput: true } }, /holds other files/);
    fs.rmSync(path.join(decoy, 'adapter_config.json'));
    expect(treeHashes(decoy)).toEqual(before);
    expect(await runCount()).toBe(1);
  });

  it('(b) refuses to train into the model folder, a folder inside it, or one holding it', async () => {
    const library = path.join(root, 'library');
    const model = path.join(library, 'model');
    fs.cpSync(DEMO_MODEL, model, { recursive: true });
    const before = treeHashes(library);
    const job = { ...demoJob(model), modelDir: model };
    await expectRefused(
      'runs.start',
      { job },
      new RegExp(`^${model}: the output folder is the model folder ${model}; choose a new or empty folder`),
    );
    await expectRefused(
      'runs.start',
      { job: { ...job, outDir: path.join(model, 'adapter'), overwriteOutput: true } },
      /the output folder is inside the model folder/,
    );
    await expectRefused('runs.start', { job: { ...job, outDir: library } }, /the output folder holds the model folder/);
    expect(treeHashes(library)).toEqual(before);
    expect(await runCount()).toBe(1);
  });

  it('(c) refuses to train into the studio folder, its run folders, or a folder holding it', async () => {
    makeDecoy(path.join(home, 'my-files'));
    const before = homeSnapshot();
    await expectRefused(
      'runs.start',
      { job: demoJob(home) },
      new RegExp(`^${home}: the output folder is the studio folder`),
    );
    await expectRefused('runs.start', { job: { ...demoJob(home), overwriteOutput: true } }, /is the studio folder/);
    await expectRefused(
      'runs.start',
      { job: demoJob(path.join(home, 'runs', '2')) },
      /is inside the studio's run folders/,
    );
    await expectRefused('runs.start', { job: demoJob(path.join(home, 'runs')) }, /is the studio's run folders/);
    await expectRefused('runs.start', { job: demoJob(root) }, new RegExp(`holds the studio folder ${home}`));
    expect(homeSnapshot()).toEqual(before);
    expect(await runCount()).toBe(1);
  });

  it('(f) refuses export destinations in, at or around the adapter folder, with a NUL byte, or under /proc, /sys, /dev', async () => {
    const before = homeSnapshot();
    const exportTo = (destination: string) => ({ adapterId: 1, format: 'peft', destination });
    await expectRefused(
      'export.run',
      exportTo(path.join(adapterOne, 'copy')),
      new RegExp(`^${path.join(adapterOne, 'copy')}: is inside the adapter folder ${adapterOne}`),
    );
    await expectRefused('export.run', exportTo(adapterOne), /: is the adapter folder/);
    await expectRefused('export.run', exportTo(path.join(home, 'adapters')), /: holds the adapter folder/);
    await expectRefused('export.run', exportTo(path.join(root, 'ex\0port')), /NUL/);
    await expectRefused(
      'export.run',
      exportTo('/proc/self/peft-export'),
      /^\/proc\/self\/peft-export: is under \/proc, a system folder/,
    );
    await expectRefused('export.run', exportTo('/sys/peft-export'), /is under \/sys/);
    await expectRefused('export.run', exportTo('/dev/shm/peft-export'), /is under \/dev/);
    expect(homeSnapshot()).toEqual(before);
    expect(fs.existsSync('/dev/shm/peft-export')).toBe(false);
    expect(fs.existsSync(path.join(root, 'ex'))).toBe(false);
  });

  it('(g) fails a merged export on a full disk in one line naming the destination; a small one fits after it', async () => {
    const merged = path.join(full, 'merged');
    await expectRefused(
      'export.run',
      { adapterId: 1, format: 'merged', destination: merged },
      new RegExp(`^${merged}: the disk is full; free some space and try again$`),
    );
    const peft = await call('export.run', { adapterId: 1, format: 'peft', destination: path.join(full, 'peft') });
    expect(peft.status, JSON.stringify(peft.body)).toBe(200);
    // What is left on the tmpfs is read when serve stops (the last test).
  });

  it("(d) deletes only the files the studio wrote into an adapter folder: changed ones and the user's stay", async () => {
    fs.writeFileSync(path.join(adapterOne, 'my-notes.txt'), 'added by the user\n');
    fs.appendFileSync(path.join(adapterOne, 'training.json'), '\n// edited by the user\n');
    const mine = treeHashes(adapterOne, (name) => !['my-notes.txt', 'training.json'].includes(name));
    const decoys = treeHashes(path.join(home, 'my-files'));
    const deleted = await call('adapters.delete', { id: 1, deleteFiles: true });
    expect(deleted).toEqual({ status: 200, body: { deleted: 1, kept: [path.join(adapterOne, 'training.json')] } });
    expect(treeHashes(adapterOne)).toEqual(mine);
    expect(treeHashes(path.join(home, 'my-files'))).toEqual(decoys);
    expect((await call('adapters.list', {})).body).toEqual([]);
    await expectRefused('adapters.delete', { id: 1, deleteFiles: true }, /^adapter 1: no such adapter$/);
  });

  it('(d) deletes only the checkpoints of a run from its folder', async () => {
    const runDir = path.join(home, 'runs', '1');
    expect(fs.readdirSync(path.join(runDir, 'checkpoints')).length).toBeGreaterThan(0);
    fs.writeFileSync(path.join(runDir, 'mine.txt'), 'put here by the user\n');
    fs.writeFileSync(path.join(runDir, 'checkpoints', 'mine-too.txt'), "also the user's\n");
    const before = treeHashes(path.join(home, 'my-files'));
    expect(await call('runs.delete', { id: 1 })).toEqual({ status: 200, body: { deleted: 1 } });
    expect(treeHashes(runDir)).toEqual({
      'mine.txt': expect.any(String),
      checkpoints: 'folder',
      [path.join('checkpoints', 'mine-too.txt')]: expect.any(String),
    });
    expect(treeHashes(path.join(home, 'my-files'))).toEqual(before);
  });

  it("(e) never gives a deleted adapter's id to a new one; an untouched adapter folder goes whole", async () => {
    const adapterTwo = path.join(home, 'adapters', 'two');
    const run = await trainToCompletion(demoJob(adapterTwo, 1));
    expect(run.id).toBe(2);
    expect((await call('adapters.list', {})).body).toEqual([
      expect.objectContaining({ id: 2, runId: 2, folder: adapterTwo }),
    ]);
    expect(await call('adapters.delete', { id: 2, deleteFiles: true })).toEqual({
      status: 200,
      body: { deleted: 2, kept: [] },
    });
    expect(fs.existsSync(adapterTwo)).toBe(false);
    expect(await call('runs.delete', { id: 2 })).toEqual({ status: 200, body: { deleted: 2 } });
    expect(fs.existsSync(path.join(home, 'runs', '2'))).toBe(false);
    // The folders around them are as they were.
    expect(fs.readdirSync(path.join(home, 'adapters'))).toEqual(['one']);
  });

  it('(g) left nothing half-written on the full disk: only the export that fitted', async () => {
    process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM');
    expect(await closed).toBe(0);
    expect(fs.readFileSync(listing, 'utf8')).toBe('peft\n');
  });
});

describe('train on the command line', () => {
  const env = { ...process.env, PEFT_STUDIO_HOME: '' };
  const train = (out: string, ...more: string[]) =>
    runCliAsync(
      ['train', '--out', out, '--steps', '1', '--max-seq-len', '64', '--batch-size', '2', '--device', 'cpu', ...more],
      { env },
    );
  const oneLine = (stderr: string) => stderr.trim().split('\n');

  it("refuses a folder of the user's and the model folder, --overwrite or not, before training", async () => {
    const decoy = makeDecoy(path.join(root, 'decoy-cli'));
    const before = treeHashes(decoy);
    for (const overwrite of [[], ['--overwrite']]) {
      const refused = await train(decoy, ...overwrite);
      expect(refused.code).toBe(1);
      expect(oneLine(refused.stderr)).toEqual([
        `peft-studio train: error: ${decoy}: the output folder holds other files (notes.txt, photos); choose a new or empty folder for the adapter`,
      ]);
    }
    const inModel = await train(path.join(DEMO_MODEL, 'adapter'));
    expect(oneLine(inModel.stderr)).toEqual([
      `peft-studio train: error: ${path.join(DEMO_MODEL, 'adapter')}: the output folder is inside the model folder ${DEMO_MODEL}; choose a new or empty folder for the adapter`,
    ]);
    expect(fs.existsSync(path.join(DEMO_MODEL, 'adapter'))).toBe(false);
    expect(treeHashes(decoy)).toEqual(before);
  });

  it("writes an adapter again only with --overwrite, leaving the user's files, and never over a changed file", async () => {
    const out = path.join(root, 'cli-adapter');
    const first = await train(out);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, MANIFEST), 'utf8')).run).toBeNull();
    fs.writeFileSync(path.join(out, 'README.md'), 'my own card\n');
    const before = treeHashes(out);
    const again = await train(out);
    expect(again.code).toBe(1);
    expect(oneLine(again.stderr)).toEqual([
      `peft-studio train: error: ${out}: holds an adapter PEFT Studio wrote for another run; choose a new or empty folder for the adapter, or overwrite that adapter (train --overwrite)`,
    ]);
    expect(treeHashes(out)).toEqual(before);

    const overwritten = await train(out, '--overwrite', '--seed', '1');
    expect(overwritten.code, overwritten.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).toBe('my own card\n');
    expect(treeHashes(out)['adapter_model.safetensors']).not.toBe(before['adapter_model.safetensors']);

    fs.appendFileSync(path.join(out, 'adapter_config.json'), ' ');
    const changed = await train(out, '--overwrite');
    expect(changed.code).toBe(1);
    expect(oneLine(changed.stderr)).toEqual([
      `peft-studio train: error: ${path.join(out, 'adapter_config.json')}: not as PEFT Studio wrote it; move it out of the folder to overwrite the adapter, or choose a new or empty folder for the adapter`,
    ]);
  });
});

describe('deleting by a manifest', () => {
  const nowhere: ProtectedPlaces = { homes: [], models: [], runs: [], files: [] };
  const sha256 = (bytes: string) => crypto.createHash('sha256').update(bytes).digest('hex');
  const entry = (name: string, bytes: string) => ({
    path: name,
    size: Buffer.byteLength(bytes),
    sha256: sha256(bytes),
  });

  it('never follows a name out of the folder, nor a link a listed file became', () => {
    const work = fs.mkdtempSync(path.join(root, 'manifest-'));
    const victims = makeDecoy(path.join(work, 'victims'));
    const folder = path.join(work, 'adapter');
    fs.mkdirSync(folder);
    const notes = fs.readFileSync(path.join(victims, 'notes.txt'), 'utf8');
    fs.symlinkSync(path.join(victims, 'notes.txt'), path.join(folder, 'adapter_config.json'));
    fs.writeFileSync(path.join(folder, 'ok.txt'), 'ours');
    const listed = [
      '../victims/notes.txt',
      'adapter_config.json',
      path.join('..', 'victims', 'photos'),
      '/etc/hostname',
      'ok.txt',
    ];
    const manifest = JSON.stringify({
      format: 1,
      run: null,
      files: listed.map((name) => entry(name, name === 'ok.txt' ? 'ours' : notes)),
    });
    const before = treeHashes(victims);
    expect(deleteAdapterFiles(folder, manifest, nowhere)).toEqual([path.join(folder, 'adapter_config.json')]);
    expect(fs.readdirSync(folder)).toEqual(['adapter_config.json']);
    expect(treeHashes(victims)).toEqual(before);
  });

  it('deletes nothing in the studio folder, a model folder, or around a dataset; nor without a manifest', () => {
    const work = fs.mkdtempSync(path.join(root, 'places-'));
    fs.writeFileSync(path.join(work, 'studio.db'), 'the database');
    fs.writeFileSync(path.join(work, 'data.jsonl'), '{}');
    const manifest = JSON.stringify({
      format: 1,
      run: null,
      files: [entry('studio.db', 'the database'), entry('data.jsonl', '{}')],
    });
    const before = treeHashes(work);
    const places = (p: Partial<ProtectedPlaces>) => ({ ...nowhere, ...p });
    expect(() => deleteAdapterFiles(work, manifest, places({ homes: [work] }))).toThrow(
      `${work}: the adapter folder is the studio folder`,
    );
    expect(() => deleteAdapterFiles(work, manifest, places({ models: [path.join(work, 'm')] }))).toThrow(
      /holds the model folder/,
    );
    expect(() => deleteAdapterFiles(work, manifest, places({ models: [root] }))).toThrow(/is inside the model folder/);
    expect(() => deleteAdapterFiles(work, manifest, places({ files: [path.join(work, 'data.jsonl')] }))).toThrow(
      /holds the dataset/,
    );
    expect(() => deleteAdapterFiles(work, null, nowhere)).toThrow(
      /recorded before PEFT Studio listed the files it writes/,
    );
    expect(() => deleteAdapterFiles(work, '{"format":1,"files":[]}', nowhere)).toThrow(/recorded before/);
    expect(treeHashes(work)).toEqual(before);
  });

  it("deletes of a run's checkpoints only the files the checkpoint writer makes", () => {
    const dir = path.join(fs.mkdtempSync(path.join(root, 'checkpoints-')), 'checkpoints');
    const step = path.join(dir, 'step-00000002');
    fs.mkdirSync(step, { recursive: true });
    for (const name of ['state.safetensors', 'trainer.json', 'manifest.json', 'trainer.json.tmp-12-34'])
      fs.writeFileSync(path.join(step, name), 'x');
    fs.mkdirSync(path.join(dir, '.step-00000004.partial-99'));
    const decoy = makeDecoy(path.join(dir, 'step-00000006'));
    fs.symlinkSync(decoy, path.join(dir, 'step-00000008'));
    const before = treeHashes(decoy);
    removeCheckpoints(dir);
    expect(fs.readdirSync(dir).sort()).toEqual(['step-00000006', 'step-00000008']);
    expect(treeHashes(decoy)).toEqual(before);
  });
});
