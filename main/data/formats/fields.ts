// Reading one row's fields for a format: the user's column names, and the checks every format shares.
// A problem throws RowRejected, whose message becomes the BadRow's reason.
import { describeValue } from '../jsonValues.js';
import type { RawRow } from '../samples.js';

/** The fields the formats read; a ColumnMapping renames any of them to a column of the user's file. */
export type SampleField =
  | 'messages'
  | 'conversations'
  | 'instruction'
  | 'input'
  | 'output'
  | 'system'
  | 'prompt'
  | 'completion'
  | 'text'
  | 'input_ids'
  | 'labels';

/** Field to the user's column name, e.g. `{ prompt: 'question', completion: 'answer' }`. */
export type ColumnMapping = Partial<Record<SampleField, string>>;

/** Not an Error: capturing a stack costs more than reading the row, and a file may hold a million bad rows. */
export class RowRejected {
  constructor(readonly message: string) {}
}

export function reject(reason: string): never {
  throw new RowRejected(reason);
}

export interface RowFields {
  record: RawRow['record'];
  mapping: ColumnMapping;
  /** CSV, TSV and Parquet: numbers in text columns become text, and a list column may hold JSON text. */
  tabular: boolean;
}

export function columnName(field: SampleField, mapping: ColumnMapping): string {
  return (Object.hasOwn(mapping, field) ? mapping[field] : undefined) ?? field;
}

export function hasColumn(record: RawRow['record'], name: string): boolean {
  return Object.hasOwn(record, name);
}

/** A field that must hold non-empty text. */
export function requiredText(fields: RowFields, field: SampleField): string {
  const name = columnName(field, fields.mapping);
  if (!hasColumn(fields.record, name)) reject(`no "${name}" field`);
  return nonEmptyText(fields.record[name], `"${name}"`, fields.tabular);
}

/** A field that may be missing, null or empty: undefined then. */
export function optionalText(fields: RowFields, field: SampleField): string | undefined {
  const name = columnName(field, fields.mapping);
  const value = fields.record[name];
  if (!hasColumn(fields.record, name) || value === null || value === '') return undefined;
  return nonEmptyText(value, `"${name}"`, fields.tabular);
}

export function nonEmptyText(value: unknown, what: string, tabular: boolean): string {
  if ((typeof value === 'number' || typeof value === 'boolean') && tabular) return String(value);
  if (typeof value !== 'string') {
    const hint = typeof value === 'number' || typeof value === 'boolean' ? '; put it in quotes' : '';
    reject(`${what} must be text, found ${describeValue(value)}${hint}`);
  }
  if (value.trim() === '') reject(`${what} is empty`);
  return value;
}

/**
 * A list field (in CSV and friends, also JSON text holding one); null when optional and missing, null or an empty cell.
 */
export function listField(fields: RowFields, field: SampleField, required: boolean): unknown[] | null {
  const name = columnName(field, fields.mapping);
  let value = fields.record[name];
  const missing = !hasColumn(fields.record, name);
  if (missing || value === null || (fields.tabular && value === '')) {
    if (required) reject(missing ? `no "${name}" field` : value === null ? `"${name}" is null` : `"${name}" is empty`);
    return null;
  }
  if (typeof value === 'string' && fields.tabular) {
    try {
      value = JSON.parse(value);
    } catch {
      reject(`"${name}" must be a list, found text that is not JSON (${describeValue(value)})`);
    }
  }
  if (!Array.isArray(value)) reject(`"${name}" must be a list, found ${describeValue(value)}`);
  return value;
}
