// Bad input through the studio API, as the GUI shows it: one line in words that says what and where, never a CLI flag,
// and the same refusal the CLI gives for the same input (which may add the flags that would fix it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import { ROOT, runCli } from '../support/cli.js';
import { DEMO_MODEL } from './jobs.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};

const ADAPTER = path.join(ROOT, 'test/fixtures/numerics/llama_gqa/adapter');
const DATA = {
  format: null,
  columns: {},
  trainOn: 'completion',
  pack: false,
  skipBadRows: false,
  dropDuplicates: false,
};
let root: string;
let api: StudioService;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'gui-errors-'));
  api = createStudioApi({
    home: path.join(root, 'home'),
    homeEnvironment: { env: { XDG_DATA_HOME: path.join(root, 'data') }, platform: 'linux' },
  });
});
afterAll(async () => {
  await api?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

/** The GUI's message for a refused call: one line, no flags. */
async function guiError(method: string, params: unknown): Promise<string> {
  const message = await api.call(method as never, params as never).then(
    () => null,
    (err: Error) => err.message,
  );
  expect(message, `${method} should refuse`).not.toBeNull();
  expect(message).not.toContain('\n');
  expect(message).not.toMatch(/(^|\s)--[a-z]/);
  return message!;
}

/** The CLI's refusal: its `error:` line. */
function cliError(args: string[]): string {
  const result = runCli(args);
  expect(result.code).not.toBe(0);
  const line = result.stderr.split('\n').find((l) => l.includes(': error: '));
  expect(line, result.stderr).toBeDefined();
  return line!.replace(/^.*?: error: /, '');
}

function dataFile(name: string, content: string | Buffer): string {
  const file = path.join(root, name);
  fs.writeFileSync(file, content);
  return file;
}

describe('bad input through the GUI', () => {
  it('a file whose columns map to no format: what it has, what would do, and to map them', async () => {
    const file = dataFile('pairs.csv', 'alpha,beta\r\nx,y\nz,w\r\n');
    const gui = await guiError('datasets.inspect', { file, modelDir: DEMO_MODEL, data: DATA });
    expect(gui).toBe(
      `${file}: cannot tell the data format: the rows have the fields "alpha", "beta"; expected "input_ids", "messages", "conversations", "instruction" + "output", "prompt" + "completion", "text"; choose the format and map its fields to your columns`,
    );
    expect(cliError(['data', 'inspect', file, '--model', DEMO_MODEL])).toContain(gui);
  });

  it('a binary file: an image or a program named as data is refused as binary, not as bad text', async () => {
    const png = dataFile('photo.jsonl', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
    const gui = await guiError('datasets.inspect', { file: png, modelDir: DEMO_MODEL, data: DATA });
    expect(gui).toBe(
      `${png}: binary data, not text (a zero byte at offset 8); choose a JSONL, JSON, CSV/TSV, Parquet or text file`,
    );
    expect(cliError(['data', 'inspect', png, '--model', DEMO_MODEL])).toBe(gui);
    const program = dataFile('program.csv', fs.readFileSync(process.execPath).subarray(0, 4096));
    expect(await guiError('datasets.inspect', { file: program, modelDir: DEMO_MODEL, data: DATA })).toMatch(
      /^.*program\.csv: binary data, not text \(a zero byte at offset \d+\)/,
    );
  });

  it('an adapter folder chosen as the model: says it is an adapter and names its base', async () => {
    const inspected = (await api.call('models.inspect', { source: ADAPTER })) as { supported: boolean; reason: string };
    const expected = `${ADAPTER}: an adapter (adapter_config.json), not a model; choose the model it was trained on (its base is "fixtures/llama_gqa/model"), and this folder as the adapter`;
    expect(inspected).toMatchObject({ supported: false, reason: expected });
    const file = dataFile('ok.jsonl', '{"prompt": "a", "completion": "b"}\n');
    expect(await guiError('datasets.inspect', { file, modelDir: ADAPTER, data: DATA })).toBe(expected);
    expect(cliError(['data', 'inspect', file, '--model', ADAPTER])).toBe(expected);
  });
});
