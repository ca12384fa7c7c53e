// A data file far larger than the memory its reading may take: the readers must stream.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, expect, test } from 'vitest';
import { readSamples } from '../../main/data/formats.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-large-data-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const MB = 1024 * 1024;

// Heap is measured after full collections: what the reader keeps alive, not garbage awaiting collection.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** Writes about `megabytes` of prompt/completion rows, each ~1 KB, and returns how many. */
function writeRows(file: string, megabytes: number, kind: 'jsonl' | 'json' | 'csv'): number {
  const filler = 'lorem ipsum dolor sit amet, 日本語 😀 '.repeat(24);
  const fd = fs.openSync(file, 'w');
  let rows = 0;
  let written = fs.writeSync(fd, { jsonl: '', json: '[\n', csv: 'prompt,completion\n' }[kind]);
  while (written < megabytes * MB) {
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++, rows++) {
      const prompt = `question ${rows}\n${filler}`;
      const completion = `answer "${rows}"`;
      lines.push(
        kind === 'csv' ? `"${prompt}","${completion.replaceAll('"', '""')}"` : JSON.stringify({ prompt, completion }),
      );
    }
    const separator = kind === 'json' ? ',\n' : '\n';
    written += fs.writeSync(
      fd,
      (kind === 'json' && rows > 1000 ? separator : '') + lines.join(separator) + (kind === 'json' ? '' : '\n'),
    );
  }
  if (kind === 'json') fs.writeSync(fd, '\n]\n');
  fs.closeSync(fd);
  return rows;
}

test.each<['jsonl' | 'json' | 'csv', number]>([
  ['jsonl', 50],
  ['json', 20],
  ['csv', 20],
])('a %s file of %i MB streams with bounded memory', async (kind, megabytes) => {
  const file = path.join(root, `large.${kind}`);
  const rows = writeRows(file, megabytes, kind);
  const fileSize = fs.statSync(file).size;
  collectGarbage();
  const heapBefore = process.memoryUsage().heapUsed;
  let peakGrowth = 0;
  let samples = 0;
  let lastRow = 0;
  // Rows are line numbers in JSONL, element numbers in JSON, and the line a record starts on in CSV (two lines each).
  const lastExpected = { jsonl: rows, json: rows, csv: 2 * rows };
  for await (const item of readSamples(file)) {
    expect(item.type).toBe('sample');
    lastRow = item.row;
    if (++samples % 2000 === 0) {
      collectGarbage();
      peakGrowth = Math.max(peakGrowth, process.memoryUsage().heapUsed - heapBefore);
    }
  }
  expect(samples).toBe(rows);
  expect(lastRow).toBe(lastExpected[kind]);
  console.log(
    `${kind}: ${(fileSize / MB).toFixed(0)} MB, ${rows} rows, peak live heap growth ${(peakGrowth / MB).toFixed(1)} MB`,
  );
  expect(peakGrowth).toBeLessThan(fileSize / 10);
});
