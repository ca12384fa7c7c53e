// The formats stage: RawRow to Sample. The format (messages, sharegpt, alpaca, prompt-completion, text, tokens) is
// detected from the first good rows unless the user chooses it; a ColumnMapping renames fields to the user's columns.
import { UserError } from '../../shared/errors.js';
import { alpacaSample, chatSample } from './formats/chat.js';
import {
  columnName,
  hasColumn,
  RowRejected,
  type ColumnMapping,
  type RowFields,
  type SampleField,
} from './formats/fields.js';
import { clipped } from './jsonValues.js';
import { completionSample, textSample, tokensSample } from './formats/plain.js';
import {
  checkDataFile,
  detectFileKind,
  readRawRows,
  type RawRowOrError,
  type TextMode,
  type UnreadableRow,
} from './readers/index.js';
import type { BadRow, FileKind, RawRow, Sample, SampleFormat, SampleRow } from './samples.js';

export type { ColumnMapping, SampleField } from './formats/fields.js';

/** The longest bad-row reason: a reason may quote the row's values and field names. */
export const MAX_REASON_CHARS = 300;

/** Each format's fields, in detection order: when a row fits several formats, the first wins. */
const FORMAT_FIELDS: Readonly<
  Record<SampleFormat, { required: readonly SampleField[]; optional: readonly SampleField[] }>
> = {
  tokens: { required: ['input_ids'], optional: ['labels'] },
  messages: { required: ['messages'], optional: [] },
  sharegpt: { required: ['conversations'], optional: [] },
  alpaca: { required: ['instruction', 'output'], optional: ['input', 'system'] },
  'prompt-completion': { required: ['prompt', 'completion'], optional: [] },
  text: { required: ['text'], optional: [] },
};
const FORMATS = Object.keys(FORMAT_FIELDS) as SampleFormat[];

const SAMPLE_BUILDERS: Readonly<Record<SampleFormat, (fields: RowFields) => Sample>> = {
  tokens: tokensSample,
  messages: (fields) => chatSample(fields, 'messages'),
  sharegpt: (fields) => chatSample(fields, 'conversations'),
  alpaca: alpacaSample,
  'prompt-completion': completionSample,
  text: textSample,
};

/** How many good rows format detection looks at, and how many rows it reads at most to find them. */
const DETECTION_ROWS = 20;
const DETECTION_READ_LIMIT = 1000;

/**
 * A row may hold at most this much text (or this many token ids): far more than any sequence the engine trains on
 * keeps after truncation, while tokenizing one such row already takes seconds.
 */
export const MAX_ROW_CHARS = 2 ** 20;
export const MAX_ROW_TOKENS = 2 ** 18;

/** Why a sample is too large to be a row, or null. */
function oversized(sample: Sample): string | null {
  const tokens = sample.kind === 'tokens';
  const [size, limit] = tokens ? [sample.inputIds.length, MAX_ROW_TOKENS] : [textLength(sample), MAX_ROW_CHARS];
  if (size <= limit) return null;
  const unit = tokens ? 'token ids' : 'characters of text';
  return `the row holds ${size} ${unit}, more than the ${limit} a row may hold; split it`;
}

function textLength(sample: Exclude<Sample, { kind: 'tokens' }>): number {
  switch (sample.kind) {
    case 'chat':
      return sample.messages.reduce((chars, m) => chars + m.content.length, 0);
    case 'completion':
      return sample.prompt.length + sample.completion.length;
    case 'text':
      return sample.text.length;
  }
}

/**
 * One row as a Sample, or why it cannot be one. `fileKind` says where the row came from: CSV, TSV and Parquet rows
 * may hold numbers in text columns (made text) and JSON text in list columns (parsed); JSON rows may not.
 */
export function toSample(
  raw: RawRow,
  format: SampleFormat,
  mapping: ColumnMapping = {},
  fileKind?: FileKind,
): { ok: true; value: SampleRow } | { ok: false; bad: BadRow } {
  const tabular = fileKind === 'csv' || fileKind === 'tsv' || fileKind === 'parquet';
  let sample: Sample;
  try {
    sample = SAMPLE_BUILDERS[format]({ record: raw.record, mapping, tabular });
  } catch (err) {
    if (!(err instanceof RowRejected)) throw err;
    return { ok: false, bad: { row: raw.row, reason: clipped(err.message, MAX_REASON_CHARS) } };
  }
  const tooLarge = oversized(sample);
  if (tooLarge !== null) return { ok: false, bad: { row: raw.row, reason: tooLarge } };
  return { ok: true, value: { row: raw.row, sample } };
}

/**
 * The format that fits most of `rows` (ties: the earlier in FORMAT_FIELDS); a mapping limits it to formats using its
 * fields.
 */
export function detectFormat(rows: readonly RawRow[], mapping: ColumnMapping = {}): SampleFormat {
  const mapped = checkedMappingFields(mapping);
  const candidates = FORMATS.filter((format) => mapped.every((field) => usesField(format, field)));
  if (candidates.length === 0)
    throw new UserError(`no single format uses all the fields in the column mapping (${mapped.join(', ')})`);
  let best: SampleFormat | null = null;
  let bestCount = 0;
  for (const format of candidates) {
    const count = rows.filter((row) => fits(row, format, mapping)).length;
    if (count > bestCount) [best, bestCount] = [format, count];
  }
  if (best !== null) return best;
  const expected = candidates.map((format) => requiredColumns(format, mapping)).join(', ');
  const guess = mapped.length === 0 ? guessMapping(rows) : null;
  if (guess) {
    const pairs = Object.entries(guess.columns).map(([field, column]) => `${field} = "${clipped(column, 60)}"`);
    throw new UserError(
      `cannot tell the data format: the rows have the fields ${fieldList(rows)}; they look like ${guess.format} ` +
        `with ${pairs.join(' and ')}: choose that format and mapping`,
      { field: 'data.columns', suggestion: guess },
    );
  }
  throw new UserError(
    `cannot tell the data format: the rows have the fields ${fieldList(rows)}; expected ${expected}; ` +
      'choose the format and map its fields to your columns',
  );
}

/** Column names people give a prompt and its answer, by the field they fill (compared trimmed, in lower case). */
const HEADER_SYNONYMS: { field: 'prompt' | 'completion'; names: readonly string[] }[] = [
  { field: 'prompt', names: ['question', 'prompt', 'instruction', 'input', 'query', 'user', 'human'] },
  { field: 'completion', names: ['answer', 'response', 'output', 'completion', 'reply', 'assistant', 'bot'] },
];

/**
 * The prompt-completion mapping a table's headers suggest (question,answer: prompt = question, completion = answer),
 * or null when no column reads as a prompt and another as its answer.
 */
export function guessMapping(rows: readonly RawRow[]): { format: 'prompt-completion'; columns: ColumnMapping } | null {
  const names = [...new Set(rows.flatMap((row) => Object.keys(row.record)))];
  const columns: ColumnMapping = {};
  for (const { field, names: synonyms } of HEADER_SYNONYMS) {
    const column = synonyms
      .map((synonym) => names.find((name) => name.trim().toLowerCase() === synonym))
      .find((name) => name !== undefined && !Object.values(columns).includes(name));
    if (column === undefined) return null;
    columns[field] = column;
  }
  return { format: 'prompt-completion', columns };
}

/**
 * Throws a UserError when none of `rows` (the first good rows) has the fields a chosen format reads: the wrong format
 * for the file, or a column mapping to a column it does not have. Rows after them lacking a field are bad rows.
 */
function checkFormatFits(rows: readonly RawRow[], format: SampleFormat, mapping: ColumnMapping = {}): void {
  if (rows.length === 0 || rows.some((row) => fits(row, format, mapping))) return;
  throw new UserError(
    `the ${format} format reads ${requiredColumns(format, mapping)}, which none of the first ${rows.length} rows has ` +
      `(they have the fields ${fieldList(rows)}); choose another format or map its fields to your columns`,
  );
}

function fits(row: RawRow, format: SampleFormat, mapping: ColumnMapping): boolean {
  return FORMAT_FIELDS[format].required.every((field) => hasColumn(row.record, columnName(field, mapping)));
}

function requiredColumns(format: SampleFormat, mapping: ColumnMapping): string {
  return FORMAT_FIELDS[format].required.map((field) => `"${clipped(columnName(field, mapping), 60)}"`).join(' + ');
}

/** The rows' field names for a message: at most 20, each cut short. */
function fieldList(rows: readonly RawRow[]): string {
  const found = new Set<string>();
  for (const row of rows) for (const name of Object.keys(row.record)) if (found.size <= 20) found.add(name);
  if (found.size === 0) return 'none';
  return (
    [...found]
      .slice(0, 20)
      .map((name) => `"${clipped(name, 60)}"`)
      .join(', ') + (found.size > 20 ? ', …' : '')
  );
}

/** Throws a UserError if the mapping names a field the format does not read. */
export function checkColumnMapping(mapping: ColumnMapping, format: SampleFormat): void {
  const unused = checkedMappingFields(mapping).filter((field) => !usesField(format, field));
  if (unused.length > 0) {
    const fields = [...FORMAT_FIELDS[format].required, ...FORMAT_FIELDS[format].optional].join(', ');
    throw new UserError(
      `the column mapping sets ${unused.map((f) => `"${f}"`).join(', ')}, which the ${format} format does not read (it reads ${fields})`,
    );
  }
}

export interface SampleReadOptions {
  kind?: FileKind;
  /** By default detected from the first good rows. */
  format?: SampleFormat;
  mapping?: ColumnMapping;
  textMode?: TextMode;
  /** Told the format once it is known (detected or chosen), before the first row is yielded. */
  onFormat?: (format: SampleFormat) => void;
}

/** A good sample or a bad row, in file order. */
export type SampleOrBadRow = ({ type: 'sample' } & SampleRow) | ({ type: 'bad' } & BadRow);

/**
 * Streams a data file as samples and bad rows. Throws a UserError for a file that cannot be read or has no rows, for a
 * chosen format none of the first rows fits, and, after yielding the rows it looked at, for a format that cannot be
 * detected.
 */
export async function* readSamples(file: string, options: SampleReadOptions = {}): AsyncGenerator<SampleOrBadRow> {
  await checkDataFile(file);
  const kind = options.kind ?? detectFileKind(file);
  const mapping = options.mapping ?? {};
  const rows = readRawRows(file, { kind, textMode: options.textMode });
  try {
    // Read ahead to detect the format, or to check that the chosen one fits; then yielded in order.
    const firstRows: RawRowOrError[] = [];
    const goodRows: RawRow[] = [];
    while (goodRows.length < DETECTION_ROWS && firstRows.length < DETECTION_READ_LIMIT) {
      const next = await rows.next();
      if (next.done) break;
      firstRows.push(next.value);
      if (!('error' in next.value)) goodRows.push(next.value);
    }
    if (firstRows.length === 0) throw new UserError(`${file}: no rows; the file is empty`);
    let format = options.format;
    if (format === undefined) {
      if (goodRows.length === 0) {
        for (const row of firstRows) if ('error' in row) yield unreadable(row);
        const first = unreadable(firstRows[0] as UnreadableRow);
        const none = `none of the first ${firstRows.length} rows can be read`;
        throw new UserError(`${file}: cannot tell the data format: ${none} (row ${first.row}: ${first.reason})`);
      }
      format = withFileName(file, () => detectFormat(goodRows, mapping));
    }
    const chosenFormat = format;
    withFileName(file, () => checkColumnMapping(mapping, chosenFormat));
    withFileName(file, () => checkFormatFits(goodRows, chosenFormat, mapping));
    options.onFormat?.(chosenFormat);
    const convert = (row: RawRowOrError): SampleOrBadRow => {
      if ('error' in row) return unreadable(row);
      const result = toSample(row, chosenFormat, mapping, kind);
      return result.ok ? { type: 'sample', ...result.value } : { type: 'bad', ...result.bad };
    };
    for (const row of firstRows) yield convert(row);
    for await (const row of rows) yield convert(row);
  } finally {
    await rows.return(undefined);
  }
}

function unreadable(row: UnreadableRow): { type: 'bad' } & BadRow {
  return { type: 'bad', row: row.row, reason: clipped(row.error, MAX_REASON_CHARS) };
}

function usesField(format: SampleFormat, field: SampleField): boolean {
  return FORMAT_FIELDS[format].required.includes(field) || FORMAT_FIELDS[format].optional.includes(field);
}

function checkedMappingFields(mapping: ColumnMapping): SampleField[] {
  const known = new Set<string>(
    FORMATS.flatMap((format) => [...FORMAT_FIELDS[format].required, ...FORMAT_FIELDS[format].optional]),
  );
  for (const [field, column] of Object.entries(mapping)) {
    if (!known.has(field)) {
      const [name, fields] = [clipped(field, 60), [...known].join(', ')];
      throw new UserError(`the column mapping sets "${name}", which is not a field of any format (fields: ${fields})`);
    }
    if (typeof column !== 'string' || column === '')
      throw new UserError(`the column mapping gives "${field}" no column name`);
  }
  return Object.keys(mapping) as SampleField[];
}

/** Runs `check`, prefixing its UserError with the file name. */
function withFileName<T>(file: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof UserError)
      throw new UserError(`${file}: ${err.message}`, { field: err.field, suggestion: err.suggestion });
    throw err;
  }
}
