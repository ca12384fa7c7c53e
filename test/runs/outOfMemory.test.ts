// Running out of memory, for real: the CLI trains inside a memory cgroup too small for the engine, the kernel's
// out-of-memory killer ends the engine process, and the app survives to say what happened and to resume the run.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Store } from '../../main/store/store.js';
import { CLI, runCliAsync } from '../support/cli.js';

let root: string;
let cgroup: { dir: string; limit: (bytes: number) => void };

/** A fresh memory cgroup (v1 or v2 hierarchy, whichever this machine mounts), without swap. */
function memoryCgroup(name: string): typeof cgroup {
  if (fs.existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') || fs.existsSync('/sys/fs/cgroup/memory/tasks')) {
    const dir = path.join('/sys/fs/cgroup/memory', name);
    fs.mkdirSync(dir);
    return { dir, limit: (bytes) => fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(bytes)) };
  }
  const dir = path.join('/sys/fs/cgroup', name);
  fs.mkdirSync(dir);
  return {
    dir,
    limit: (bytes) => {
      fs.writeFileSync(path.join(dir, 'memory.max'), String(bytes));
      fs.writeFileSync(path.join(dir, 'memory.swap.max'), '0');
    },
  };
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-oom-'));
  cgroup = memoryCgroup(`peft-studio-test-${process.pid}`);
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmdirSync(cgroup.dir);
});

it('an engine killed for memory leaves the run interrupted with advice, and the app able to resume it', async () => {
  const model = path.join(root, 'model');
  const made = await runCliAsync([
    'create-tiny-model',
    model,
    '--layers',
    '4',
    '--hidden',
    '512',
    '--heads',
    '8',
    '--kv-heads',
    '4',
    '--intermediate',
    '1536',
    '--vocab',
    '16000',
  ]);
  expect(made.code, made.stderr).toBe(0);
  const home = path.join(root, 'home');
  const train = [
    'train',
    '--model',
    model,
    '--home',
    home,
    '--steps',
    '3',
    '--batch-size',
    '8',
    '--gradient-checkpointing',
    'off',
    '--device',
    'cpu',
    '--out',
    path.join(root, 'adapter'),
  ];
  // Enough for the CLI (about 80 MB) but not for the engine beside it (weights alone are over 100 MB).
  cgroup.limit(220 * 1024 * 1024);
  const script = `echo $$ > ${path.join(cgroup.dir, 'cgroup.procs')} && exec "$0" "$@"`;
  const child = spawn('sh', ['-c', script, process.execPath, CLI, ...train], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const result = { status: await new Promise<number | null>((resolve) => child.on('close', resolve)), stderr };
  expect(result.status, result.stderr).toBe(1);
  expect(result.stderr.trim().split('\n').at(-1), result.stderr).toMatch(
    /^peft-studio train: error: run 1 interrupted: the engine process was killed \(SIGKILL\) at step 0; unless someone stopped it, the system ran out of memory: lower the batch size or sequence length, or turn gradient checkpointing on; resume continues from its last checkpoint; resume with: peft-studio runs resume 1$/,
  );

  // Outside the cgroup there is memory enough: the same run continues and completes.
  const resumed = await runCliAsync(['runs', 'resume', '1', '--home', home]);
  expect(resumed.code, resumed.stderr).toBe(0);
  const store = Store.open(home);
  expect(store.run(1)).toMatchObject({ status: 'completed', step: 3, error: null });
  store.close();
});
