// The Data step's view of a file on real files: the table's pages, the rows cut and why, the duplicates and dropping
// them, for a CSV with CRLF and LF line endings mixed and a JSONL with broken rows.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { prepareDataset } from '../../main/data/dataset.js';
import { inspectDataset } from '../../main/data/inspect.js';
import { IGNORE_INDEX, type RenderOutcome } from '../../main/data/render.js';
import { DatasetStatsCollector } from '../../main/data/stats.js';
import { datasetPage } from '../../main/data/table.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import type { CheckedParams } from '../../shared/api.js';
import { duplicatesWarning, type DatasetTableRow } from '../../shared/data.js';
import type { DataSettings } from '../../shared/training.js';
import { defaultDataSettings } from '../../shared/trainJob.js';
import { tempDir } from '../support/engine.js';

let work: string;
let model: string;
let csv: string;
let jsonl: string;

const QA: DataSettings = {
  ...defaultDataSettings(),
  format: 'prompt-completion',
  columns: { prompt: 'question', completion: 'answer' },
  skipBadRows: true,
};
const MAX_SEQ_LEN = 64;
const LONG_ANSWER = 'spokes and wheels '.repeat(20).trim();

beforeAll(() => {
  work = tempDir('data-table');
  model = path.join(work, 'model');
  createTinyModel(model);
  // 30 data rows on lines 2..31: rows 12 and 20 repeat row 2, row 25 repeats row 3; line 16 has one field too many;
  // line 28's answer is longer than MAX_SEQ_LEN tokens. Line endings alternate between CRLF and LF.
  const rows = Array.from({ length: 30 }, (_, i) => `"Question ${i + 2}?","Answer ${i + 2}."`);
  rows[12 - 2] = rows[0];
  rows[20 - 2] = rows[0];
  rows[25 - 2] = rows[1];
  rows[16 - 2] = 'one,two,three';
  rows[28 - 2] = `"Question 28?","${LONG_ANSWER}"`;
  csv = path.join(work, 'support.csv');
  fs.writeFileSync(csv, ['question,answer', ...rows].map((line, i) => line + (i % 2 ? '\n' : '\r\n')).join(''));
  jsonl = path.join(work, 'broken.jsonl');
  fs.writeFileSync(
    jsonl,
    [
      '{"prompt": "Hi", "completion": "Hello."}',
      '{"prompt": "Price?", "completion": ',
      '{"prompt": "Hi", "completion": "Hello."}',
      '{"prompt": "Open?"}',
      '{"prompt": "Open?", "completion": "Until six."}',
    ].join('\n') + '\n',
  );
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function pageParams(file: string, data: DataSettings, offset: number, limit = 20): CheckedParams<'datasets.rows'> {
  return { file, modelDir: model, data, maxSeqLen: MAX_SEQ_LEN, offset, limit };
}

/** Each table row's trained and untrained text, or its kind and reason. */
function shown(row: DatasetTableRow) {
  if (row.kind !== 'sample') return row;
  const text = (trained: boolean) =>
    row.preview.tokens
      .filter((t) => t.trained === trained)
      .map((t) => t.text)
      .join('');
  return { row: row.preview.row, trained: text(true), context: text(false), cutTokens: row.cutTokens };
}

describe('datasetPage', () => {
  test('pages of 20 cover every row of a CRLF/LF CSV in file order, bad ones with their reason', async () => {
    const first = await datasetPage(pageParams(csv, QA, 0));
    const second = await datasetPage(pageParams(csv, QA, 20));
    expect(first).toMatchObject({ offset: 0, more: true });
    expect(second).toMatchObject({ offset: 20, more: false });
    const rows = [...first.rows, ...second.rows].map(shown);
    expect(rows).toHaveLength(30);
    expect(rows.map((r) => r.row)).toEqual(Array.from({ length: 30 }, (_, i) => i + 2));
    // The answer and the EOS are trained, the question is context; no quote marks are left from the CSV.
    expect(rows[0]).toMatchObject({
      trained: expect.stringMatching(/^Answer 2\./),
      context: expect.stringContaining('Question 2?'),
      cutTokens: 0,
    });
    expect(rows[0]).not.toMatchObject({ trained: expect.stringContaining('"') });
    expect(rows[14]).toEqual({ kind: 'bad', row: 16, reason: '3 fields, but the header has 2' });
    const long = rows[26] as { trained: string; cutTokens: number };
    expect(long.cutTokens).toBeGreaterThan(0);
    expect(long.trained.length).toBeLessThan(LONG_ANSWER.length); // tokens past the limit are not shown as trained
  });

  test('a page past the end is empty; a JSONL page shows the broken rows where they are', async () => {
    expect(await datasetPage(pageParams(csv, QA, 40))).toEqual({ offset: 40, rows: [], more: false });
    const page = await datasetPage(pageParams(jsonl, { ...defaultDataSettings(), skipBadRows: true }, 0, 3));
    expect(page.more).toBe(true);
    expect(page.rows.map(shown)).toEqual([
      { row: 1, trained: expect.stringMatching(/^Hello\./), context: expect.stringContaining('Hi'), cutTokens: 0 },
      { kind: 'bad', row: 2, reason: expect.stringMatching(/JSON/) },
      { row: 3, trained: expect.stringMatching(/^Hello\./), context: expect.stringContaining('Hi'), cutTokens: 0 },
    ]);
  });
});

describe('inspectDataset: cut rows and duplicates', () => {
  test('lists every cut row with why, in row order, and each duplicate with the row it repeats', async () => {
    const inspection = await inspectDataset({
      file: csv,
      modelDir: model,
      data: QA,
      maxSeqLen: MAX_SEQ_LEN,
      previewRows: 1,
    });
    expect(inspection.stats).toMatchObject({ rows: 30, badRows: 1, duplicateRows: 3, truncatedRows: 1 });
    expect(inspection.duplicates).toEqual([
      { row: 12, firstRow: 2 },
      { row: 20, firstRow: 2 },
      { row: 25, firstRow: 3 },
    ]);
    expect(inspection.cutRows).toEqual([
      { row: 16, reason: '3 fields, but the header has 2' },
      {
        row: 28,
        reason: expect.stringMatching(
          /^\d+ tokens, more than the maximum sequence length of 64: the last \d+ are cut$/,
        ),
      },
    ]);
    expect(duplicatesWarning(inspection.stats!)).toBeNull(); // 3 of 30: 10%
  });

  test('dropping duplicates lists them as cut, trains on fewer rows, and counts them still', async () => {
    const inspection = await inspectDataset({
      file: jsonl,
      modelDir: model,
      data: { ...defaultDataSettings(), skipBadRows: true, dropDuplicates: true },
      maxSeqLen: MAX_SEQ_LEN,
      previewRows: 1,
    });
    expect(inspection.cutRows).toEqual([
      { row: 2, reason: expect.stringMatching(/JSON/) },
      { row: 3, reason: 'the same as row 1: dropped' },
      { row: 4, reason: expect.stringContaining('"completion"') },
    ]);
    const prepare = (dropDuplicates: boolean) =>
      prepareDataset({
        file: csv,
        modelDir: model,
        vocabSize: 512,
        maxSeqLen: MAX_SEQ_LEN,
        format: 'prompt-completion',
        mapping: QA.columns,
        trainOn: 'completion',
        pack: false,
        skipBadRows: true,
        dropDuplicates,
        validationFraction: 0,
        seed: 0,
      });
    const [all, distinct] = [await prepare(false), await prepare(true)];
    expect(all.sequences).toHaveLength(29);
    expect(distinct.sequences).toHaveLength(26);
    expect(distinct.sequences.flatMap((s) => s.rows)).not.toContain(12);
    expect(distinct.stats.duplicateRows).toBe(3);
    expect(distinct.stats.tokens).toBeLessThan(all.stats.tokens);
  });

  test('a warning above a fifth of the rows repeated', async () => {
    const inspection = await inspectDataset({
      file: jsonl,
      modelDir: model,
      data: { ...defaultDataSettings(), skipBadRows: true },
      maxSeqLen: MAX_SEQ_LEN,
      previewRows: 1,
    });
    expect(inspection.stats).toMatchObject({ rows: 5, duplicateRows: 1 });
    expect(inspection.cutRows.map((r) => r.row)).toEqual([2, 4]); // kept duplicates are not cut
    expect(duplicatesWarning(inspection.stats!)).toBeNull(); // exactly 20%
    expect(duplicatesWarning({ ...inspection.stats!, rows: 4 })).toBe(
      '1 of the 4 rows (25%) repeat an earlier row: the model will learn those answers more than the rest. Remove the duplicates',
    );
  });
});

describe('DatasetStatsCollector with duplicates dropped', () => {
  test('a dropped duplicate is counted, and left out of the tokens, lengths and fingerprint', () => {
    const rendered = (row: number, ids: number[]): RenderOutcome => ({
      kind: 'rendered',
      sample: { row, inputIds: Int32Array.from(ids), labels: Int32Array.from(ids, (id, t) => (t ? id : IGNORE_INDEX)) },
    });
    const sums = (dropDuplicates: boolean) => {
      const collector = new DatasetStatsCollector({ maxSeqLen: 8, dropDuplicates });
      const earlier = [rendered(1, [1, 2, 3]), rendered(2, [4, 5]), rendered(3, [1, 2, 3])].map((o) =>
        collector.add(o),
      );
      return { earlier, stats: collector.result() };
    };
    const kept = sums(false);
    const dropped = sums(true);
    expect(kept.earlier).toEqual([null, null, 1]);
    expect(dropped.earlier).toEqual([null, null, 1]);
    expect(kept.stats).toMatchObject({ rows: 3, duplicateRows: 1, tokens: 8 });
    expect(dropped.stats).toMatchObject({ rows: 3, duplicateRows: 1, tokens: 5, trainedTokens: 3 });
    expect(dropped.stats.renderedSha256).not.toBe(kept.stats.renderedSha256);
  });
});
