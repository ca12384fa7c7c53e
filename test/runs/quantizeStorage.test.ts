// Quantize-on-load on a full disk, made real with a tiny tmpfs in a private mount namespace (`unshare --mount`, as
// root): one clear line, a non-zero exit, and no half-written 4-bit copy left in the cache.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI, ROOT } from '../support/cli.js';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'quantize-storage-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

it('a disk that fills while the 4-bit copy is written fails in one line and leaves nothing in the cache', async () => {
  const home = path.join(root, 'home');
  const cache = path.join(home, 'quantized');
  fs.mkdirSync(cache, { recursive: true });
  const log = path.join(root, 'train');
  const args = [
    'eval',
    '--model',
    path.join(ROOT, 'resources/demo/model'),
    '--data',
    path.join(ROOT, 'resources/demo/data.jsonl'),
  ];
  // The demo model's 4-bit copy is about 1 MB: 300 kB fills during the weights.
  const script =
    `mount -t tmpfs -o size=300k tmpfs ${quote(cache)}; ` +
    `PEFT_STUDIO_HOME=${quote(home)} ${quote(process.execPath)} ${quote(CLI)} ${[...args, '--quantize', 'nf4'].map(quote).join(' ')} ` +
    `>${quote(`${log}.out`)} 2>${quote(`${log}.err`)} && echo 0 >${quote(`${log}.code`)} || echo $? >${quote(`${log}.code`)}; ` +
    `ls -A ${quote(cache)} >${quote(`${log}.ls`)}`;
  const child = spawn('unshare', ['--mount', 'sh', '-ec', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  expect(await new Promise<number | null>((resolve) => child.on('close', resolve)), stderr).toBe(0);

  const err = fs.readFileSync(`${log}.err`, 'utf8').trim();
  expect(Number(fs.readFileSync(`${log}.code`, 'utf8'))).toBe(1);
  expect(err.split('\n').at(-1)).toMatch(
    /^peft-studio eval: error: .*quantized.*: the disk is full; free some space and try again$/,
  );
  expect(err).not.toMatch(/at .*\.js:\d+/);
  expect(fs.readFileSync(`${log}.ls`, 'utf8')).toBe(''); // no temp folder, no partial copy
});
