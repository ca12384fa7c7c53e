// Datasets through the command line: data inspect, and train on every format with bad-row handling and packing.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { lastJson, ROOT, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

const PARQUET = path.join(ROOT, 'test/fixtures/data');

// Asynchronous: a test worker blocked for long misses Vitest's RPC deadline.
const cli = (...args: string[]) => runCliAsync(args);

let work: string;
let model: string;
let chat: string;

beforeAll(async () => {
  work = tempDir('data-cli');
  model = path.join(work, 'model');
  expect((await cli('create-tiny-model', model)).code).toBe(0);
  chat = path.join(work, 'chat.jsonl');
  const conversation = (q: string, a: string) =>
    JSON.stringify({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: q },
        { role: 'assistant', content: a },
      ],
    });
  fs.writeFileSync(
    chat,
    [
      conversation('Hi there', 'Hello!'),
      '{"messages": [{"role": "user", "content": "no answer"}]}',
      conversation('Price?', 'Ten euros.'),
      conversation('Open?', 'Yes, until six.'),
    ].join('\r\n') + '\r\n',
  );
});

describe('data inspect', () => {
  it('reports format, stats, every bad row with its line, and which tokens train', async () => {
    const result = await cli('data', 'inspect', chat, '--model', model, '--rows', '2', '--json');
    expect(result.code, result.stderr).toBe(0);
    const report = lastJson(result.stdout);
    expect(report.format).toBe('messages');
    expect(report.stats).toMatchObject({ rows: 4, badRows: 1 });
    expect(report.badRows).toEqual([{ row: 2, reason: expect.stringMatching(/assistant/) }]);
    expect(report.sourceSha256).toMatch(/^[0-9a-f]{64}$/);
    const [first] = report.previews;
    expect(first.row).toBe(1);
    const trainedText = first.tokens
      .filter((t: { trained: boolean }) => t.trained)
      .map((t: { text: string }) => t.text)
      .join('');
    const untrainedText = first.tokens
      .filter((t: { trained: boolean }) => !t.trained)
      .map((t: { text: string }) => t.text)
      .join('');
    // Completion-only loss: the assistant's answer (and its end-of-turn) train, the system and user turns do not.
    expect(trainedText).toContain('Hello!');
    expect(untrainedText).toContain('Hi there');
    expect(untrainedText).toContain('Be brief.');
    expect(trainedText).not.toContain('Hi there');
  });

  it('prints a readable preview with the trained tokens marked', async () => {
    const result = await cli('data', 'inspect', chat, '--model', model, '--rows', '1');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/messages, sha256/);
    expect(result.stdout).toMatch(/bad .*chat\.jsonl:2: /);
    expect(result.stdout).toMatch(/\[\[Hello!/);
  });
  it('warns, as training starts, when the steps go over the rows more than 10 times', async () => {
    const out = path.join(work, 'too-many-passes');
    const run = await cli(
      'train',
      '--model',
      model,
      '--data',
      chat,
      '--skip-bad-rows',
      '--out',
      out,
      '--steps',
      '12',
      '--batch-size',
      '4',
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /^warning: 12 steps of 4 rows go over the 3 training rows about 16 times: the model will memorise/m,
    );
  });

  it('reads a question,answer CSV with mixed line endings, and warns about answers still in quotes', async () => {
    const csv = path.join(work, 'support.csv');
    // Row 3's answer holds literal quotes (doubled, as CSV escapes them); the others are only quoted fields.
    const rows = ['question,answer', '"Reset?","Hold the button."', '"Hours?","""9 to 5"""', 'Where?,"At the back."'];
    fs.writeFileSync(csv, `${rows[0]}\r\n${rows[1]}\n${rows[2]}\r\n${rows[3]}\n`);
    const columns = ['--format', 'prompt-completion', '--columns', 'prompt=question,completion=answer'];
    const result = await cli('data', 'inspect', csv, '--model', model, ...columns, '--json');
    expect(result.code, result.stderr).toBe(0);
    const inspection = lastJson(result.stdout);
    expect(inspection.stats).toMatchObject({ rows: 3, badRows: 0, quotedValueRows: 1 });
    const text = await cli('data', 'inspect', csv, '--model', model, ...columns);
    expect(text.stdout).toMatch(/^warning: 1 row has a text wrapped in double quotes: the model will learn/m);
  });
});

describe('train on the data people have', () => {
  it('refuses a dataset with bad rows, naming the first, unless --skip-bad-rows', async () => {
    const refused = await cli('train', '--model', model, '--data', chat, '--out', path.join(work, 'a'), '--steps', '1');
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    // The field travels from the engine process with the error and comes back as its flag.
    expect(refused.stderr).toMatch(
      /^peft-studio train: error: --skip-bad-rows: .*chat\.jsonl:2: .*\(1 bad row; fix them or skip them\)$/m,
    );
    const skipped = await cli(
      'train',
      '--model',
      model,
      '--data',
      chat,
      '--out',
      path.join(work, 'a'),
      '--steps',
      '1',
      '--skip-bad-rows',
    );
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stderr).toMatch(/skipped .*chat\.jsonl:2: /);
    expect(skipped.stderr).toMatch(/skipped 1 bad rows/);
  });

  it('trains from CSV with a column mapping, and from Parquet written by pyarrow', async () => {
    const csv = path.join(work, 'qa.csv');
    fs.writeFileSync(csv, 'question,answer\n"What is 2+2?",4\n"Say ""hi""","hi\nthere"\n');
    const fromCsv = await cli(
      'train',
      '--model',
      model,
      '--data',
      csv,
      '--columns',
      'prompt=question,completion=answer',
      '--out',
      path.join(work, 'csv'),
      '--steps',
      '2',
      '--json',
    );
    expect(fromCsv.code, fromCsv.stderr).toBe(0);
    expect(fs.existsSync(path.join(work, 'csv', 'adapter_model.safetensors'))).toBe(true);
    const fromParquet = await cli(
      'train',
      '--model',
      model,
      '--data',
      path.join(PARQUET, 'chat.parquet'),
      '--skip-bad-rows',
      '--out',
      path.join(work, 'pq'),
      '--steps',
      '2',
      '--json',
    );
    expect(fromParquet.code, fromParquet.stderr).toBe(0);
  });

  it('packs short samples into full sequences and trains on everything when asked', async () => {
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      chat,
      '--skip-bad-rows',
      '--pack',
      '--train-on',
      'all',
      '--max-seq-len',
      '128',
      '--out',
      path.join(work, 'packed'),
      '--steps',
      '2',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    expect(lastJson(result.stdout).steps).toBe(2);
  });

  it('refuses a dataset where every row is bad, even with --skip-bad-rows', async () => {
    const bad = path.join(work, 'all-bad.jsonl');
    fs.writeFileSync(
      bad,
      '{"messages": [{"role": "user", "content": "x"}]}\n{"messages": [{"role": "user", "content": "y"}]}\n',
    );
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      bad,
      '--skip-bad-rows',
      '--out',
      path.join(work, 'b'),
      '--steps',
      '1',
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/all-bad\.jsonl: nothing to train on \(2 rows read, 2 bad/);
  });
});
