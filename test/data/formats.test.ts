import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { fromWire, toWire, UserError } from '../../shared/errors.js';
import {
  detectFormat,
  guessMapping,
  MAX_REASON_CHARS,
  MAX_ROW_CHARS,
  MAX_ROW_TOKENS,
  readSamples,
  toSample,
  type ColumnMapping,
  type SampleOrBadRow,
  type SampleReadOptions,
} from '../../main/data/formats.js';
import type { FileKind, RawRow, SampleFormat } from '../../main/data/samples.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/data');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-formats-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const UNICODE = '日本語の文 😀👩‍💻 مرحبا بالعالم שלום עולם';

let files = 0;
function dataFile(extension: string, content: string): string {
  const file = path.join(root, `data-${files++}${extension}`);
  fs.writeFileSync(file, content);
  return file;
}
const jsonl = (records: unknown[]) => dataFile('.jsonl', records.map((r) => JSON.stringify(r)).join('\n') + '\n');

const raw = (record: Record<string, unknown>, row = 1): RawRow => ({ row, record });

/** The sample, or the bad row's reason. */
function convert(
  record: Record<string, unknown>,
  format: SampleFormat,
  mapping?: ColumnMapping,
  kind?: FileKind,
): unknown {
  const result = toSample(raw(record), format, mapping, kind);
  return result.ok ? result.value.sample : result.bad.reason;
}

async function readAll(file: string, options?: SampleReadOptions): Promise<SampleOrBadRow[]> {
  const items: SampleOrBadRow[] = [];
  for await (const item of readSamples(file, options)) items.push(item);
  return items;
}

async function readError(file: string, options?: SampleReadOptions): Promise<string> {
  const err = await readAll(file, options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return (err as Error).message;
}

const user = (content: string) => ({ role: 'user', content });
const assistant = (content: string) => ({ role: 'assistant', content });
const system = (content: string) => ({ role: 'system', content });

describe('detectFormat', () => {
  test.each<[Record<string, unknown>, SampleFormat]>([
    [{ messages: [] }, 'messages'],
    [{ conversations: [] }, 'sharegpt'],
    [{ instruction: 'i', output: 'o' }, 'alpaca'],
    [{ prompt: 'p', completion: 'c' }, 'prompt-completion'],
    [{ text: 't' }, 'text'],
    [{ input_ids: [1] }, 'tokens'],
    // tatsu-lab/alpaca also has the formatted prompt in "text": the instruction fields win.
    [{ instruction: 'i', input: '', output: 'o', text: 'formatted' }, 'alpaca'],
  ])('%j is %s', (record, format) => {
    expect(detectFormat([raw(record)])).toBe(format);
  });

  test('the format most rows fit wins, so a few bad rows do not mislead it', () => {
    const rows = [raw({ text: 'a' }), raw({ prompt: 'p', completion: 'c' }), raw({ prompt: 'p', completion: 'c' })];
    expect(detectFormat(rows)).toBe('prompt-completion');
  });

  test('headers that read as a question and its answer: the error carries that mapping, in words', () => {
    let error: UserError | undefined;
    try {
      detectFormat([raw({ ' Question ': 'q', Answer: 'a', id: '1' })]);
    } catch (err) {
      error = err as UserError;
    }
    expect(error?.message).toBe(
      'cannot tell the data format: the rows have the fields " Question ", "Answer", "id"; they look like prompt-completion with prompt = " Question " and completion = "Answer": choose that format and mapping',
    );
    expect(error?.field).toBe('data.columns');
    expect(error?.suggestion).toEqual({
      format: 'prompt-completion',
      columns: { prompt: ' Question ', completion: 'Answer' },
    });
    expect(guessMapping([raw({ instruction: 'i', response: 'r' })])?.columns).toEqual({
      prompt: 'instruction',
      completion: 'response',
    });
    expect(guessMapping([raw({ question: 'q', source: 's' })])).toBeNull(); // no answer column
    // Through the wire between processes, as the engine's errors travel.
    expect(fromWire(toWire(error))).toMatchObject({ field: 'data.columns', suggestion: error!.suggestion });
  });

  test('a column mapping names the columns and limits the candidates', () => {
    expect(detectFormat([raw({ question: 'q', answer: 'a' })], { prompt: 'question', completion: 'answer' })).toBe(
      'prompt-completion',
    );
    expect(detectFormat([raw({ dialog: [], text: 't' })], { messages: 'dialog' })).toBe('messages');
    expect(detectFormat([raw({ body: 'b', text: 't' })], { text: 'body' })).toBe('text');
  });

  test('nothing fits: the message lists the fields found and the fields expected', () => {
    expect(() => detectFormat([raw({ topic: 'q', answer: 'a' }), raw({ topic: 'q', source: 's' })])).toThrow(
      new UserError(
        'cannot tell the data format: the rows have the fields "topic", "answer", "source"; expected "input_ids", "messages", "conversations", "instruction" + "output", "prompt" + "completion", "text"; choose the format and map its fields to your columns',
      ),
    );
    expect(() => detectFormat([raw({ q: 'q' })], { prompt: 'question', completion: 'answer' })).toThrow(
      /fields "q"; expected "question" \+ "answer";/,
    );
  });

  test('a mapping with unknown or incompatible fields is refused', () => {
    expect(() => detectFormat([raw({ a: 1 })], { answer: 'a' } as ColumnMapping)).toThrow(
      /the column mapping sets "answer", which is not a field of any format/,
    );
    expect(() => detectFormat([raw({ a: 1 })], { prompt: 'a', text: 'b' })).toThrow(
      'no single format uses all the fields in the column mapping (prompt, text)',
    );
  });
});

describe('toSample: chats', () => {
  test('messages: one turn, many turns, a system prompt, unicode; the last turn need not be the assistant', () => {
    expect(convert({ messages: [user('Hi'), assistant('Hello')] }, 'messages')).toEqual({
      kind: 'chat',
      messages: [user('Hi'), assistant('Hello')],
    });
    const long = [system('Be brief.'), user(UNICODE), assistant(UNICODE), user('More?'), assistant('No.'), user('Bye')];
    expect(convert({ messages: long }, 'messages')).toEqual({ kind: 'chat', messages: long });
  });

  test('sharegpt: from/value with human and gpt', () => {
    const conversations = [
      { from: 'system', value: 'S' },
      { from: 'human', value: 'Q' },
      { from: 'gpt', value: 'A' },
    ];
    expect(convert({ conversations }, 'sharegpt')).toEqual({
      kind: 'chat',
      messages: [system('S'), user('Q'), assistant('A')],
    });
  });

  test.each<[unknown, string]>([
    [[user('Hi')], 'no assistant message, so nothing to train on'],
    [[user('Hi'), system('late'), assistant('A')], 'message 2 is a system message; only the first message may be one'],
    [
      [user('Hi'), { role: 'tool', content: '{}' }, assistant('A')],
      'message 2 has the unknown role "tool"; expected system, user or assistant (or human, gpt)',
    ],
    [[user('Hi'), assistant('  ')], 'message 2 "content" is empty'],
    [
      [user('Hi'), { role: 'assistant', content: 42 }],
      'message 2 "content" must be text, found a number (42); put it in quotes',
    ],
    [[user('Hi'), { role: 'assistant' }], 'message 2 has no "content" field'],
    [[{ content: 'Hi' }], 'message 1 has no "role" field'],
    [['Hi'], 'message 1 must be an object with "role" and "content", found text ("Hi")'],
    [[], '"messages" is an empty list'],
    ['Hi', '"messages" must be a list, found text ("Hi")'],
  ])('messages %j: %s', (messages, reason) => {
    expect(convert({ messages }, 'messages')).toBe(reason);
  });

  test('a missing or null list', () => {
    expect(convert({ text: 'x' }, 'messages')).toBe('no "messages" field');
    expect(convert({ conversations: null }, 'sharegpt')).toBe('"conversations" is null');
  });

  test('alpaca: the input, when there is one, follows the instruction after a blank line; system comes first', () => {
    expect(convert({ instruction: 'Add 2 and 3.', output: '5' }, 'alpaca')).toEqual({
      kind: 'chat',
      messages: [user('Add 2 and 3.'), assistant('5')],
    });
    expect(convert({ instruction: 'Add.', input: null, output: '5' }, 'alpaca')).toEqual({
      kind: 'chat',
      messages: [user('Add.'), assistant('5')],
    });
    expect(
      convert({ instruction: 'Translate.', input: UNICODE, output: 'Hello', system: 'You translate.' }, 'alpaca'),
    ).toEqual({
      kind: 'chat',
      messages: [system('You translate.'), user(`Translate.\n\n${UNICODE}`), assistant('Hello')],
    });
  });

  test('alpaca: missing and mistyped fields', () => {
    expect(convert({ instruction: 'Add.', input: '2, 3' }, 'alpaca')).toBe('no "output" field');
    expect(convert({ instruction: 'Add.', output: 5 }, 'alpaca')).toBe(
      '"output" must be text, found a number (5); put it in quotes',
    );
    expect(convert({ instruction: '', output: '5' }, 'alpaca')).toBe('"instruction" is empty');
    expect(convert({ instruction: 'Add.', input: ['2'], output: '5' }, 'alpaca')).toBe(
      '"input" must be text, found a list',
    );
  });
});

describe('toSample: completions, text and tokens', () => {
  test('prompt-completion and text', () => {
    expect(convert({ prompt: 'Q', completion: UNICODE }, 'prompt-completion')).toEqual({
      kind: 'completion',
      prompt: 'Q',
      completion: UNICODE,
    });
    expect(convert({ prompt: 'Q' }, 'prompt-completion')).toBe('no "completion" field');
    expect(convert({ text: UNICODE }, 'text')).toEqual({ kind: 'text', text: UNICODE });
    expect(convert({ text: '' }, 'text')).toBe('"text" is empty');
    expect(convert({ text: true }, 'text')).toBe('"text" must be text, found a boolean (true); put it in quotes');
  });

  test('numbers in text columns: text in CSV, TSV and Parquet; an error in JSON', () => {
    const row = { prompt: 'What is 6 x 7?', completion: 42 };
    expect(convert(row, 'prompt-completion', {}, 'parquet')).toEqual({
      kind: 'completion',
      prompt: 'What is 6 x 7?',
      completion: '42',
    });
    expect(convert(row, 'prompt-completion', {}, 'jsonl')).toBe(
      '"completion" must be text, found a number (42); put it in quotes',
    );
    expect(convert(row, 'prompt-completion')).toBe('"completion" must be text, found a number (42); put it in quotes');
  });

  test('tokens: labels optional, -100 allowed in labels only', () => {
    expect(convert({ input_ids: [5, 6, 7] }, 'tokens')).toEqual({ kind: 'tokens', inputIds: [5, 6, 7], labels: null });
    expect(convert({ input_ids: [5, 6, 7], labels: [-100, 6, 7] }, 'tokens')).toEqual({
      kind: 'tokens',
      inputIds: [5, 6, 7],
      labels: [-100, 6, 7],
    });
  });

  test.each<[Record<string, unknown>, string]>([
    [{ input_ids: [5, -1] }, '"input_ids"[1] is a number (-1); expected a token id (an integer ≥ 0)'],
    [{ input_ids: [5, 1.5] }, '"input_ids"[1] is a number (1.5); expected a token id (an integer ≥ 0)'],
    [{ input_ids: ['5'] }, '"input_ids"[0] is text ("5"); expected a token id (an integer ≥ 0)'],
    [{ input_ids: [] }, '"input_ids" is an empty list'],
    [{ input_ids: '1 2 3' }, '"input_ids" must be a list, found text ("1 2 3")'],
    [{ input_ids: [5, 6], labels: [6] }, '"labels" has 1 entries and "input_ids" has 2; they must match'],
    [
      { input_ids: [5, 6], labels: [-100, -1] },
      '"labels"[1] is a number (-1); expected a token id (an integer ≥ 0 or -100)',
    ],
    [{ input_ids: [5, 6], labels: [-100, -100] }, 'every entry of "labels" is -100, so nothing to train on'],
  ])('tokens %j: %s', (record, reason) => {
    expect(convert(record, 'tokens')).toBe(reason);
  });

  test('CSV cells may hold JSON lists, and an empty cell is no list; in a JSON file a string is not a list', () => {
    expect(convert({ input_ids: '[1, 2]', labels: '' }, 'tokens', {}, 'csv')).toEqual({
      kind: 'tokens',
      inputIds: [1, 2],
      labels: null,
    });
    expect(convert({ input_ids: '' }, 'tokens', {}, 'csv')).toBe('"input_ids" is empty');
    expect(convert({ input_ids: '[1, 2]', labels: '[-100, 2]' }, 'tokens', {}, 'csv')).toEqual({
      kind: 'tokens',
      inputIds: [1, 2],
      labels: [-100, 2],
    });
    expect(convert({ messages: JSON.stringify([user('Q'), assistant('A')]) }, 'messages', {}, 'tsv')).toEqual({
      kind: 'chat',
      messages: [user('Q'), assistant('A')],
    });
    expect(convert({ input_ids: '1 2' }, 'tokens', {}, 'csv')).toBe(
      '"input_ids" must be a list, found text that is not JSON (text ("1 2"))',
    );
    expect(convert({ input_ids: '[1, 2]' }, 'tokens', {}, 'json')).toBe(
      '"input_ids" must be a list, found text ("[1, 2]")',
    );
  });

  test('a column mapping reads and names the user columns', () => {
    expect(
      convert({ question: 'Q', answer: 'A' }, 'prompt-completion', { prompt: 'question', completion: 'answer' }),
    ).toEqual({ kind: 'completion', prompt: 'Q', completion: 'A' });
    expect(convert({ question: 'Q' }, 'prompt-completion', { prompt: 'question', completion: 'answer' })).toBe(
      'no "answer" field',
    );
    expect(convert({ dialog: [user('Q'), assistant('A')] }, 'messages', { messages: 'dialog' })).toEqual({
      kind: 'chat',
      messages: [user('Q'), assistant('A')],
    });
    expect(convert({ ids: [1, -2] }, 'tokens', { input_ids: 'ids' })).toBe(
      '"ids"[1] is a number (-2); expected a token id (an integer ≥ 0)',
    );
  });

  test('field names are own properties only', () => {
    expect(convert({}, 'text', { text: 'constructor' })).toBe('no "constructor" field');
    expect(convert({ messages: [{ role: 'constructor', content: 'x' }] }, 'messages')).toMatch(
      /unknown role "constructor"/,
    );
    expect(convert({ text: 'T' }, 'text', Object.create({ text: 'inherited' }) as ColumnMapping)).toEqual({
      kind: 'text',
      text: 'T',
    });
  });

  test('a row past the size limit is a bad row; a reason quoting the row is cut short', () => {
    expect(convert({ text: 'x'.repeat(MAX_ROW_CHARS) }, 'text')).toEqual({
      kind: 'text',
      text: 'x'.repeat(MAX_ROW_CHARS),
    });
    const half = 'y'.repeat(MAX_ROW_CHARS / 2);
    const chat = { messages: [user(half), assistant(`${half}!`)] };
    expect(convert(chat, 'messages')).toBe(
      `the row holds ${MAX_ROW_CHARS + 1} characters of text, more than the ${MAX_ROW_CHARS} a row may hold; split it`,
    );
    expect(convert({ input_ids: new Array(MAX_ROW_TOKENS + 1).fill(1) }, 'tokens')).toBe(
      `the row holds ${MAX_ROW_TOKENS + 1} token ids, more than the ${MAX_ROW_TOKENS} a row may hold; split it`,
    );
    const reason = convert({ messages: [{ role: 'r'.repeat(10_000), content: 'x' }] }, 'messages') as string;
    expect(reason).toHaveLength(MAX_REASON_CHARS);
    expect(reason).toMatch(/^message 1 has the unknown role "r+…$/);
  });
});

describe('readSamples', () => {
  test('good samples and bad rows, tagged, in file order, with their row numbers and reasons', async () => {
    const file = dataFile(
      '.jsonl',
      [
        JSON.stringify({ messages: [user('Hi'), assistant('Hello')] }),
        '',
        '{"messages": [',
        JSON.stringify({ messages: [user('Hi')] }),
        JSON.stringify({ messages: [system('S'), user(UNICODE), assistant(UNICODE)] }),
        JSON.stringify({ text: 'wrong format' }),
      ].join('\n'),
    );
    const formats: SampleFormat[] = [];
    const items = await readAll(file, { onFormat: (format) => formats.push(format) });
    expect(formats).toEqual(['messages']);
    expect(items[0]).toEqual({
      type: 'sample',
      row: 1,
      sample: { kind: 'chat', messages: [user('Hi'), assistant('Hello')] },
    });
    expect(items[1]).toMatchObject({ type: 'bad', row: 3, reason: expect.stringMatching(/^invalid JSON/) });
    expect(items.slice(2)).toEqual([
      { type: 'bad', row: 4, reason: 'no assistant message, so nothing to train on' },
      { type: 'sample', row: 5, sample: { kind: 'chat', messages: [system('S'), user(UNICODE), assistant(UNICODE)] } },
      { type: 'bad', row: 6, reason: 'no "messages" field' },
    ]);
  });

  test('detection reads ahead past the first rows and still yields every row once, in order', async () => {
    const records = Array.from({ length: 45 }, (_, i) => (i % 10 === 3 ? { oops: i } : { text: `row ${i + 1}` }));
    const items = await readAll(jsonl(records));
    expect(items.map((item) => item.row)).toEqual(records.map((_, i) => i + 1));
    expect(items.filter((item) => item.type === 'bad').map((item) => item.row)).toEqual([4, 14, 24, 34, 44]);
  });

  test('a chosen format overrides detection; a mapping maps columns', async () => {
    const file = jsonl([{ prompt: 'P', completion: 'C', text: 'T' }]);
    expect(await readAll(file, { format: 'text' })).toEqual([
      { type: 'sample', row: 1, sample: { kind: 'text', text: 'T' } },
    ]);
    const qa = jsonl([{ question: 'Q', answer: 'A' }]);
    expect(await readAll(qa, { mapping: { prompt: 'question', completion: 'answer' } })).toEqual([
      { type: 'sample', row: 1, sample: { kind: 'completion', prompt: 'Q', completion: 'A' } },
    ]);
    expect(await readError(file, { format: 'text', mapping: { prompt: 'question' } })).toBe(
      `${file}: the column mapping sets "prompt", which the text format does not read (it reads text)`,
    );
  });

  test('a chosen format or mapping that none of the first rows fits is refused; later rows that do not fit are bad rows', async () => {
    const file = jsonl([{ text: 'T' }, { text: 'U' }]);
    expect(await readError(file, { format: 'tokens' })).toBe(
      `${file}: the tokens format reads "input_ids", which none of the first 2 rows has (they have the fields "text"); choose another format or map its fields to your columns`,
    );
    expect(await readError(file, { format: 'text', mapping: { text: 'body' } })).toMatch(
      new RegExp(`^${file}: the text format reads "body", which none of the first 2 rows`),
    );
    const mixed = jsonl([{ text: 'T' }, { input_ids: [1] }]);
    expect((await readAll(mixed, { format: 'text' })).map((item) => item.type)).toEqual(['sample', 'bad']);
  });

  test('CSV alpaca with and without input, numbers made text, row numbers of multi-line records', async () => {
    const file = dataFile(
      '.csv',
      '\uFEFFinstruction,input,output\r\n"Sum:\r\n2 + 3",,5\r\nGreet,"in ""French""",Bonjour\r\nEmpty,,\r\n',
    );
    expect(await readAll(file)).toEqual([
      { type: 'sample', row: 2, sample: { kind: 'chat', messages: [user('Sum:\r\n2 + 3'), assistant('5')] } },
      {
        type: 'sample',
        row: 4,
        sample: { kind: 'chat', messages: [user('Greet\n\nin "French"'), assistant('Bonjour')] },
      },
      { type: 'bad', row: 5, reason: '"output" is empty' },
    ]);
  });

  test('Parquet written by pyarrow: chats, stringified int64 answers, token lists', async () => {
    const chat = await readAll(path.join(FIXTURES, 'chat.parquet'));
    expect(chat.map((item) => (item.type === 'sample' ? item.sample.kind : `${item.row}: ${item.reason}`))).toEqual([
      'chat',
      'chat',
      '3: no assistant message, so nothing to train on',
      'chat',
      '5: message 1 has the unknown role "tool"; expected system, user or assistant (or human, gpt)',
    ]);
    const qa = await readAll(path.join(FIXTURES, 'qa.parquet'), {
      mapping: { prompt: 'question', completion: 'answer' },
    });
    expect(qa).toEqual([
      { type: 'sample', row: 1, sample: { kind: 'completion', prompt: 'What is 6 x 7?', completion: '42' } },
      { type: 'sample', row: 2, sample: { kind: 'completion', prompt: UNICODE, completion: '7' } },
      { type: 'bad', row: 3, reason: '"question" must be text, found null' },
    ]);
    const tokens = await readAll(path.join(FIXTURES, 'tokens.parquet'));
    expect(tokens.map((item) => (item.type === 'sample' ? item.row : `${item.row}: ${item.reason}`))).toEqual([
      1,
      2,
      '3: "input_ids"[1] is a number (-7); expected a token id (an integer ≥ 0)',
      '4: "labels" has 2 entries and "input_ids" has 3; they must match',
      '5: "labels"[0] is text ("1152921504606846976"); expected a token id (an integer ≥ 0 or -100)',
    ]);
  });

  test('plain text files are text samples', async () => {
    expect(await readAll(dataFile('.txt', 'one\n\ntwo\n'))).toEqual([
      { type: 'sample', row: 1, sample: { kind: 'text', text: 'one' } },
      { type: 'sample', row: 3, sample: { kind: 'text', text: 'two' } },
    ]);
  });

  test('an undetectable format, an empty file, and a file of bad rows only', async () => {
    const file = jsonl([{ topic: 'Q', answer: 'A' }]);
    expect(await readError(file)).toMatch(
      new RegExp(`^${file}: cannot tell the data format: the rows have the fields "topic", "answer"; expected`),
    );
    const empty = dataFile('.jsonl', '\n\n');
    expect(await readError(empty)).toBe(`${empty}: no rows; the file is empty`);
    expect(await readError(empty, { format: 'text' })).toBe(`${empty}: no rows; the file is empty`);
    // Rows that cannot be read are reported before the detection gives up.
    const broken = dataFile('.jsonl', '{\n[]\n');
    const seen: string[] = [];
    const message = await (async () => {
      for await (const item of readSamples(broken))
        seen.push(item.type === 'bad' ? `${item.row}: ${item.reason}` : 'sample');
    })().then(
      () => 'no error',
      (err: Error) => err.message,
    );
    expect(seen).toEqual([expect.stringMatching(/^1: invalid JSON/), '2: expected a JSON object, found a list']);
    // The first row's problem says why.
    expect(message).toMatch(
      new RegExp(
        `^${broken}: cannot tell the data format: none of the first 2 rows can be read \\(row 1: invalid JSON \\(.+\\)\\)$`,
      ),
    );
    const mostlyBroken = dataFile('.jsonl', '{\n'.repeat(1500) + '{"text": "late"}\n');
    expect(await readError(mostlyBroken)).toMatch(
      new RegExp(`^${mostlyBroken}: cannot tell the data format: none of the first 1000 rows can be read \\(row 1: `),
    );
  });

  // Linux shows a process's open files in /proc/self/fd; elsewhere this test has nothing to count.
  test.runIf(fs.existsSync('/proc/self/fd'))(
    'stopping early closes the file, also while rows are read ahead for detection',
    async () => {
      // Which of these files the process still holds open (other fds of the worker come and go).
      const heldOpen = (paths: string[]) =>
        fs
          .readdirSync('/proc/self/fd')
          .map((fd) => {
            try {
              return fs.readlinkSync(`/proc/self/fd/${fd}`);
            } catch {
              return ''; // closed between listing and reading
            }
          })
          .filter((target) => paths.includes(target));
      const files = [
        jsonl(Array.from({ length: 100 }, (_, i) => ({ text: `row ${i}` }))),
        dataFile('.csv', 'text\n' + 'row\n'.repeat(200_000)),
      ].map((file) => fs.realpathSync(file));
      for (const file of files) {
        for await (const item of readSamples(file)) {
          expect(item.row).toBeLessThanOrEqual(2);
          expect(heldOpen([file])).toEqual([file]); // the check sees an open file
          break;
        }
      }
      // File handles close asynchronously: wait up to 2 s for both.
      for (let waited = 0; heldOpen(files).length > 0 && waited < 2000; waited += 50)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(heldOpen(files)).toEqual([]);
    },
  );
});
