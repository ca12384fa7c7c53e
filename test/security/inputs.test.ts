// Hostile and absurd inputs through a real studio server over HTTP: each must be answered within seconds with a 4xx
// and a short one-line reason (or, where the contract answers "cannot", a one-line reason in the result), never a
// freeze, a TypeError or an internal error, and the server must go on answering. Imports the built code (dist/).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import type { startServer as StartServer, StudioServer } from '../../main/server/serve.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { demoJob, DEMO_MODEL } from '../api/jobs.js';
import { ROOT, runCli } from '../support/cli.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};
const { startServer } = (await import(path.join(ROOT, 'dist/main/server/serve.js'))) as {
  startServer: typeof StartServer;
};

/** "Within seconds" on the 2-core test machines. */
const QUICK_MS = 5_000;

let root: string;
let api: StudioService;
let server: StudioServer;

interface Answer {
  status: number;
  body: string;
  ms: number;
}

async function post(method: string, params: unknown): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${server.port}/api/${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(params),
  });
  const body = await res.text();
  return { status: res.status, body, ms: performance.now() - started };
}

/** A refusal: 4xx, quickly, one short line matching `reason`. */
function expectRefused(answer: Answer, reason: RegExp, withinMs = QUICK_MS): string {
  expect(answer.status, answer.body.slice(0, 500)).toBeGreaterThanOrEqual(400);
  expect(answer.status, answer.body.slice(0, 500)).toBeLessThan(500);
  expect(answer.ms).toBeLessThan(withinMs);
  const { message } = (JSON.parse(answer.body) as { error: { message: string } }).error;
  expectOneLine(message);
  expect(message).toMatch(reason);
  return message;
}

function expectOneLine(message: string): void {
  expect(message).not.toContain('\n');
  expect(message.length).toBeLessThan(500);
  expect(message).not.toMatch(/TypeError|internal error|undefined/);
}

function result<T>(answer: Answer): T {
  expect(answer.status, answer.body.slice(0, 500)).toBe(200);
  return JSON.parse(answer.body) as T;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-inputs-'));
  const renderer = path.join(root, 'renderer');
  fs.mkdirSync(renderer);
  api = createStudioApi({
    home: path.join(root, 'home'),
    autoStart: false,
    homeEnvironment: { env: { XDG_DATA_HOME: path.join(root, 'data') }, platform: 'linux' },
  });
  server = await startServer({ host: '127.0.0.1', port: 0, staticDir: renderer, api });
});
afterAll(async () => {
  await server?.close();
  await api?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const dataSettings = (settings: Record<string, unknown> = {}) => ({
  format: null,
  columns: {},
  trainOn: 'all',
  pack: false,
  skipBadRows: false,
  ...settings,
});

describe('absurd model configs are refused before anything is sized by them', () => {
  let base: string;
  let modelCount = 0;
  /** A tiny model whose config.json has `change` applied. */
  const modelWith = (change: Record<string, unknown>) => {
    const dir = path.join(root, `model-${modelCount++}`);
    fs.cpSync(base, dir, { recursive: true });
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...change }));
    return dir;
  };
  beforeAll(() => {
    base = path.join(root, 'tiny');
    createTinyModel(base);
  });

  it('a million layers: every method that reads the model answers at once, naming the field, value and limit', async () => {
    const model = modelWith({ num_hidden_layers: 1e6 });
    const reason = /config\.json: field "num_hidden_layers" is 1000000, more than the 1024/;
    // Inspection answers "not supported, because" rather than failing.
    const inspect = await post('models.inspect', { source: model });
    expect(inspect.ms).toBeLessThan(QUICK_MS);
    const inspected = result<{ supported: boolean; reason: string }>(inspect);
    expect(inspected.supported).toBe(false);
    expectOneLine(inspected.reason);
    expect(inspected.reason).toMatch(reason);

    expectRefused(
      await post('models.fit', { config: { ...demoJob(path.join(root, 'out')), modelDir: model } }),
      reason,
    );
    const generate = {
      requestId: 'layers',
      modelDir: model,
      adapterDir: null,
      input: { type: 'prompt', text: 'Hi' },
      device: 'cpu',
    };
    expectRefused(await post('playground.generate', generate), reason);
    const data = path.join(root, 'ok.jsonl');
    fs.writeFileSync(data, '{"text": "hello"}\n');
    expectRefused(await post('datasets.inspect', { file: data, modelDir: model, data: dataSettings() }), reason);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['hidden_size', { hidden_size: 1e9 }, /"hidden_size" is 1000000000, more than the 65536/],
    ['vocab_size', { vocab_size: 2 ** 31 }, /"vocab_size" is 2147483648, more than the 1048576/],
    ['intermediate_size', { intermediate_size: 1e7 }, /"intermediate_size" is 10000000, more than the 262144/],
    [
      'heads',
      { num_attention_heads: 4096, num_key_value_heads: 4096 },
      /"num_attention_heads" is 4096, more than the 1024/,
    ],
    [
      'max_position_embeddings',
      { max_position_embeddings: 1e12 },
      /"max_position_embeddings" is 1000000000000, more than the 16777216/,
    ],
    ['a fraction', { num_hidden_layers: 2.5 }, /"num_hidden_layers" must be a positive integer, found 2.5/],
    ['a negative', { hidden_size: -64 }, /"hidden_size" must be a positive integer, found -64/],
    ['a string', { num_hidden_layers: 'NaN' }, /"num_hidden_layers" must be a number, found "NaN"/],
    ['a huge exponent', { vocab_size: 1e308 }, /"vocab_size" is 1e\+308, more than/],
    ['an odd head width', { head_dim: 7 }, /head dimension 7 must be an even integer/],
    [
      'a head width past the hidden size',
      { head_dim: 1024 },
      /"num_attention_heads" 4 x "head_dim" 1024 is more than 8 times "hidden_size" 64/,
    ],
    ['rope scaling that is no object', { rope_scaling: 'llama3' }, /field "rope_scaling" must be an object or null/],
  ])('%s', async (_, change, reason) => {
    expectRefused(
      await post('models.fit', { config: { ...demoJob(path.join(root, 'out')), modelDir: modelWith(change) } }),
      reason,
    );
  });

  it('a config.json that is not an object', async () => {
    const model = modelWith({});
    fs.writeFileSync(path.join(model, 'config.json'), 'null');
    expectRefused(
      await post('models.fit', { config: { ...demoJob(path.join(root, 'out')), modelDir: model } }),
      /config\.json: expected a JSON object/,
    );
  });
});

describe('LoRA targets are checked against the supported list', () => {
  it.each(['foo', '__proto__', 'constructor', 'toString'])(
    'models.fit and runs.start refuse %s, naming the field',
    async (target) => {
      const job = demoJob(path.join(root, 'out'));
      const fit = await post('models.fit', { config: { ...job, lora: { ...job.lora, targets: ['q_proj', target] } } });
      expectRefused(fit, /^models\.fit: params\.config\.lora\.targets\.1: .*q_proj/);
      const start = await post('runs.start', { job: { ...job, lora: { ...job.lora, targets: [target] } } });
      expectRefused(start, /^runs\.start: params\.job\.lora\.targets\.0: /);
    },
  );

  it('the CLI refuses --targets foo before reading any data', () => {
    const started = performance.now();
    const result = runCli(['train', '--targets', 'q_proj,__proto__', '--out', path.join(root, 'cli-out')]);
    // A bad flag value is bad usage, refused by the job schema: the flag and value, then the usage line.
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const [refusal, usage, ...rest] = result.stderr.trim().split('\n');
    expect(refusal).toMatch(
      /^peft-studio train: --targets q_proj,__proto__: unknown LoRA target "__proto__"; allowed: q_proj, /,
    );
    expect(usage).toMatch(/^usage: peft-studio train /);
    expect(rest).toEqual([]);
    expect(performance.now() - started).toBeLessThan(QUICK_MS);
  });
});

describe('playground prompts are measured before they are tokenized', () => {
  const generate = (input: unknown, requestId: string) => ({
    requestId,
    modelDir: DEMO_MODEL,
    adapterDir: null,
    input,
    sampling: { maxNewTokens: 2 },
    device: 'cpu',
  });

  it('a 7 MB prompt or conversation is refused by the contract', async () => {
    const huge = 'word '.repeat(1_400_000);
    expectRefused(
      await post('playground.generate', generate({ type: 'prompt', text: huge }, 'huge')),
      /^playground\.generate: params\.input\.text: .*1048576/,
    );
    const messages = Array.from({ length: 7 }, () => ({ role: 'user', content: 'x'.repeat(1_000_000) }));
    expectRefused(
      await post('playground.generate', generate({ type: 'messages', messages }, 'many')),
      /params\.input\.messages: the messages hold more than 1048576 characters/,
    );
  });

  it('a prompt longer than the model context can hold is refused without tokenizing it', async () => {
    // The demo: a context of 2048 tokens, no token string over 13 characters: at most 53248 characters.
    const long = 'word '.repeat(200_000);
    expectRefused(
      await post('playground.generate', generate({ type: 'prompt', text: long }, 'long')),
      /^the prompt has 1000000 characters, more than the model's context of 2048 tokens can hold \(at most 53248 characters/,
    );
    const messages = [{ role: 'user', content: long }];
    expectRefused(
      await post('playground.generate', generate({ type: 'messages', messages }, 'chat')),
      /^the conversation has \d+ characters, more than the model's context of 2048 tokens/,
    );
    // A prompt that fits still answers.
    const ok = result<{ promptTokens: number }>(
      await post('playground.generate', generate({ type: 'prompt', text: 'User: hi\nAssistant:' }, 'ok')),
    );
    expect(ok.promptTokens).toBeGreaterThan(0);
  });

  it('the CLI generate applies the same check', () => {
    // From a file: with 40 kB of arguments, whatever they hold, loading the model segfaults (ONNX Runtime, Node 20).
    const file = path.join(root, 'long-chat.json');
    fs.writeFileSync(file, JSON.stringify([{ role: 'user', content: 'word '.repeat(20_000) }]));
    const result = runCli(['generate', '--model', DEMO_MODEL, '--device', 'cpu', '--plain-chat', '--messages', file]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(
      /^peft-studio generate: error: the conversation has 1000\d\d characters, more than the model's context of 2048 tokens/,
    );
  });
});

describe('datasets.inspect: every bad file gets a reason, and answers stay small', () => {
  let count = 0;
  const dataFile = (name: string, content: string) => {
    const file = path.join(root, `${count++}-${name}`);
    fs.writeFileSync(file, content);
    return file;
  };
  const inspect = (file: string, settings: Record<string, unknown> = {}) =>
    post('datasets.inspect', { file, modelDir: DEMO_MODEL, data: dataSettings(settings) });
  interface Inspection {
    format: string | null;
    badRows: { row: number; reason: string }[];
    previews: { row: number; tokens: unknown[]; hiddenTokens: number }[];
  }
  /** An answer whose rows are all bad, each with a one-line reason matching `reason`. */
  const expectBadRows = (answer: Answer, reason: RegExp) => {
    expect(answer.ms).toBeLessThan(QUICK_MS);
    const inspection = result<Inspection>(answer);
    expect(inspection.badRows.length).toBeGreaterThan(0);
    for (const bad of inspection.badRows) {
      expectOneLine(bad.reason);
      expect(bad.reason).toMatch(reason);
    }
  };

  it('a 20 MB single-line JSONL: a one-line refusal, and the server goes on', async () => {
    const file = dataFile('one-line.jsonl', JSON.stringify({ text: 'word '.repeat(4 * 2 ** 20) }));
    const answer = await inspect(file);
    expect(answer.body.length).toBeLessThan(2 ** 20);
    expectRefused(answer, /row 1: the line holds 20971531 characters, more than the 16777216 a row may hold; split it/);
    expect((await post('app.info', {})).status).toBe(200);
  });

  it('a 1 MB row: the answer holds its first 512 tokens and says how many more there are', async () => {
    const file = dataFile('long-row.jsonl', `${JSON.stringify({ text: 'The quick brown fox. '.repeat(49_000) })}\n`);
    const answer = await inspect(file);
    expect(answer.ms).toBeLessThan(3 * QUICK_MS);
    expect(answer.body.length).toBeLessThan(2 ** 20);
    const [preview] = result<Inspection>(answer).previews;
    expect(preview.tokens).toHaveLength(512);
    expect(preview.hiddenTokens).toBeGreaterThan(100_000);
    // Past the row limit, a row is a bad row; the rest of the file still counts.
    const tooLong = dataFile(
      'too-long.jsonl',
      `${JSON.stringify({ text: 'x'.repeat(2 ** 20 + 1) })}\n{"text": "fine"}\n`,
    );
    const inspection = result<Inspection>(await inspect(tooLong));
    expect(inspection.badRows).toEqual([
      { row: 1, reason: 'the row holds 1048577 characters of text, more than the 1048576 a row may hold; split it' },
    ]);
  });

  it('100k nested arrays, in JSONL and in a JSON array', async () => {
    const nested = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expectBadRows(
      await inspect(dataFile('nested.jsonl', `{"text": ${nested}}\n`)),
      /^"text" must be text, found a list$/,
    );
    expectBadRows(
      await inspect(dataFile('nested.json', `[{"text": ${nested}}]`)),
      /^"text" must be text, found a list$/,
    );
    expectRefused(
      await inspect(dataFile('open.jsonl', `{"text": ${'['.repeat(100_000)}\n`)),
      /none of the first 1 rows can be read \(row 1: invalid JSON/,
    );
  });

  it('values of the wrong type', async () => {
    expectBadRows(
      await inspect(dataFile('messages.jsonl', '{"messages": 5}\n')),
      /^"messages" must be a list, found a number \(5\)$/,
    );
    expectBadRows(
      await inspect(dataFile('text.jsonl', '{"text": {"a": 1}}\n')),
      /^"text" must be text, found an object$/,
    );
  });

  it('a column mapping to a missing column, and a format the rows do not have, are refused', async () => {
    const text = dataFile('plain.jsonl', '{"text": "hello"}\n{"text": "again"}\n');
    expectRefused(
      await inspect(text, { columns: { text: 'body' } }),
      /cannot tell the data format: the rows have the fields "text"; expected "body"/,
    );
    expectRefused(
      await inspect(text, { format: 'text', columns: { text: 'body' } }),
      /the text format reads "body", which none of the first 2 rows has \(they have the fields "text"\)/,
    );
    expectRefused(
      await inspect(text, { format: 'tokens' }),
      /the tokens format reads "input_ids", which none of the first 2 rows has/,
    );
  });

  it('huge field names and values are cut short in every message', async () => {
    const name = 'k'.repeat(100_000);
    expectRefused(await inspect(dataFile('key.jsonl', `{"${name}": 1}\n`)), /the rows have the fields "k+…"/);
    const role = 'r'.repeat(100_000);
    expectBadRows(
      await inspect(dataFile('role.jsonl', `{"messages": [{"role": "${role}", "content": "hi"}]}\n`)),
      /^message 1 has the unknown role "r+…$/,
    );
    expectRefused(
      await inspect(dataFile('column.jsonl', '{"text": "hi"}\n'), { columns: { text: 'c'.repeat(100_000) } }),
      /expected "c+…"/,
    );
  });
});

describe('settings.set refuses storage folders that are no place for storage', () => {
  const choose = (storageFolder: string) => post('settings.set', { storageFolder });

  it.each<[string, RegExp]>([
    ['/proc/1/x', /^\/proc\/1\/x: cannot be the storage folder \(inside \/proc, a system folder\)/],
    ['/proc/self/fd/x/y/z', /inside \/proc, a system folder/],
    ['/sys/kernel/x', /inside \/sys, a system folder/],
    ['/dev/x/y', /inside \/dev, a system folder/],
    ['relative/folder', /^relative\/folder: cannot be the storage folder \(not an absolute path\)/],
  ])('%s', async (folder, reason) => {
    expectRefused(await choose(folder), reason);
  });

  it('a link into /proc, a NUL byte, 40 missing levels, a file on the way', async () => {
    const link = path.join(root, 'to-proc');
    fs.symlinkSync('/proc/self', link);
    expectRefused(
      await choose(path.join(link, 'studio')),
      /to-proc\/studio: cannot be the storage folder \(inside \/proc, a system folder\)/,
    );
    expectRefused(await choose(`${root}/a\0b`), /params\.storageFolder: a path cannot contain a NUL byte/);
    const deep = path.join(root, ...Array.from({ length: 40 }, (_, i) => `level-${i}`));
    expectRefused(await choose(deep), /cannot be the storage folder \(more than 32 folders would have to be created\)/);
    expect(fs.existsSync(path.join(root, 'level-0'))).toBe(false);
    fs.writeFileSync(path.join(root, 'a-file'), '');
    expectRefused(
      await choose(path.join(root, 'a-file', 'studio')),
      /a-file\/studio: cannot be the storage folder \(ENOTDIR\)/,
    );
    // A refused folder changes nothing; a fine one is created, level by level.
    const fine = path.join(root, 'storage', 'a', 'b');
    expect(result<{ chosenStorageFolder: string }>(await choose(fine)).chosenStorageFolder).toBe(fine);
    expect(fs.statSync(fine).isDirectory()).toBe(true);
  });
});
