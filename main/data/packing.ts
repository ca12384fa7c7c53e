// Rendered samples -> training sequences -> batches: truncation to max_seq_len, the train/validation split, optional
// packing of several samples into one sequence, and batching with deterministic shuffling.
// Labels are never shifted here: the engine scores position t against labels[t + 1], as transformers does.
// Legend: B = batch, T = sequence.
import { UserError } from '../../shared/errors.js';
import { Rng } from '../util/random.js';
import { IGNORE_INDEX } from './render.js';
import type { RenderedSample } from './samples.js';

/** One row of a batch: a single sample, or several packed ones that must not see each other. */
export interface TrainingSequence {
  inputIds: Int32Array; // [T]
  labels: Int32Array; // [T], IGNORE_INDEX where not trained
  /** Packed only: each token's position within its own sample, restarting at 0 [T]. Absent: 0..T-1. */
  positionIds?: Int32Array;
  /** Packed only: which packed sample (0, 1, ...) each token belongs to [T]; attention stays within one. */
  segmentIds?: Int32Array;
  /** The source rows of the samples in it, in order. */
  rows: number[];
}

/** Whether a sample has a scored label: position 0's label never is (nothing comes before it). */
function hasTrainedToken(labels: Int32Array): boolean {
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) return true;
  return false;
}

export interface Truncation {
  /** Samples cut to at most maxSeqLen tokens (views, not copies), less those left with nothing to train on. */
  samples: RenderedSample[];
  truncatedRows: number;
  cutTokens: number;
  /** Rows dropped because truncation cut every trained token (a prompt longer than maxSeqLen). */
  untrainedRows: number[];
}

/** Keeps the first maxSeqLen tokens of each sample, as TRL does; samples left with nothing to train on are dropped. */
export function truncate(samples: readonly RenderedSample[], maxSeqLen: number): Truncation {
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 2)
    throw new UserError(`maximum sequence length must be an integer of at least 2, found ${maxSeqLen}`);
  const kept: RenderedSample[] = [];
  const untrainedRows: number[] = [];
  let truncatedRows = 0;
  let cutTokens = 0;
  for (const sample of samples) {
    let { inputIds, labels } = sample;
    if (inputIds.length > maxSeqLen) {
      truncatedRows++;
      cutTokens += inputIds.length - maxSeqLen;
      inputIds = inputIds.subarray(0, maxSeqLen);
      labels = labels.subarray(0, maxSeqLen);
    }
    if (hasTrainedToken(labels)) kept.push({ row: sample.row, inputIds, labels });
    else untrainedRows.push(sample.row);
  }
  return { samples: kept, truncatedRows, cutTokens, untrainedRows };
}

/** One sequence per sample (no packing). */
export function toSequences(samples: readonly RenderedSample[]): TrainingSequence[] {
  return samples.map(({ row, inputIds, labels }) => ({ inputIds, labels, rows: [row] }));
}

/**
 * Packs samples into sequences of at most maxSeqLen tokens, best fit in decreasing length (each sample goes where it
 * leaves the least room), which wastes little; the result depends only on the samples, not on chance.
 * Each sample keeps its own positions (from 0) and segment, and its first label becomes IGNORE_INDEX: the token
 * before it belongs to another sample, so no loss crosses the boundary. Samples must be truncated first.
 */
export function pack(samples: readonly RenderedSample[], maxSeqLen: number): TrainingSequence[] {
  const order = samples
    .map((_, i) => i)
    .sort((a, b) => samples[b].inputIds.length - samples[a].inputIds.length || a - b);
  const bins: number[][] = [];
  const room: number[] = [];
  const byRoom = new RoomIndex(maxSeqLen);
  for (const i of order) {
    const length = samples[i].inputIds.length;
    if (length > maxSeqLen)
      throw new Error(`pack: row ${samples[i].row} has ${length} tokens, more than ${maxSeqLen}; truncate first`);
    let bin = byRoom.takeSmallestAtLeast(length);
    if (bin < 0) {
      bin = bins.push([]) - 1;
      room.push(maxSeqLen);
    }
    bins[bin].push(i);
    room[bin] -= length;
    if (room[bin] > 0) byRoom.add(room[bin], bin);
  }
  return bins.map((members) => {
    const length = members.reduce((sum, i) => sum + samples[i].inputIds.length, 0);
    const sequence: Required<TrainingSequence> = {
      inputIds: new Int32Array(length),
      labels: new Int32Array(length),
      positionIds: new Int32Array(length),
      segmentIds: new Int32Array(length),
      rows: [],
    };
    let offset = 0;
    members.forEach((i, segment) => {
      const { row, inputIds, labels } = samples[i];
      sequence.inputIds.set(inputIds, offset);
      sequence.labels.set(labels, offset);
      sequence.labels[offset] = IGNORE_INDEX;
      for (let t = 0; t < inputIds.length; t++) sequence.positionIds[offset + t] = t;
      sequence.segmentIds.fill(segment, offset, offset + inputIds.length);
      sequence.rows.push(row);
      offset += inputIds.length;
    });
    return sequence;
  });
}

/** Open bins by the room they have left: finds the fullest bin a sample still fits into in O(log maxSeqLen). */
class RoomIndex {
  private readonly size: number;
  /** Segment tree over room 0..size-1: how many open bins have a room in each node's range. */
  private readonly counts: Int32Array;
  private readonly binsWithRoom: number[][];

  constructor(maxSeqLen: number) {
    this.size = 1 << Math.ceil(Math.log2(maxSeqLen + 1));
    this.counts = new Int32Array(2 * this.size);
    this.binsWithRoom = Array.from({ length: this.size }, () => []);
  }

  add(room: number, bin: number): void {
    this.binsWithRoom[room].push(bin);
    for (let node = this.size + room; node > 0; node >>= 1) this.counts[node]++;
  }

  /** Removes and returns a bin with the least room >= `need`, or -1 when none has that much. */
  takeSmallestAtLeast(need: number): number {
    const room = this.firstFrom(1, 0, this.size, need);
    if (room < 0) return -1;
    for (let node = this.size + room; node > 0; node >>= 1) this.counts[node]--;
    return this.binsWithRoom[room].pop()!;
  }

  /** The smallest room >= need held by a bin inside the node covering [low, high), or -1. */
  private firstFrom(node: number, low: number, high: number, need: number): number {
    if (high <= need || this.counts[node] === 0) return -1;
    if (high - low === 1) return low;
    const middle = (low + high) >> 1;
    const left = this.firstFrom(2 * node, low, middle, need);
    return left >= 0 ? left : this.firstFrom(2 * node + 1, middle, high, need);
  }
}

/** One padded micro-batch; the fields and layout of the engine's MicroBatch. */
export interface SequenceBatch {
  batchSize: number; // B
  seqLen: number; // T
  inputIds: Int32Array; // [B * T] row-major, padding = padId
  labels: Int32Array; // [B * T] row-major, padding = IGNORE_INDEX
  /**
   * Present when any row is packed [B * T]: positions restart per sample; padding continues the row's last sample (p +
   * 1, p + 2, ...).
   */
  positionIds?: Int32Array;
  /**
   * Present when any row is packed [B * T]: an unpacked row is segment 0 throughout; padding is segment -1, a block of
   * its own.
   */
  segmentIds?: Int32Array;
}

export interface BatchOptions {
  batchSize: number;
  /** Seeds the order when `shuffle` is set; pass a different seed each epoch (seed + epoch) for a new order. */
  seed: number;
  shuffle: boolean;
  padId: number;
}

/** Number of batches in one epoch; the last, partial batch counts. */
export function countBatches(sequenceCount: number, batchSize: number): number {
  return Math.ceil(sequenceCount / batchSize);
}

/**
 * One epoch of batches, in order or shuffled by `seed`, each right-padded to its longest row; the last may be smaller.
 */
export function* batches(sequences: readonly TrainingSequence[], options: BatchOptions): Generator<SequenceBatch> {
  const { batchSize, padId } = options;
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new UserError(`batch size must be a positive integer, found ${batchSize}`);
  const order = sequences.map((_, i) => i);
  if (options.shuffle) new Rng(options.seed).shuffle(order);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize).map((i) => sequences[i]);
    const seqLen = Math.max(...rows.map((s) => s.inputIds.length));
    const packed = rows.some((s) => s.positionIds !== undefined);
    const batch: SequenceBatch = {
      batchSize: rows.length,
      seqLen,
      inputIds: new Int32Array(rows.length * seqLen).fill(padId),
      labels: new Int32Array(rows.length * seqLen).fill(IGNORE_INDEX),
      ...(packed && {
        positionIds: new Int32Array(rows.length * seqLen),
        segmentIds: new Int32Array(rows.length * seqLen).fill(-1),
      }),
    };
    rows.forEach((sequence, b) => {
      const offset = b * seqLen;
      const length = sequence.inputIds.length;
      batch.inputIds.set(sequence.inputIds, offset);
      batch.labels.set(sequence.labels, offset);
      if (!batch.positionIds || !batch.segmentIds) return;
      if (sequence.positionIds && sequence.segmentIds) {
        batch.positionIds.set(sequence.positionIds, offset);
        batch.segmentIds.set(sequence.segmentIds, offset);
      } else {
        for (let t = 0; t < length; t++) batch.positionIds[offset + t] = t;
        batch.segmentIds.fill(0, offset, offset + length);
      }
      const last = length > 0 ? batch.positionIds[offset + length - 1] : -1;
      for (let t = length; t < seqLen; t++) batch.positionIds[offset + t] = last + t - length + 1;
    });
    yield batch;
  }
}

export interface Split<T> {
  train: T[];
  validation: T[];
}

/**
 * Holds out round(fraction * count) items (at least one, and at least one left to train on) for validation, chosen
 * by `seed`; both parts keep their original order. Split before packing, so no sequence mixes the two.
 */
export function splitTrainValidation<T>(
  items: readonly T[],
  options: { validationFraction: number; seed: number },
): Split<T> {
  const { validationFraction } = options;
  if (!(validationFraction >= 0 && validationFraction < 1))
    throw new UserError(`validation fraction must be at least 0 and below 1, found ${validationFraction}`);
  if (validationFraction === 0) return { train: [...items], validation: [] };
  if (items.length < 2) throw new UserError(`a validation split needs at least 2 samples, found ${items.length}`);
  const count = Math.min(items.length - 1, Math.max(1, Math.round(validationFraction * items.length)));
  const order = new Rng(options.seed).shuffle(items.map((_, i) => i));
  const held = new Set(order.slice(0, count));
  return { train: items.filter((_, i) => !held.has(i)), validation: items.filter((_, i) => held.has(i)) };
}
