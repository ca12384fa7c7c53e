// Training data: a JSONL file with one example per line, either pre-tokenized
//   {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}   (labels optional, default input_ids; -100 = not scored)
// or raw text, tokenized with the model folder's tokenizer.json and ended with its EOS token
//   {"text": "User: Hi!\nAssistant: Hello."}
// Labels are not shifted here: the engine scores position t against labels[t + 1], as transformers does.
// Legend: B = batch, T = sequence.
import fs from 'node:fs';
import readline from 'node:readline';
import { UserError } from '../../shared/errors.js';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.js';
import { Rng } from '../util/random.js';

/** Label value of a token that is not scored (padding, prompts), as in PyTorch's cross-entropy. */
export const IGNORE_INDEX = -100;

export interface TokenizedExample {
  inputIds: Int32Array; // [T]
  labels: Int32Array; // [T], IGNORE_INDEX where not scored
}

export interface TrainingDataOptions {
  /** Model folder whose tokenizer.json (and tokenizer_config.json for EOS) tokenizes "text" lines. */
  modelDir: string;
  vocabSize: number;
  /** Longer examples are cut to this many tokens. */
  maxSeqLen: number;
}

/** Reads and checks every example; errors name the file and line. The tokenizer is loaded only if a "text" line needs it. */
export async function loadTrainingData(file: string, options: TrainingDataOptions): Promise<TokenizedExample[]> {
  const { vocabSize, maxSeqLen } = options;
  if (!Number.isInteger(maxSeqLen) || maxSeqLen <= 0) throw new UserError(`maximum sequence length must be a positive integer, found ${maxSeqLen}`);
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    throw new UserError(`${file}: cannot open training data (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    throw new UserError(`${file}: not a file; training data is a JSONL file`);
  }

  let tokenizer: ModelTokenizer | null = null;
  const examples: TokenizedExample[] = [];
  let lineNumber = 0;
  const lines = readline.createInterface({ input: handle.createReadStream({ encoding: 'utf8', autoClose: false }), crlfDelay: Infinity });
  try {
    for await (const rawLine of lines) {
      lineNumber++;
      const line = lineNumber === 1 ? rawLine.replace(/^\uFEFF/, '') : rawLine; // editors on Windows may add a BOM
      if (line.trim() === '') continue;
      const where = `${file}:${lineNumber}`;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (err) {
        throw new UserError(`${where}: invalid JSON (${(err as Error).message})`);
      }
      if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new UserError(`${where}: expected a JSON object, found ${JSON.stringify(record).slice(0, 40)}`);

      let inputIds: Int32Array;
      let labels: Int32Array;
      if ('input_ids' in record) {
        // Pre-tokenized ids win over "text" when a line has both.
        inputIds = tokenIds(record.input_ids, 'input_ids', where, vocabSize, false);
        if (inputIds.length === 0) throw new UserError(`${where}: "input_ids" is empty`);
        if ('labels' in record && record.labels != null) {
          labels = tokenIds(record.labels, 'labels', where, vocabSize, true);
          if (labels.length !== inputIds.length) throw new UserError(`${where}: "labels" has ${labels.length} entries, "input_ids" has ${inputIds.length}; they must match`);
        } else {
          labels = inputIds.slice();
        }
      } else if ('text' in record) {
        if (typeof record.text !== 'string') throw new UserError(`${where}: "text" must be a string`);
        tokenizer ??= loadTokenizer(options.modelDir);
        const ids = tokenizer.encode(record.text);
        if (tokenizer.eosId !== null) ids.push(tokenizer.eosId);
        if (ids.length === 0) throw new UserError(`${where}: "text" is empty`);
        inputIds = tokenIds(ids, 'text', where, vocabSize, false);
        labels = inputIds.slice();
      } else {
        throw new UserError(`${where}: expected a "text" or an "input_ids" field, found ${Object.keys(record).map((k) => `"${k}"`).join(', ') || 'none'}`);
      }
      examples.push({ inputIds: inputIds.subarray(0, maxSeqLen), labels: labels.subarray(0, maxSeqLen) });
    }
  } finally {
    lines.close();
    await handle.close();
  }

  if (examples.length === 0) throw new UserError(`${file}: no examples (every line is empty)`);
  // After the shift, position 0's label is never scored, so a dataset needs a scored label past some first token.
  if (!examples.some((e) => e.labels.subarray(1).some((label) => label !== IGNORE_INDEX))) {
    throw new UserError(`${file}: nothing to train on: every label is ${IGNORE_INDEX} (the first token of an example is never scored)`);
  }
  return examples;
}

/** Checks a list of token ids (or labels, which may also be IGNORE_INDEX) against the vocabulary. */
function tokenIds(value: unknown, field: string, where: string, vocabSize: number, isLabels: boolean): Int32Array {
  if (!Array.isArray(value)) throw new UserError(`${where}: "${field}" must be an array of integers`);
  const ids = new Int32Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const id = value[i];
    if (!Number.isInteger(id)) throw new UserError(`${where}: "${field}"[${i}] is ${JSON.stringify(id) ?? 'undefined'}, expected an integer token id`);
    if ((id < 0 || id >= vocabSize) && !(isLabels && id === IGNORE_INDEX)) {
      const source = field === 'text' ? 'the tokenizer produced' : `"${field}" has`;
      throw new UserError(`${where}: ${source} token id ${id}, outside the model's vocabulary of ${vocabSize} (ids 0..${vocabSize - 1})`);
    }
    ids[i] = id;
  }
  return ids;
}

/** One padded micro-batch, rows right-padded to the longest example in it. */
export interface Batch {
  batchSize: number; // B
  seqLen: number; // T
  inputIds: Int32Array; // [B * T] row-major, padding = padId
  labels: Int32Array; // [B * T] row-major, padding = IGNORE_INDEX
}

export interface BatchOptions {
  batchSize: number;
  /** Seeds the example order when `shuffle` is set. */
  seed: number;
  shuffle: boolean;
  padId: number;
}

/** Number of batches in one epoch; the last, partial batch counts. */
export function countBatches(exampleCount: number, batchSize: number): number {
  return Math.ceil(exampleCount / batchSize);
}

/** One epoch of batches, in file order or shuffled by `seed`; the last batch may be smaller. */
export function* batches(examples: readonly TokenizedExample[], options: BatchOptions): Generator<Batch> {
  const { batchSize, padId } = options;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new UserError(`batch size must be a positive integer, found ${batchSize}`);
  const order = examples.map((_, i) => i);
  if (options.shuffle) new Rng(options.seed).shuffle(order);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize).map((i) => examples[i]);
    const seqLen = Math.max(...rows.map((e) => e.inputIds.length));
    const inputIds = new Int32Array(rows.length * seqLen).fill(padId);
    const labels = new Int32Array(rows.length * seqLen).fill(IGNORE_INDEX);
    rows.forEach((example, b) => {
      inputIds.set(example.inputIds, b * seqLen);
      labels.set(example.labels, b * seqLen);
    });
    yield { batchSize: rows.length, seqLen, inputIds, labels };
  }
}
