import type { RawRow } from '../samples.js';

/** A row the reader could not turn into a record (invalid JSON on a line, a CSV row with too many fields). */
export interface UnreadableRow {
  row: number;
  error: string;
}

export type RawRowOrError = RawRow | UnreadableRow;
