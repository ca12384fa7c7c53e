import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { detectFileKind, readRawRows, type RawRowOrError, type ReadOptions } from '../../main/data/readers/index.js';
import { MAX_LINE_CHARS } from '../../main/data/readers/utf8.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/data');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-readers-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const BOM = '\uFEFF';
const UNICODE = '日本語の文 😀👩‍💻 مرحبا بالعالم שלום עולם';

let files = 0;
function dataFile(extension: string, content: string | Buffer): string {
  const file = path.join(root, `data-${files++}${extension}`);
  fs.writeFileSync(file, content);
  return file;
}

async function readAll(file: string, options?: ReadOptions): Promise<RawRowOrError[]> {
  const rows: RawRowOrError[] = [];
  for await (const row of readRawRows(file, options)) rows.push(row);
  return rows;
}

async function readError(file: string, options?: ReadOptions): Promise<string> {
  const err = await readAll(file, options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('detectFileKind', () => {
  test('knows the extensions, in any case', () => {
    const kinds = ['a.jsonl', 'a.ndjson', 'a.JSON', 'a.csv', 'a.TSV', 'a.parquet', 'a.txt', 'a.text', 'a.md'].map(
      detectFileKind,
    );
    expect(kinds).toEqual(['jsonl', 'jsonl', 'json', 'csv', 'tsv', 'parquet', 'text', 'text', 'text']);
  });

  test('an unknown extension is a UserError naming the file', () => {
    expect(() => detectFileKind('/data/train.xlsx')).toThrow(UserError);
    expect(() => detectFileKind('/data/train.xlsx')).toThrow(/^\/data\/train\.xlsx: .*"\.xlsx".*\.jsonl/);
    expect(() => detectFileKind('/data/README')).toThrow(/README: .*\(none\)/);
  });
});

describe('readRawRows: files that cannot be read', () => {
  test('a missing file, a folder and an unknown extension name the file', async () => {
    expect(await readError(path.join(root, 'missing.jsonl'))).toBe(`${path.join(root, 'missing.jsonl')}: no such file`);
    expect(await readError(root)).toBe(`${root}: is a folder; choose a data file inside it`);
    expect(await readError(dataFile('.xlsx', 'x'))).toMatch(
      /data-\d+\.xlsx: cannot tell the data format from the extension ".xlsx"/,
    );
  });

  test('the kind option overrides the extension', async () => {
    expect(await readAll(dataFile('.data', '{"text": "a"}\n'), { kind: 'jsonl' })).toEqual([
      { row: 1, record: { text: 'a' } },
    ]);
  });

  test('bytes that are not UTF-8 stop the read with the line', async () => {
    const latin1 = Buffer.concat([
      Buffer.from('{"text": "ok"}\n{"text": "ok"}\n{"text": "caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}\n'),
    ]);
    const file = dataFile('.jsonl', latin1);
    expect(await readError(file)).toBe(`${file}:3: not valid UTF-8 text; save the file as UTF-8`);
    const utf16 = dataFile(
      '.csv',
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('text\r\nhi\r\n', 'utf16le')]),
    );
    expect(await readError(utf16)).toBe(`${utf16}: the file is UTF-16 text; save it as UTF-8`);
  });
});

describe('JSONL', () => {
  test('BOM, CRLF and blank lines; rows are line numbers', async () => {
    const file = dataFile('.jsonl', `${BOM}{"text": "a"}\r\n\r\n   \r\n{"text": "b"}\r\n{"text": "c"}`);
    expect(await readAll(file)).toEqual([
      { row: 1, record: { text: 'a' } },
      { row: 4, record: { text: 'b' } },
      { row: 5, record: { text: 'c' } },
    ]);
  });

  test('invalid JSON and non-objects are errors on their line, and reading goes on', async () => {
    const file = dataFile('.jsonl', '{"text": "a"}\n{"text": "b"\n[1, 2]\n"text"\n{"text": "e"}\n');
    const rows = await readAll(file);
    expect(rows[0]).toEqual({ row: 1, record: { text: 'a' } });
    expect(rows[1]).toMatchObject({ row: 2, error: expect.stringMatching(/^invalid JSON \(.+\)$/) });
    expect(rows.slice(2)).toEqual([
      { row: 3, error: 'expected a JSON object, found a list' },
      { row: 4, error: 'expected a JSON object, found text ("text")' },
      { row: 5, record: { text: 'e' } },
    ]);
  });

  test('unicode survives byte-exact, also where the read chunks split a character', async () => {
    // 64 KiB read chunks: 4-byte emoji and 3-byte CJK characters straddle the chunk boundaries of this 200 KB line.
    const long = `${UNICODE} `.repeat(3000);
    const file = dataFile('.jsonl', `${JSON.stringify({ text: UNICODE })}\n${JSON.stringify({ text: long })}\n`);
    const texts = (await readAll(file)).map((row) => ('record' in row ? row.record.text : row.error));
    expect(texts).toEqual([UNICODE, long]);
    expect(Buffer.from(texts[1] as string).equals(Buffer.from(long))).toBe(true);
  });
});

describe('JSON array', () => {
  test('a pretty-printed array with a BOM; rows are element numbers; non-objects are errors', async () => {
    const elements = [{ text: UNICODE }, 42, { prompt: 'p', completion: 'c' }];
    const file = dataFile('.json', BOM + JSON.stringify(elements, null, 2).replaceAll('\n', '\r\n'));
    expect(await readAll(file)).toEqual([
      { row: 1, record: { text: UNICODE } },
      { row: 2, error: 'expected a JSON object, found a number (42)' },
      { row: 3, record: { prompt: 'p', completion: 'c' } },
    ]);
  });

  test('an empty array and an empty file have no rows', async () => {
    expect(await readAll(dataFile('.json', ' [ ] '))).toEqual([]);
    expect(await readAll(dataFile('.json', ''))).toEqual([]);
  });

  test('a top-level object, a syntax error and a truncated array are UserErrors', async () => {
    const object = dataFile('.json', '{"text": "a"}\n{"text": "b"}\n');
    expect(await readError(object)).toMatch(
      /: the file holds one JSON object; expected an array of records .*name the file \.jsonl$/,
    );
    const broken = dataFile('.json', '[{"text": "a"}, {"text": "b"} {"text": "c"}]');
    expect(await readError(broken)).toMatch(new RegExp(`^${broken}: invalid JSON after element 2 \\(.+\\)$`));
    const truncated = dataFile('.json', '[{"text": "a"}, {"text": "b"');
    expect(await readError(truncated)).toBe(
      `${truncated}: the JSON array is not closed after element 1 (is the file truncated?)`,
    );
  });
});

describe('CSV and TSV', () => {
  test('quoted fields with newlines, doubled quotes and commas; BOM and CRLF; rows are the lines records start on', async () => {
    const file = dataFile(
      '.csv',
      [
        `${BOM}prompt,completion`,
        '"Write a haiku,\r\nplease","Old pond\r\nfrog jumps in"',
        '',
        `"He said ""hi""",${UNICODE}`,
        'plain,5 "inch" screen',
        '',
      ].join('\r\n'),
    );
    expect(await readAll(file)).toEqual([
      { row: 2, record: { prompt: 'Write a haiku,\r\nplease', completion: 'Old pond\r\nfrog jumps in' } },
      { row: 6, record: { prompt: 'He said "hi"', completion: UNICODE } },
      { row: 7, record: { prompt: 'plain', completion: '5 "inch" screen' } },
    ]);
  });

  test('CRLF and LF mixed in one file: every row ends at its own line ending, quotes parsed, rows counted', async () => {
    const file = dataFile(
      '.csv',
      'question,answer\r\n"How do I reset?","Press ""reset""."\r\n"Where is it?","On the back, left."\n' +
        '"Hours?","9 to 5,\nweekdays"\r\nplain,text\n',
    );
    expect(await readAll(file)).toEqual([
      { row: 2, record: { question: 'How do I reset?', answer: 'Press "reset".' } },
      { row: 3, record: { question: 'Where is it?', answer: 'On the back, left.' } },
      { row: 4, record: { question: 'Hours?', answer: '9 to 5,\nweekdays' } },
      { row: 6, record: { question: 'plain', answer: 'text' } },
    ]);
  });

  test('a row with the wrong number of fields is an error on its line', async () => {
    const file = dataFile('.csv', 'text,label\n"multi\nline",x\none field\na,b,c\nok,1\n');
    expect(await readAll(file)).toEqual([
      { row: 2, record: { text: 'multi\nline', label: 'x' } },
      { row: 4, error: '1 field, but the header has 2' },
      { row: 5, error: '3 fields, but the header has 2' },
      { row: 6, record: { text: 'ok', label: '1' } },
    ]);
  });

  test('text after a closing quote is kept; a quote never closed stops the read at the line its record starts on', async () => {
    const lenient = dataFile('.csv', 'text\n"bad" quote\nnext\n');
    expect(await readAll(lenient)).toEqual([
      { row: 2, record: { text: '"bad" quote' } },
      { row: 3, record: { text: 'next' } },
    ]);
    // The "\r\n" inside the first quoted field is one line break, not two.
    const unclosed = dataFile('.csv', ['text', '"a\r\nb"', '', 'ok', '"never closed', 'more', ''].join('\r\n'));
    expect(await readError(unclosed)).toBe(
      `${unclosed}:6: a quoted field is never closed; a quote inside a quoted field must be doubled ("")`,
    );
  });

  test('header names are trimmed, unnamed columns named as pandas does, repeats refused', async () => {
    expect(await readAll(dataFile('.csv', ',prompt , completion\n0,p,c\n'))).toEqual([
      { row: 2, record: { 'Unnamed: 0': '0', prompt: 'p', completion: 'c' } },
    ]);
    const repeated = dataFile('.csv', 'text,text\na,b\n');
    expect(await readError(repeated)).toBe(
      `${repeated}:1: the header names the column "text" twice; column names must be unique`,
    );
  });

  test('TSV: tabs delimit, commas do not, quoted fields may hold tabs and newlines', async () => {
    const file = dataFile(
      '.tsv',
      `instruction\tinput\toutput\r\nAdd, then stop\t\t3\r\n"tab\there"\t"line\nbreak"\t${UNICODE}\r\n`,
    );
    expect(await readAll(file)).toEqual([
      { row: 2, record: { instruction: 'Add, then stop', input: '', output: '3' } },
      { row: 3, record: { instruction: 'tab\there', input: 'line\nbreak', output: UNICODE } },
    ]);
  });
});

describe('Parquet (files written by pyarrow, see test/fixtures/data/make_parquet.py)', () => {
  test('list-of-struct columns across zstd row groups, unicode intact', async () => {
    const rows = await readAll(path.join(FIXTURES, 'chat.parquet'));
    expect(rows.map((row) => row.row)).toEqual([1, 2, 3, 4, 5]);
    expect(rows[0]).toEqual({
      row: 1,
      record: {
        messages: [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello!' },
        ],
      },
    });
    const second = rows[1] as { record: { messages: { content: string }[] } };
    expect(second.record.messages[1].content).toBe(UNICODE);
  });

  test('int64 columns become numbers, nulls stay null (gzip)', async () => {
    expect(await readAll(path.join(FIXTURES, 'qa.parquet'))).toEqual([
      { row: 1, record: { id: 1, question: 'What is 6 x 7?', answer: 42 } },
      { row: 2, record: { id: 2, question: UNICODE, answer: 7 } },
      { row: 3, record: { id: 3, question: null, answer: 1 } },
    ]);
  });

  test('integer lists become number lists; int64 beyond 2^53 becomes digits (snappy)', async () => {
    const rows = await readAll(path.join(FIXTURES, 'tokens.parquet'));
    expect(rows[0]).toEqual({ row: 1, record: { input_ids: [1, 2, 3], labels: [-100, 2, 3] } });
    expect(rows[1]).toEqual({ row: 2, record: { input_ids: [4, 5], labels: null } });
    expect(rows[4]).toEqual({ row: 5, record: { input_ids: [11], labels: [(2n ** 60n).toString()] } });
  });

  test('a file that is not Parquet is a UserError', async () => {
    const file = dataFile('.parquet', 'text\nhello\n');
    expect(await readError(file)).toMatch(new RegExp(`^${file}: not a readable Parquet file \\(.+\\)$`));
  });
});

describe('plain text', () => {
  const content = `${BOM}First line\r\n\r\nSecond ${UNICODE}\r\nstill second\r\n  \r\n\r\nThird\r\n`;

  test('line mode: each non-blank line is a record { text }', async () => {
    expect(await readAll(dataFile('.txt', content))).toEqual([
      { row: 1, record: { text: 'First line' } },
      { row: 3, record: { text: `Second ${UNICODE}` } },
      { row: 4, record: { text: 'still second' } },
      { row: 7, record: { text: 'Third' } },
    ]);
  });

  test('block mode: blank lines separate records; a record starts at its first line', async () => {
    expect(await readAll(dataFile('.md', content), { textMode: 'block' })).toEqual([
      { row: 1, record: { text: 'First line' } },
      { row: 3, record: { text: `Second ${UNICODE}\nstill second` } },
      { row: 7, record: { text: 'Third' } },
    ]);
  });
});

describe('over-long lines', () => {
  const long = 'x'.repeat(MAX_LINE_CHARS + 10);

  test('a line past the limit is an error row, never held; the lines after it are read', async () => {
    const file = dataFile('.jsonl', `{"text": "a"}\n"${long}"\n{"text": "b"}\n"${long}"`);
    expect(await readAll(file)).toEqual([
      { row: 1, record: { text: 'a' } },
      {
        row: 2,
        error: `the line holds ${MAX_LINE_CHARS + 12} characters, more than the ${MAX_LINE_CHARS} a row may hold; split it`,
      },
      { row: 3, record: { text: 'b' } },
      {
        row: 4,
        error: `the line holds ${MAX_LINE_CHARS + 12} characters, more than the ${MAX_LINE_CHARS} a row may hold; split it`,
      },
    ]);
  });

  test('plain text: the line, or in block mode its block, is the error row', async () => {
    const file = dataFile('.txt', `a\n${long}\nb\n\nc\n`);
    expect((await readAll(file)).map((row) => ('error' in row ? `${row.row}: error` : row.record.text))).toEqual([
      'a',
      '2: error',
      'b',
      'c',
    ]);
    expect(
      (await readAll(file, { textMode: 'block' })).map((row) =>
        'error' in row ? `${row.row}: error` : row.record.text,
      ),
    ).toEqual(['1: error', 'c']);
    const manyLines = dataFile('.txt', `${'y'.repeat(2 ** 20)}\n`.repeat(17));
    expect(await readAll(manyLines, { textMode: 'block' })).toEqual([
      { row: 1, error: `the block of lines holds more than ${MAX_LINE_CHARS} characters; split it` },
    ]);
  });

  test('CSV: a record past the limit stops the read', async () => {
    const file = dataFile('.csv', `text\n"${long}"\n`);
    expect(await readError(file)).toBe(`${file}:2: a row holds more than ${MAX_LINE_CHARS} characters; split it`);
  });
});
