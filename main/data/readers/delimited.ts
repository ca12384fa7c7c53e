// CSV and TSV: the header row names the fields; quoted fields may hold delimiters, newlines and doubled quotes.
// A row's number is the line it starts on, as a spreadsheet shows it (the header is row 1).
import { Readable } from 'node:stream';
import { CsvError, parse, type InfoRecord, type Options } from 'csv-parse';
import { UserError } from '../../../shared/errors.js';
import type { RawRowOrError } from './rows.js';
import { MAX_LINE_CHARS, utf8Chunks } from './utf8.js';

interface ParsedRecord {
  row: number;
  fields: string[];
}

export async function* readDelimited(file: string, delimiter: ',' | '\t'): AsyncGenerator<RawRowOrError> {
  // csv-parse counts a "\r\n" inside a quoted field as two lines, so rows are counted here: a record starts after
  // the previous one and the empty lines skipped since, and spans one line more than the newlines in its fields.
  let nextLine = 1;
  let emptyLinesSeen = 0;
  const options: Options<ParsedRecord, string[]> = {
    delimiter,
    relax_column_count: true, // a row with the wrong number of fields is reported below, not fatal
    relax_quotes: true, // a quote inside an unquoted field (5 "inch" screen) is kept as text
    skip_empty_lines: true,
    // Both line endings in one file (rows pasted from elsewhere): csv-parse would otherwise take the first one it
    // meets as the only one, keep the other inside fields, and then read their closing quotes as text.
    record_delimiter: ['\r\n', '\n'],
    max_record_size: MAX_LINE_CHARS, // a file without a line break is not held whole
    on_record: (fields: string[], info: InfoRecord): ParsedRecord => {
      const row = nextLine + info.empty_lines - emptyLinesSeen;
      emptyLinesSeen = info.empty_lines;
      nextLine = row + fields.reduce((count, field) => count + newlines(field), 0) + 1;
      return { row, fields };
    },
  };
  // Its typings allow on_record to change the record type only with `columns`.
  const parser = parse(options as unknown as Options);
  const text = Readable.from(utf8Chunks(file));
  text.on('error', (err) => parser.destroy(err));
  text.pipe(parser);

  let header: string[] | null = null;
  try {
    for await (const { row, fields } of parser as AsyncIterable<ParsedRecord>) {
      if (header === null) {
        header = columnNames(file, row, fields);
      } else if (fields.length !== header.length) {
        yield {
          row,
          error: `${fields.length} ${fields.length === 1 ? 'field' : 'fields'}, but the header has ${header.length}`,
        };
      } else {
        const record: Record<string, unknown> = {};
        header.forEach((name, i) => (record[name] = fields[i]));
        yield { row, record };
      }
    }
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    throw new UserError(`${file}:${nextLine + Number(err.empty_lines) - emptyLinesSeen}: ${csvProblem(err)}`);
  } finally {
    text.destroy();
  }
}

/** Header names, trimmed; unnamed columns (a pandas index) become "Unnamed: 0" as pandas reads them. */
function columnNames(file: string, row: number, fields: string[]): string[] {
  const names = fields.map((field, i) => field.trim() || `Unnamed: ${i}`);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined)
    throw new UserError(`${file}:${row}: the header names the column "${repeated}" twice; column names must be unique`);
  return names;
}

function csvProblem(err: CsvError): string {
  if (err.code === 'CSV_QUOTE_NOT_CLOSED')
    return 'a quoted field is never closed; a quote inside a quoted field must be doubled ("")';
  if (err.code === 'CSV_MAX_RECORD_SIZE') return `a row holds more than ${MAX_LINE_CHARS} characters; split it`;
  return `cannot parse the row (${err.message})`;
}

function newlines(text: string): number {
  let count = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) count++;
  return count;
}
