// --drop-duplicates: a run trains on each distinct row once, says how many it dropped, and records the choice.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

const cli = (...args: string[]) => runCliAsync(args);

let work: string;
let model: string;
let data: string;

beforeAll(async () => {
  work = tempDir('drop-duplicates');
  model = path.join(work, 'model');
  expect((await cli('create-tiny-model', model)).code).toBe(0);
  data = path.join(work, 'support.jsonl');
  const row = (prompt: string, completion: string) => JSON.stringify({ prompt, completion });
  // 6 rows, 3 of them repeats (lines 3, 5 and 6): half the file.
  const rows = [row('Hi', 'Hello.'), row('Open?', 'Until six.'), row('Hi', 'Hello.'), row('Price?', 'Ten euros.')];
  fs.writeFileSync(data, [...rows, rows[1], rows[0]].join('\n') + '\n');
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('train --drop-duplicates', () => {
  const train = (out: string, ...flags: string[]) =>
    cli(
      'train',
      '--model',
      model,
      '--data',
      data,
      '--out',
      path.join(work, out),
      '--steps',
      '20',
      '--batch-size',
      '4',
      ...flags,
    );

  it('warns about the duplicates and trains on every row without the flag, on the distinct rows with it', async () => {
    const kept = await train('kept');
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stderr).toMatch(/^warning: 3 of the 6 rows \(50%\) repeat an earlier row/m);
    expect(kept.stderr).toMatch(/go over the 6 training rows/);

    const dropped = await train('dropped', '--drop-duplicates');
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stderr).toMatch(/dropped 3 duplicate rows/);
    expect(dropped.stderr).not.toMatch(/repeat an earlier row/);
    expect(dropped.stderr).toMatch(/go over the 3 training rows/);
  });

  it('is part of the job: in --dry-run and in data inspect, which lists the dropped rows', async () => {
    const dry = await cli(
      'train',
      '--model',
      model,
      '--data',
      data,
      '--out',
      path.join(work, 'dry'),
      '--drop-duplicates',
      '--dry-run',
      '--json',
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(lastJson(dry.stdout).data.dropDuplicates).toBe(true);
    const inspect = await cli('data', 'inspect', data, '--model', model, '--drop-duplicates');
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.stdout).toMatch(/^cut .*support\.jsonl:3: the same as row 1: dropped$/m);
    expect(inspect.stdout).toMatch(/^cut .*support\.jsonl:6: the same as row 1: dropped$/m);
    const plain = await cli('data', 'inspect', data, '--model', model);
    expect(plain.stdout).toMatch(/^warning: 3 of the 6 rows \(50%\) repeat an earlier row.* \(--drop-duplicates\)$/m);
  });
});
