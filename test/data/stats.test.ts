import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { IGNORE_INDEX, type RenderOutcome } from '../../main/data/render.js';
import type { RenderedSample } from '../../main/data/samples.js';
import { DatasetStatsCollector, renderedSha256, sha256File } from '../../main/data/stats.js';
import { passesWarning, quotedValuesWarning } from '../../shared/data.js';

const I = IGNORE_INDEX;
const rendered = (row: number, inputIds: number[], labels: number[] = inputIds): RenderOutcome => ({
  kind: 'rendered',
  sample: { row, inputIds: Int32Array.from(inputIds), labels: Int32Array.from(labels) },
});
const samplesOf = (outcomes: RenderOutcome[]) => outcomes.flatMap((o) => (o.kind === 'rendered' ? [o.sample] : []));

describe('DatasetStatsCollector', () => {
  test('counts rows, bad, empty and duplicate rows, tokens after truncation, trained tokens and cut tokens', () => {
    const outcomes: RenderOutcome[] = [
      rendered(1, [1, 2, 3, 4], [I, I, 3, 4]), // 4 tokens, 2 trained
      rendered(2, [5, 6, 7, 8, 9, 10], [5, 6, 7, 8, 9, 10]), // 6 tokens cut to 5, 4 trained (the first never is)
      { kind: 'empty', row: 3 },
      { kind: 'bad', bad: { row: 4, reason: 'no assistant message to train on' } },
      rendered(5, [1, 2, 3, 4], [I, I, 3, 4]), // same ids and labels as row 1: a duplicate
      rendered(6, [1, 2, 3, 4], [1, 2, 3, 4]), // same ids, other tokens trained: not a duplicate
    ];
    const collector = new DatasetStatsCollector({ maxSeqLen: 5 });
    collector.countBadRow(); // a row the reader could not parse
    outcomes.forEach((o) => collector.add(o));
    const stats = collector.result();
    expect(stats).toMatchObject({
      rows: 7,
      badRows: 2,
      emptyRows: 1,
      duplicateRows: 1,
      tokens: 4 + 5 + 4 + 4,
      trainedTokens: 2 + 4 + 2 + 3,
      truncatedRows: 1,
      cutTokens: 1,
      minLength: 4,
      maxLength: 6,
      meanLength: 18 / 4,
      lengthHistogram: [{ from: 1, to: 16, rows: 4 }],
    });
    expect(stats.renderedSha256).toBe(renderedSha256(samplesOf(outcomes)));
  });

  test('counts rows with a text still wrapped in double quotes, and says so in one sentence', () => {
    const collector = new DatasetStatsCollector({ maxSeqLen: 8 });
    collector.noteQuotes({ kind: 'completion', prompt: 'How do I reset?', completion: '"Press reset."' });
    collector.noteQuotes({ kind: 'completion', prompt: 'He said "hi" to me', completion: 'ok' }); // quotes inside
    collector.noteQuotes({ kind: 'chat', messages: [{ role: 'assistant', content: ' "Hello there" \n' }] });
    collector.noteQuotes({ kind: 'text', text: '""' }); // nothing between them
    collector.noteQuotes({ kind: 'tokens', inputIds: [1, 2], labels: null });
    const stats = collector.result();
    expect(stats.quotedValueRows).toBe(2);
    expect(quotedValuesWarning(stats)).toBe(
      '2 rows have a text wrapped in double quotes: the model will learn to answer in quotes. Remove them, or check how the file was saved',
    );
    expect(quotedValuesWarning({ ...stats, quotedValueRows: 0 })).toBeNull();
    expect(quotedValuesWarning({ ...stats, quotedValueRows: undefined })).toBeNull(); // a record from before
  });

  test('warns when the steps go over a small dataset more than 10 times', () => {
    expect(passesWarning(200, 8, 189)).toBeNull(); // the demo recipe: 8.5 passes
    expect(passesWarning(100, 4, 30)).toBe(
      '100 steps of 4 rows go over the 30 training rows about 13 times: the model will memorise them rather than learn from them. Use fewer steps, or more data',
    );
    expect(passesWarning(10, 4, 0)).toBeNull();
  });

  test('the histogram has power-of-two buckets up to the longest row, empty ones included', () => {
    const collector = new DatasetStatsCollector({ maxSeqLen: 1024 });
    for (const [row, length] of [
      [1, 16],
      [2, 17],
      [3, 100],
      [4, 129],
    ])
      collector.add(
        rendered(
          row,
          Array.from({ length }, (_, t) => t + row),
        ),
      );
    expect(collector.result().lengthHistogram).toEqual([
      { from: 1, to: 16, rows: 1 },
      { from: 17, to: 32, rows: 1 },
      { from: 33, to: 64, rows: 0 },
      { from: 65, to: 128, rows: 1 },
      { from: 129, to: 256, rows: 1 },
    ]);
  });

  test('no rows: zeros, and the fingerprint of nothing', () => {
    const stats = new DatasetStatsCollector({ maxSeqLen: 8 }).result();
    expect(stats).toMatchObject({ rows: 0, tokens: 0, minLength: 0, maxLength: 0, meanLength: 0, lengthHistogram: [] });
    expect(stats.renderedSha256).toBe(crypto.createHash('sha256').digest('hex'));
  });
});

describe('fingerprints', () => {
  test('renderedSha256 hashes each sample as uint32 length, int32 ids, int32 labels, little-endian', () => {
    const samples: RenderedSample[] = [{ row: 9, inputIds: Int32Array.of(1, 70000), labels: Int32Array.of(I, 70000) }];
    const expected = crypto.createHash('sha256');
    const bytes = Buffer.alloc(4 + 8 + 8);
    bytes.writeUInt32LE(2, 0);
    [1, 70000, I, 70000].forEach((v, i) => bytes.writeInt32LE(v, 4 + 4 * i));
    expect(renderedSha256(samples)).toBe(expected.update(bytes).digest('hex'));
  });

  test('a changed label, a split sample or a subarray view changes nothing it should not', () => {
    const base = renderedSha256([{ row: 1, inputIds: Int32Array.of(1, 2, 3, 4), labels: Int32Array.of(1, 2, 3, 4) }]);
    expect(
      renderedSha256([{ row: 1, inputIds: Int32Array.of(1, 2, 3, 4), labels: Int32Array.of(I, 2, 3, 4) }]),
    ).not.toBe(base);
    const halves = [Int32Array.of(1, 2), Int32Array.of(3, 4)].map((ids, i) => ({ row: i, inputIds: ids, labels: ids }));
    expect(renderedSha256(halves)).not.toBe(base);
    const view = Int32Array.of(0, 1, 2, 3, 4, 0).subarray(1, 5);
    expect(renderedSha256([{ row: 7, inputIds: view, labels: view }])).toBe(base); // rows are not hashed
  });

  test('sha256File hashes the bytes; a missing file is a UserError naming it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-stats-'));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'data.jsonl');
    const content = Buffer.from('{"text": "hi"}\n'.repeat(10000));
    fs.writeFileSync(file, content);
    expect(await sha256File(file)).toBe(crypto.createHash('sha256').update(content).digest('hex'));
    await expect(sha256File(path.join(dir, 'missing.jsonl'))).rejects.toThrow(
      /missing\.jsonl: cannot read the dataset \(ENOENT\)/,
    );
  });
});
