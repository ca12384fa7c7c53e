import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { batches, countBatches, IGNORE_INDEX, loadTrainingData, type TokenizedExample } from '../../main/data/trainingData.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-training-data-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const modelDir = path.join(root, 'model');
createTinyModel(modelDir, { vocab: 512 });
const options = { modelDir, vocabSize: 512, maxSeqLen: 64 };

let files = 0;
function jsonl(content: string): string {
  const file = path.join(root, `data-${files++}.jsonl`);
  fs.writeFileSync(file, content);
  return file;
}

async function loadError(file: string, opts = options): Promise<string> {
  const err = await loadTrainingData(file, opts).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

const ids = (array: Int32Array) => Array.from(array);

describe('loadTrainingData', () => {
  test('pre-tokenized lines: labels default to input_ids, -100 kept, blank lines skipped', async () => {
    const file = jsonl('{"input_ids": [5, 6, 7]}\n\n{"input_ids": [8, 9, 10], "labels": [-100, 9, 10]}\n');
    const examples = await loadTrainingData(file, options);
    expect(examples.map((e) => [ids(e.inputIds), ids(e.labels)])).toEqual([
      [[5, 6, 7], [5, 6, 7]],
      [[8, 9, 10], [-100, 9, 10]],
    ]);
  });

  test('text lines are tokenized with the model tokenizer and end with its EOS', async () => {
    const text = 'User: Where is my order?\nAssistant: It ships tomorrow.';
    const [example] = await loadTrainingData(jsonl(`${JSON.stringify({ text })}\n`), options);
    const expected = [...loadTokenizer(modelDir).encode(text), 0];
    expect(ids(example.inputIds)).toEqual(expected);
    expect(ids(example.labels)).toEqual(expected);
  });

  test('truncates to maxSeqLen; reads CRLF line ends and a leading byte-order mark', async () => {
    const file = jsonl('\uFEFF{"input_ids": [1, 2, 3, 4, 5, 6]}\r\n{"text": "a b c d e f g h"}\r\n');
    const examples = await loadTrainingData(file, { ...options, maxSeqLen: 4 });
    expect(examples.map((e) => e.inputIds.length)).toEqual([4, 4]);
    expect(ids(examples[0].labels)).toEqual([1, 2, 3, 4]);
  });

  test('missing file, or a folder', async () => {
    const file = path.join(root, 'missing.jsonl');
    const message = await loadError(file);
    expect(message).toContain(file);
    expect(message).toContain('ENOENT');
    expect(await loadError(root)).toContain(root);
  });

  test('invalid JSON names the line', async () => {
    const file = jsonl('{"input_ids": [1, 2]}\n{"input_ids": [1, 2\n');
    expect(await loadError(file)).toMatch(new RegExp(`^${escapeRegExp(file)}:2: invalid JSON`));
  });

  test('a line with neither field', async () => {
    const file = jsonl('{"input_ids": [1, 2]}\n\n{"prompt": "hi", "completion": "hello"}\n');
    const message = await loadError(file);
    expect(message).toContain(`${file}:3:`);
    expect(message).toContain('"text" or an "input_ids"');
    expect(message).toContain('"prompt"');
  });

  test('a line that is not an object, and fields of the wrong type', async () => {
    expect(await loadError(jsonl('[1, 2, 3]\n'))).toContain(':1: expected a JSON object');
    expect(await loadError(jsonl('{"text": 42}\n'))).toContain(':1: "text" must be a string');
    expect(await loadError(jsonl('{"input_ids": [1, 2.5]}\n'))).toContain(':1: "input_ids"[1] is 2.5');
    expect(await loadError(jsonl('{"input_ids": []}\n'))).toContain(':1: "input_ids" is empty');
  });

  test('token id out of vocabulary: the id, the line and the vocabulary size', async () => {
    const file = jsonl('{"input_ids": [1, 2]}\n{"input_ids": [1, 512]}\n');
    const message = await loadError(file);
    expect(message).toContain(`${file}:2:`);
    expect(message).toContain('token id 512');
    expect(message).toContain('vocabulary of 512');
    expect(await loadError(jsonl('{"input_ids": [1, 2], "labels": [1, -1]}\n'))).toContain('token id -1');
  });

  test('a tokenizer larger than the model vocabulary is caught on the text line', async () => {
    const file = jsonl('{"text": "ok"}\n{"text": "Thank you for your message."}\n');
    const message = await loadError(file, { ...options, vocabSize: 300 });
    expect(message).toContain(`${file}:2: the tokenizer produced token id`);
    expect(message).toContain('vocabulary of 300');
  });

  test('labels of another length than input_ids', async () => {
    const file = jsonl('{"input_ids": [1, 2, 3], "labels": [1, 2]}\n');
    const message = await loadError(file);
    expect(message).toContain(`${file}:1:`);
    expect(message).toContain('"labels" has 2 entries, "input_ids" has 3');
  });

  test('empty dataset: no lines, or nothing scored', async () => {
    const empty = jsonl('\n  \n');
    expect(await loadError(empty)).toBe(`${empty}: no examples (every line is empty)`);
    const ignored = jsonl('{"input_ids": [1, 2], "labels": [-100, -100]}\n{"input_ids": [3, 4, 5], "labels": [3, -100, -100]}\n');
    const message = await loadError(ignored);
    expect(message).toContain(ignored);
    expect(message).toContain('nothing to train on');
  });

  test('text without a tokenizer names the missing tokenizer.json', async () => {
    const bare = path.join(root, 'bare-model');
    fs.mkdirSync(bare);
    const message = await loadError(jsonl('{"text": "hello"}\n'), { ...options, modelDir: bare });
    expect(message).toContain(path.join(bare, 'tokenizer.json'));
  });
});

describe('batches', () => {
  const example = (length: number, first: number): TokenizedExample => {
    const inputIds = Int32Array.from({ length }, (_, i) => first + i);
    return { inputIds, labels: inputIds.map((id, i) => (i === 0 ? IGNORE_INDEX : id)) };
  };
  const examples = [example(3, 10), example(5, 20), example(2, 30), example(4, 40), example(1, 50)];

  test('right-pads each batch to its longest example; the partial last batch is kept', () => {
    const all = [...batches(examples, { batchSize: 2, seed: 0, shuffle: false, padId: 7 })];
    expect(all.map((b) => [b.batchSize, b.seqLen])).toEqual([
      [2, 5],
      [2, 4],
      [1, 1],
    ]);
    expect(countBatches(examples.length, 2)).toBe(all.length);
    const [first] = all;
    expect(ids(first.inputIds)).toEqual([10, 11, 12, 7, 7, 20, 21, 22, 23, 24]);
    expect(ids(first.labels)).toEqual([-100, 11, 12, -100, -100, -100, 21, 22, 23, 24]);
    expect(ids(all[2].inputIds)).toEqual([50]);
  });

  test('shuffling is a permutation that repeats for a seed and changes with it', () => {
    const firstIds = (seed: number) => [...batches(examples, { batchSize: 2, seed, shuffle: true, padId: 0 })].flatMap((b) => Array.from({ length: b.batchSize }, (_, r) => b.inputIds[r * b.seqLen]));
    expect(firstIds(1)).toEqual(firstIds(1));
    expect([...firstIds(1)].sort()).toEqual([10, 20, 30, 40, 50]);
    const orders = new Set([1, 2, 3, 4, 5].map((seed) => firstIds(seed).join(',')));
    expect(orders.size).toBeGreaterThan(1);
  });

  test('countBatches rounds up, and a batch size of zero is refused', () => {
    expect([countBatches(0, 4), countBatches(4, 4), countBatches(5, 4)]).toEqual([0, 1, 2]);
    expect(() => batches(examples, { batchSize: 0, seed: 0, shuffle: false, padId: 0 }).next()).toThrow(UserError);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
