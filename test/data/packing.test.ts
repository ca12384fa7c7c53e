import { describe, expect, test } from 'vitest';
import { UserError } from '../../shared/errors.js';
import {
  batches,
  countBatches,
  pack,
  splitTrainValidation,
  toSequences,
  truncate,
  type SequenceBatch,
  type TrainingSequence,
} from '../../main/data/packing.js';
import { IGNORE_INDEX } from '../../main/data/render.js';
import type { RenderedSample } from '../../main/data/samples.js';
import type { MicroBatch } from '../../main/engine/runtime/trainableModel.js';
import { Rng } from '../../main/util/random.js';

/** A sample of `length` tokens with distinct ids (row * 1000 + t); the first `prompt` labels are not trained. */
function sample(row: number, length: number, prompt = 0): RenderedSample {
  const inputIds = Int32Array.from({ length }, (_, t) => row * 1000 + t);
  const labels = inputIds.map((id, t) => (t < prompt ? IGNORE_INDEX : id));
  return { row, inputIds, labels };
}

const list = (a: Int32Array | undefined) => (a ? Array.from(a) : a);

describe('truncate', () => {
  test('keeps the first maxSeqLen tokens, counts rows and cut tokens, drops rows left with nothing to train', () => {
    const result = truncate([sample(1, 5), sample(2, 9), sample(3, 12, 10), sample(4, 4, 1)], 8);
    expect(result.samples.map((s) => [s.row, s.inputIds.length])).toEqual([
      [1, 5],
      [2, 8],
      [4, 4],
    ]);
    expect(list(result.samples[1].labels)).toEqual(list(sample(2, 8).labels));
    expect(result).toMatchObject({ truncatedRows: 2, cutTokens: 1 + 4, untrainedRows: [3] });
  });

  test('a sample trained only on its first token trains nothing (position 0 is never scored)', () => {
    const onlyFirst: RenderedSample = { row: 1, inputIds: Int32Array.of(1, 2), labels: Int32Array.of(1, IGNORE_INDEX) };
    expect(truncate([onlyFirst], 8).untrainedRows).toEqual([1]);
  });

  test('rejects a maximum below 2', () => {
    expect(() => truncate([], 1)).toThrow(UserError);
  });
});

describe('pack', () => {
  test('best fit in decreasing length: 6+2, 5+3 and 4 into three sequences of 8', () => {
    const packed = pack(
      [2, 5, 4, 6, 3].map((length, i) => sample(i + 1, length)),
      8,
    );
    expect(packed.map((s) => s.rows)).toEqual([[4, 1], [2, 5], [3]]);
  });

  test('each sample keeps its tokens, restarts positions at 0, has its own segment and an untrained first label', () => {
    const samples = [sample(1, 3), sample(2, 2), sample(3, 4, 2)];
    const [only] = pack(samples, 16);
    expect(only.rows).toEqual([3, 1, 2]);
    expect(list(only.inputIds)).toEqual([...samples[2].inputIds, ...samples[0].inputIds, ...samples[1].inputIds]);
    expect(list(only.positionIds)).toEqual([0, 1, 2, 3, 0, 1, 2, 0, 1]);
    expect(list(only.segmentIds)).toEqual([0, 0, 0, 0, 1, 1, 1, 2, 2]);
    const I = IGNORE_INDEX;
    expect(list(only.labels)).toEqual([I, I, 3002, 3003, I, 1001, 1002, I, 2001]);
  });

  test('random lengths: every sample exactly once, no sequence too long, and as few sequences as a plain best-fit search', () => {
    const rng = new Rng(7);
    const maxSeqLen = 64;
    const samples = Array.from({ length: 300 }, (_, i) => sample(i + 1, 1 + rng.int(maxSeqLen)));
    const packed = pack(samples, maxSeqLen);
    expect(packed.every((s) => s.inputIds.length <= maxSeqLen)).toBe(true);
    expect(packed.flatMap((s) => s.rows).sort((a, b) => a - b)).toEqual(samples.map((s) => s.row));
    for (const sequence of packed) {
      let offset = 0;
      sequence.rows.forEach((row) => {
        const { inputIds } = samples[row - 1];
        expect(list(sequence.inputIds.subarray(offset, offset + inputIds.length))).toEqual(list(inputIds));
        offset += inputIds.length;
      });
    }
    // Best fit by brute force: bins of equal room are interchangeable, so the rooms left must match exactly.
    const rooms: number[] = [];
    for (const length of samples.map((s) => s.inputIds.length).sort((a, b) => b - a)) {
      let best = -1;
      rooms.forEach((room, b) => {
        if (room >= length && (best < 0 || room < rooms[best])) best = b;
      });
      if (best < 0) rooms.push(maxSeqLen - length);
      else rooms[best] -= length;
    }
    expect(packed.map((s) => maxSeqLen - s.inputIds.length).sort((a, b) => a - b)).toEqual(rooms.sort((a, b) => a - b));
  });

  test('refuses a sample longer than the sequence', () => {
    expect(() => pack([sample(1, 9)], 8)).toThrow(/row 1 has 9 tokens, more than 8; truncate first/);
  });
});

describe('batches', () => {
  const all = (sequences: TrainingSequence[], options = { batchSize: 2, seed: 1, shuffle: false, padId: 0 }) => [
    ...batches(sequences, options),
  ];

  test('unpacked rows: right-padded with padId and -100, no position or segment ids (the engine uses 0..T-1, causal)', () => {
    const [first, second] = all(toSequences([sample(1, 3), sample(2, 1), sample(3, 2)]));
    const I = IGNORE_INDEX;
    expect(first).toEqual({
      batchSize: 2,
      seqLen: 3,
      inputIds: Int32Array.of(1000, 1001, 1002, 2000, 0, 0),
      labels: Int32Array.of(1000, 1001, 1002, 2000, I, I),
    });
    expect(second).toMatchObject({ batchSize: 1, seqLen: 2 });
    const micro: MicroBatch = first; // the engine's type
    expect(micro.positionIds).toBeUndefined();
  });

  test('packed rows: positions continue into the padding, which is segment -1; an unpacked row in the batch is segment 0', () => {
    const packed = pack([sample(1, 3), sample(2, 2)], 8);
    const [batch] = all([...packed, ...toSequences([sample(3, 7)])]);
    expect(batch.seqLen).toBe(7);
    expect(list(batch.positionIds)).toEqual([0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6]);
    expect(list(batch.segmentIds)).toEqual([0, 0, 0, 1, 1, -1, -1, 0, 0, 0, 0, 0, 0, 0]);
    expect(list(batch.labels.subarray(5, 7))).toEqual([IGNORE_INDEX, IGNORE_INDEX]);
  });

  test('shuffling is fixed by the seed; every sequence comes once per epoch; the last batch may be smaller', () => {
    const sequences = toSequences(Array.from({ length: 11 }, (_, i) => sample(i + 1, 2)));
    const order = (seed: number) =>
      all(sequences, { batchSize: 3, seed, shuffle: true, padId: 0 }).flatMap((b: SequenceBatch) =>
        Array.from({ length: b.batchSize }, (_, r) => b.inputIds[r * b.seqLen] / 1000),
      );
    expect(order(5)).toEqual(order(5));
    expect(order(5)).not.toEqual(order(6));
    expect([...order(5)].sort((a, b) => a - b)).toEqual(sequences.map((s) => s.rows[0]));
    expect(countBatches(11, 3)).toBe(4);
    expect(all(sequences, { batchSize: 3, seed: 5, shuffle: true, padId: 0 }).map((b) => b.batchSize)).toEqual([
      3, 3, 3, 2,
    ]);
  });

  test('rejects a batch size that is not a positive integer', () => {
    expect(() => all([], { batchSize: 0, seed: 1, shuffle: false, padId: 0 })).toThrow(
      /batch size must be a positive integer, found 0/,
    );
  });
});

describe('splitTrainValidation', () => {
  const items = Array.from({ length: 20 }, (_, i) => i);

  test('holds out round(fraction * n) items chosen by the seed; both parts keep their order', () => {
    const { train, validation } = splitTrainValidation(items, { validationFraction: 0.25, seed: 3 });
    expect(validation).toHaveLength(5);
    expect([...train, ...validation].sort((a, b) => a - b)).toEqual(items);
    expect(validation).toEqual([...validation].sort((a, b) => a - b));
    expect(splitTrainValidation(items, { validationFraction: 0.25, seed: 3 }).validation).toEqual(validation);
    expect(splitTrainValidation(items, { validationFraction: 0.25, seed: 4 }).validation).not.toEqual(validation);
  });

  test('at least one item on each side; fraction 0 holds nothing out; bad fractions are UserErrors', () => {
    expect(splitTrainValidation(items, { validationFraction: 0.001, seed: 1 }).validation).toHaveLength(1);
    expect(splitTrainValidation([1, 2], { validationFraction: 0.9, seed: 1 }).train).toHaveLength(1);
    expect(splitTrainValidation(items, { validationFraction: 0, seed: 1 })).toEqual({ train: items, validation: [] });
    expect(() => splitTrainValidation([1], { validationFraction: 0.5, seed: 1 })).toThrow(
      /needs at least 2 samples, found 1/,
    );
    expect(() => splitTrainValidation(items, { validationFraction: 1, seed: 1 })).toThrow(UserError);
  });
});
