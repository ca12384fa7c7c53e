// The dataset pipeline's stages and the types between them:
//   file --readers/--> RawRow --formats--> Sample --render--> RenderedSample --(truncate, pack, shuffle, split)-->
// Batch
import type { ChatMessage } from '../../shared/generation.js';
import type { DataFormat } from '../../shared/training.js';

// Row numbers are 1-based: the line for line-oriented files (JSONL, CSV, TSV, text), the element or row otherwise.

/** A file format we read. */
export type FileKind = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet' | 'text';

/** How a row is laid out; detected from the first good rows unless the user says. */
export type SampleFormat = DataFormat;

/** One record as read from the file: field name to value (CSV/TSV/Parquet/text rows become records too). */
export interface RawRow {
  row: number;
  record: Record<string, unknown>;
}

/** A row that could not be used, and why: shown to the user as `FILE:row: reason`. */
export interface BadRow {
  row: number;
  reason: string;
}

// A chat row's turns are the studio's one ChatMessage: what the playground sends and the chat template renders.
export type { ChatMessage, ChatRole } from '../../shared/generation.js';

/** One training example, independent of the file format it came from. */
export type Sample =
  /** messages, sharegpt and alpaca rows (alpaca: optional system, user = instruction + input, assistant = output). */
  | { kind: 'chat'; messages: ChatMessage[] }
  | { kind: 'completion'; prompt: string; completion: string }
  | { kind: 'text'; text: string }
  /** Pre-tokenized; labels default to input_ids, -100 not trained. */
  | { kind: 'tokens'; inputIds: number[]; labels: number[] | null };

export interface SampleRow {
  row: number;
  sample: Sample;
}

/** Which tokens carry loss: only the completion (assistant turns, completions) or every token. */
export type TrainOn = 'completion' | 'all';

/** A sample after rendering and tokenizing, before truncation and packing. */
export interface RenderedSample {
  row: number;
  inputIds: Int32Array; // [T]
  labels: Int32Array; // [T], -100 where not trained; not shifted (the engine shifts)
}
