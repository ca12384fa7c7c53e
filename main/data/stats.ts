// What a dataset holds, for the dataset screen and the run record: row and token counts, a length histogram, and
// sha256 fingerprints of the source file and of the rendered result, so a run records exactly what it trained on.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import type { DatasetStats } from '../../shared/data.js';
import { UserError } from '../../shared/errors.js';
import { IGNORE_INDEX, type RenderOutcome } from './render.js';
import type { RenderedSample, Sample } from './samples.js';

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** The bytes of an int32 array, little-endian whatever the machine, so fingerprints agree across platforms. */
function int32Bytes(values: Int32Array): Buffer {
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32();
}

/**
 * sha256 over rendered samples in order: for each, its token count (uint32), its ids, then its labels (int32), all
 * little-endian. Row numbers are left out: the fingerprint names what was trained on, not where it sat in the file.
 */
export class RenderedHash {
  private readonly hash = crypto.createHash('sha256');
  private readonly length = Buffer.alloc(4);

  update(sample: RenderedSample): void {
    this.length.writeUInt32LE(sample.inputIds.length);
    this.hash.update(this.length);
    this.hash.update(int32Bytes(sample.inputIds));
    this.hash.update(int32Bytes(sample.labels));
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

export function renderedSha256(samples: Iterable<RenderedSample>): string {
  const hash = new RenderedHash();
  for (const sample of samples) hash.update(sample);
  return hash.digest();
}

/** sha256 of a file's bytes, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  } catch (err) {
    throw new UserError(`${file}: cannot read the dataset (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return hash.digest('hex');
}

/**
 * Finds rendered rows equal to an earlier one: same token ids and labels, so the same text trained the same way. Each
 * row is remembered by 16 bytes of its sha256: enough to tell rows apart, small enough for millions of rows.
 */
export class DuplicateFinder {
  private readonly firstRowOf = new Map<string, number>();

  /** The row `sample` repeats, or null when it is the first of its kind (then remembered). */
  earlierRow(sample: RenderedSample): number | null {
    const key = crypto
      .createHash('sha256')
      .update(int32Bytes(sample.inputIds))
      .update(int32Bytes(sample.labels))
      .digest('base64')
      .slice(0, 22);
    const first = this.firstRowOf.get(key);
    if (first !== undefined) return first;
    this.firstRowOf.set(key, sample.row);
    return null;
  }
}

const FIRST_BUCKET_TOP = 16;
/** A whole text inside one pair of double quotes, with something between them. */
const QUOTE_WRAPPED = /^\s*"[^]+"\s*$/;

/** Takes each row's outcome in file order (and the readers' bad rows) and sums them up. */
export class DatasetStatsCollector {
  private rows = 0;
  private badRows = 0;
  private emptyRows = 0;
  private duplicateRows = 0;
  private quotedValueRows = 0;
  private tokens = 0;
  private trainedTokens = 0;
  private truncatedRows = 0;
  private cutTokens = 0;
  private rendered = 0;
  private renderedTokens = 0;
  private minLength = Infinity;
  private maxLength = 0;
  /** Rows per bucket; bucket 0 is [1, 16], bucket b > 0 is (16 * 2^(b-1), 16 * 2^b]. */
  private readonly bucketRows: number[] = [];
  private readonly duplicates = new DuplicateFinder();
  private readonly hash = new RenderedHash();
  private renderedDigest: string | null = null;

  constructor(
    private readonly options: {
      maxSeqLen: number;
      /** Duplicates are counted, and left out of every other sum (they are not trained on). */
      dropDuplicates?: boolean;
    },
  ) {}

  /** A row the readers or format detection could not use. */
  countBadRow(): void {
    this.rows++;
    this.badRows++;
  }

  /** Counts the row when one of its texts is still wrapped in double quotes. */
  noteQuotes(sample: Sample): void {
    const texts =
      sample.kind === 'chat'
        ? sample.messages.map((m) => m.content)
        : sample.kind === 'completion'
          ? [sample.prompt, sample.completion]
          : sample.kind === 'text'
            ? [sample.text]
            : [];
    if (texts.some((text) => QUOTE_WRAPPED.test(text))) this.quotedValueRows++;
  }

  /** Counts one row; for a rendered row equal to an earlier one, returns that row's number (else null). */
  add(outcome: RenderOutcome): number | null {
    if (this.renderedDigest !== null) throw new Error('DatasetStatsCollector: add() after result()');
    if (outcome.kind === 'bad') {
      this.countBadRow();
      return null;
    }
    this.rows++;
    if (outcome.kind === 'empty') {
      this.emptyRows++;
      return null;
    }
    const duplicateOf = this.duplicates.earlierRow(outcome.sample);
    if (duplicateOf !== null) {
      this.duplicateRows++;
      if (this.options.dropDuplicates) return duplicateOf;
    }
    const { inputIds, labels } = outcome.sample;
    const length = inputIds.length;
    const kept = Math.min(length, this.options.maxSeqLen);
    this.hash.update(outcome.sample);
    this.rendered++;
    this.renderedTokens += length;
    this.minLength = Math.min(this.minLength, length);
    this.maxLength = Math.max(this.maxLength, length);
    const bucket = length <= FIRST_BUCKET_TOP ? 0 : Math.ceil(Math.log2(length / FIRST_BUCKET_TOP));
    while (this.bucketRows.length <= bucket) this.bucketRows.push(0);
    this.bucketRows[bucket]++;
    if (length > kept) {
      this.truncatedRows++;
      this.cutTokens += length - kept;
    }
    this.tokens += kept;
    for (let t = 1; t < kept; t++) if (labels[t] !== IGNORE_INDEX) this.trainedTokens++;
    return duplicateOf;
  }

  /** The sums; call once all rows are added. */
  result(): DatasetStats {
    this.renderedDigest ??= this.hash.digest();
    return {
      rows: this.rows,
      badRows: this.badRows,
      emptyRows: this.emptyRows,
      duplicateRows: this.duplicateRows,
      quotedValueRows: this.quotedValueRows,
      tokens: this.tokens,
      trainedTokens: this.trainedTokens,
      truncatedRows: this.truncatedRows,
      cutTokens: this.cutTokens,
      minLength: this.rendered === 0 ? 0 : this.minLength,
      maxLength: this.maxLength,
      meanLength: this.rendered === 0 ? 0 : this.renderedTokens / this.rendered,
      lengthHistogram: this.bucketRows.map((rows, b) => ({
        from: b === 0 ? 1 : FIRST_BUCKET_TOP * 2 ** (b - 1) + 1,
        to: FIRST_BUCKET_TOP * 2 ** b,
        rows,
      })),
      renderedSha256: this.renderedDigest,
    };
  }
}
