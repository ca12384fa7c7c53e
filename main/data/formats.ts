// The formats stage: RawRow to Sample. The format (messages, sharegpt, alpaca, prompt-completion, text, tokens) is
// detected from the first good rows unless the user chooses it; a ColumnMapping renames fields to the user's columns.
import { UserError } from '../../shared/errors.js';
import { alpacaSample, chatSample } from './formats/chat.js';
import { columnName, hasColumn, RowRejected, type ColumnMapping, type RowFields, type SampleField } from './formats/fields.js';
import { completionSample, textSample, tokensSample } from './formats/plain.js';
import { checkDataFile, detectFileKind, readRawRows, type RawRowOrError, type TextMode, type UnreadableRow } from './readers/index.js';
import type { BadRow, FileKind, RawRow, Sample, SampleFormat, SampleRow } from './samples.js';

export type { ColumnMapping, SampleField } from './formats/fields.js';

/** Each format's fields, in detection order: when a row fits several formats, the first wins. */
const FORMAT_FIELDS: Readonly<Record<SampleFormat, { required: readonly SampleField[]; optional: readonly SampleField[] }>> = {
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
 * One row as a Sample, or why it cannot be one. `fileKind` says where the row came from: CSV, TSV and Parquet rows
 * may hold numbers in text columns (made text) and JSON text in list columns (parsed); JSON rows may not.
 */
export function toSample(raw: RawRow, format: SampleFormat, mapping: ColumnMapping = {}, fileKind?: FileKind): { ok: true; value: SampleRow } | { ok: false; bad: BadRow } {
  const tabular = fileKind === 'csv' || fileKind === 'tsv' || fileKind === 'parquet';
  try {
    return { ok: true, value: { row: raw.row, sample: SAMPLE_BUILDERS[format]({ record: raw.record, mapping, tabular }) } };
  } catch (err) {
    if (!(err instanceof RowRejected)) throw err;
    return { ok: false, bad: { row: raw.row, reason: err.message } };
  }
}

/** The format that fits most of `rows` (ties: the earlier in FORMAT_FIELDS); a mapping limits it to formats using its fields. */
export function detectFormat(rows: readonly RawRow[], mapping: ColumnMapping = {}): SampleFormat {
  const mapped = checkedMappingFields(mapping);
  const candidates = FORMATS.filter((format) => mapped.every((field) => usesField(format, field)));
  if (candidates.length === 0) throw new UserError(`no single format uses all the fields in the column mapping (${mapped.join(', ')})`);
  let best: SampleFormat | null = null;
  let bestCount = 0;
  for (const format of candidates) {
    const count = rows.filter((row) => FORMAT_FIELDS[format].required.every((field) => hasColumn(row.record, columnName(field, mapping)))).length;
    if (count > bestCount) [best, bestCount] = [format, count];
  }
  if (best !== null) return best;
  const found = [...new Set(rows.flatMap((row) => Object.keys(row.record)))];
  const foundList = found.length === 0 ? 'none' : found.slice(0, 20).map((name) => `"${name}"`).join(', ') + (found.length > 20 ? ', …' : '');
  const expected = candidates.map((format) => FORMAT_FIELDS[format].required.map((field) => `"${columnName(field, mapping)}"`).join(' + ')).join(', ');
  throw new UserError(`cannot tell the data format: the rows have the fields ${foundList}; expected ${expected}; choose the format and map its fields to your columns`);
}

/** Throws a UserError if the mapping names a field the format does not read. */
export function checkColumnMapping(mapping: ColumnMapping, format: SampleFormat): void {
  const unused = checkedMappingFields(mapping).filter((field) => !usesField(format, field));
  if (unused.length > 0) {
    const fields = [...FORMAT_FIELDS[format].required, ...FORMAT_FIELDS[format].optional].join(', ');
    throw new UserError(`the column mapping sets ${unused.map((f) => `"${f}"`).join(', ')}, which the ${format} format does not read (it reads ${fields})`);
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
 * Streams a data file as samples and bad rows. Throws a UserError for a file that cannot be read or has no rows, and,
 * after yielding the rows it looked at, for a format that cannot be detected.
 */
export async function* readSamples(file: string, options: SampleReadOptions = {}): AsyncGenerator<SampleOrBadRow> {
  await checkDataFile(file);
  const kind = options.kind ?? detectFileKind(file);
  const mapping = options.mapping ?? {};
  const rows = readRawRows(file, { kind, textMode: options.textMode });
  try {
    const firstRows: RawRowOrError[] = []; // read ahead for detection, then yielded in order
    let format = options.format;
    if (format === undefined) {
      let goodRows = 0;
      while (goodRows < DETECTION_ROWS && firstRows.length < DETECTION_READ_LIMIT) {
        const next = await rows.next();
        if (next.done) break;
        firstRows.push(next.value);
        if (!('error' in next.value)) goodRows++;
      }
      if (firstRows.length === 0) throw new UserError(`${file}: no rows; the file is empty`);
      if (goodRows === 0) {
        for (const row of firstRows) if ('error' in row) yield unreadable(row);
        throw new UserError(`${file}: cannot tell the data format: none of the first ${firstRows.length} rows can be read`);
      }
      format = withFileName(file, () => detectFormat(firstRows.filter((row): row is RawRow => !('error' in row)), mapping));
    }
    const chosenFormat = format;
    withFileName(file, () => checkColumnMapping(mapping, chosenFormat));
    options.onFormat?.(chosenFormat);
    const convert = (row: RawRowOrError): SampleOrBadRow => {
      if ('error' in row) return unreadable(row);
      const result = toSample(row, chosenFormat, mapping, kind);
      return result.ok ? { type: 'sample', ...result.value } : { type: 'bad', ...result.bad };
    };
    let rowCount = firstRows.length;
    for (const row of firstRows) yield convert(row);
    for await (const row of rows) {
      rowCount++;
      yield convert(row);
    }
    if (rowCount === 0) throw new UserError(`${file}: no rows; the file is empty`);
  } finally {
    await rows.return(undefined);
  }
}

function unreadable(row: UnreadableRow): SampleOrBadRow {
  return { type: 'bad', row: row.row, reason: row.error };
}

function usesField(format: SampleFormat, field: SampleField): boolean {
  return FORMAT_FIELDS[format].required.includes(field) || FORMAT_FIELDS[format].optional.includes(field);
}

function checkedMappingFields(mapping: ColumnMapping): SampleField[] {
  const known = new Set<string>(FORMATS.flatMap((format) => [...FORMAT_FIELDS[format].required, ...FORMAT_FIELDS[format].optional]));
  for (const [field, column] of Object.entries(mapping)) {
    if (!known.has(field)) throw new UserError(`the column mapping sets "${field}", which is not a field of any format (fields: ${[...known].join(', ')})`);
    if (typeof column !== 'string' || column === '') throw new UserError(`the column mapping gives "${field}" no column name`);
  }
  return Object.keys(mapping) as SampleField[];
}

/** Runs `check`, prefixing its UserError with the file name. */
function withFileName<T>(file: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`${file}: ${err.message}`);
    throw err;
  }
}
