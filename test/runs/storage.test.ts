// A full disk and a read-only folder, made real with a tiny tmpfs and a read-only bind mount in a private mount
// namespace (`unshare --mount`, as root): one clear line, a non-zero exit, nothing half-written, nothing lost.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../main/store/store.js';
import { CLI, runCliAsync } from '../support/cli.js';

const TRAIN = ['train', '--steps', '20', '--checkpoint-every', '5', '--device', 'cpu', '--seed', '3'];

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-storage-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const cli = (args: string[], log: string) =>
  `${quote(process.execPath)} ${quote(CLI)} ${args.map(quote).join(' ')} >${quote(`${log}.out`)} 2>${quote(`${log}.err`)} && echo 0 >${quote(`${log}.code`)} || echo $? >${quote(`${log}.code`)}`;
const read = (log: string) => ({
  code: Number(fs.readFileSync(`${log}.code`, 'utf8')),
  stdout: fs.readFileSync(`${log}.out`, 'utf8'),
  stderr: fs.readFileSync(`${log}.err`, 'utf8'),
});

/** Runs a shell script in a mount namespace of its own; its mounts vanish when it ends. */
async function inMountNamespace(script: string): Promise<void> {
  const child = spawn('unshare', ['--mount', 'sh', '-ec', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, stderr).toBe(0);
}

describe('storage trouble', () => {
  it('a read-only studio folder is refused in one line that says so', async () => {
    const home = path.join(root, 'readonly');
    fs.mkdirSync(home);
    const log = path.join(root, 'readonly-train');
    await inMountNamespace(
      `mount --bind ${quote(home)} ${quote(home)}; mount -o remount,bind,ro ${quote(home)}; ${cli([...TRAIN, '--home', home, '--out', path.join(root, 'ro-out')], log)}`,
    );
    const result = read(log);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `peft-studio train: error: ${path.join(home, 'studio.db')}: the folder is read-only; choose a writable folder (PEFT_STUDIO_HOME)\n`,
    );
    expect(fs.readdirSync(home)).toEqual([]);
  });

  it('a disk that fills while checkpointing fails the run clearly, keeps the last good checkpoint, and resumes once there is space', async () => {
    const reference = await runCliAsync([
      ...TRAIN,
      '--home',
      path.join(root, 'reference'),
      '--out',
      path.join(root, 'reference-adapter'),
    ]);
    expect(reference.code, reference.stderr).toBe(0);
    const referenceStore = Store.open(path.join(root, 'reference'));
    const referenceLosses = referenceStore.metrics(1).map((m) => m.loss);
    referenceStore.close();

    const home = path.join(root, 'full');
    const runs = path.join(home, 'runs');
    fs.mkdirSync(runs, { recursive: true });
    const [train, resume] = [path.join(root, 'full-train'), path.join(root, 'full-resume')];
    const listing = path.join(root, 'full-listing');
    // Room for one checkpoint (about 700 KB for the demo model) but not two.
    await inMountNamespace(
      `mount -t tmpfs -o size=1000k tmpfs ${quote(runs)}; ${cli([...TRAIN, '--home', home, '--out', path.join(root, 'full-adapter')], train)}; ` +
        `ls -A ${quote(path.join(runs, '1', 'checkpoints'))} >${quote(listing)}; mount -o remount,size=16m ${quote(runs)}; ${cli(['runs', 'resume', '1', '--home', home], resume)}`,
    );
    const failed = read(train);
    expect(failed.code).toBe(1);
    const checkpoint10 = path.join(runs, '1', 'checkpoints', 'step-00000010');
    expect(failed.stderr.trim().split('\n').at(-1)).toBe(
      `peft-studio train: error: run 1 failed: checkpoint ${checkpoint10}: the disk is full; free some space and try again; resume with: peft-studio runs resume 1`,
    );
    // The half-written checkpoint is gone; the good one before it stayed.
    expect(fs.readFileSync(listing, 'utf8')).toBe('step-00000005\n');

    const resumed = read(resume);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resumed from .*step-00000005 \(step 5 of 20\)/);
    const store = Store.open(home);
    expect(store.run(1)).toMatchObject({ status: 'completed', step: 20, error: null });
    expect(store.metrics(1).map((m) => m.loss)).toEqual(referenceLosses);
    store.close();
  });

  it('a database on a full disk stops the run with one line instead of crashing', async () => {
    const home = path.join(root, 'full-db');
    fs.mkdirSync(home);
    const log = path.join(root, 'full-db-train');
    await inMountNamespace(
      `mount -t tmpfs -o size=160k tmpfs ${quote(home)}; ${cli([...TRAIN, '--home', home, '--out', path.join(root, 'full-db-adapter')], log)}`,
    );
    const result = read(log);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      `peft-studio train: error: ${path.join(home, 'studio.db')}: the disk is full; free some space and try again`,
    );
    expect(result.stderr).not.toMatch(/at .*\.js:\d+/);
  });
});
