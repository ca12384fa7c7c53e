// The thread count reaches every kind of ONNX Runtime session the engine opens: training layers and the head, the
// generation decoder, and the sessions behind `bench`, `generate` and the studio's playground. Each is read back from
// the options the session was created with, and ORT is shown to honour them by the OS threads a session starts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceModel } from '../../main/engine/runtime/inferenceModel.js';
import { sessionOptions, sessionThreads } from '../../main/engine/runtime/runtime.js';
import { engineThreads, generationThreads } from '../../main/engine/runtime/threads.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { SettingsFile } from '../../main/studio/services/settingsFile.js';
import { memoryTokenVault } from '../../main/studio/services/tokenVault.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { lastJson, runCliAsync } from '../support/cli.js';
import { openTrainable, tempDir } from '../support/engine.js';

const LORA = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false };
let work: string;
let modelDir: string;

beforeAll(() => {
  work = tempDir('threads');
  modelDir = path.join(work, 'model');
  createTinyModel(modelDir, { arch: 'qwen3', layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 300, seed: 3 });
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Threads of this process, as the kernel lists them. */
const osThreads = () => fs.readdirSync('/proc/self/task').length;

describe('engine threads', () => {
  it('defaults to the cores this process may use, and honours a chosen count', () => {
    expect(engineThreads(null)).toBeGreaterThanOrEqual(1);
    expect(engineThreads(null)).toBeLessThanOrEqual(os.availableParallelism());
    expect(engineThreads(5)).toBe(5);
  });

  it('gives every training session (head and each layer) the chosen count, one inter-op thread, and ORT starts them', async () => {
    const before = osThreads();
    const model = await openTrainable(openModelFolder(modelDir), LORA, { threads: 3 });
    try {
      expect(model.sessions).toHaveLength(3); // the head and 2 layers
      for (const session of model.sessions) {
        expect(sessionOptions(session)).toMatchObject({ intraOpNumThreads: 3, interOpNumThreads: 1 });
        expect(sessionThreads(session)).toBe(3);
      }
      // ORT's per-session pool runs on the calling thread plus threads - 1 of its own: 2 more per session.
      expect(osThreads() - before).toBeGreaterThanOrEqual(3 * 2);
    } finally {
      await model.close();
    }
  });

  it('gives the generation session the chosen count and spinning choice', async () => {
    const folder = openModelFolder(modelDir);
    const before = osThreads();
    const model = await InferenceModel.load(folder, 'cpu', null, { threads: 4, spinning: false });
    try {
      expect(sessionThreads(model.session)).toBe(4);
      expect(sessionOptions(model.session)?.extra).toMatchObject({ session: { 'intra_op.allow_spinning': '0' } });
      expect(osThreads() - before).toBeGreaterThanOrEqual(3);
    } finally {
      await model.close();
    }
  });

  it('leaves generation beside training what the training pool leaves, without spinning', () => {
    const cores = engineThreads(null);
    expect(generationThreads(null, 0)).toEqual({ threads: cores, spinning: true });
    expect(generationThreads(3, 0)).toEqual({ threads: 3, spinning: true });
    expect(generationThreads(null, cores)).toEqual({ threads: 1, spinning: false });
    expect(generationThreads(null, cores + 8)).toEqual({ threads: 1, spinning: false });
  });

  it('reaches the engine process of `bench` and the session of `generate` from --threads', async () => {
    const bench = await runCliAsync(
      ['bench', '--model', modelDir, '--seq-len', '8', '--batch-size', '1', '--steps', '1', '--rank', '2'].concat([
        '--device',
        'cpu',
        '--threads',
        '3',
        '--json',
      ]),
    );
    expect(bench.code, bench.stderr).toBe(0);
    expect(lastJson(bench.stdout).threads).toBe(3);

    const generate = await runCliAsync(
      ['generate', '--model', modelDir, '--prompt-ids', '1,2,3', '--max-new-tokens', '2', '--ignore-eos'].concat([
        '--device',
        'cpu',
        '--threads',
        '2',
        '--json',
      ]),
    );
    expect(generate.code, generate.stderr).toBe(0);
    expect(lastJson(generate.stdout)).toMatchObject({ threads: 2, newTokens: 2 });

    const refused = await runCliAsync(['bench', '--model', modelDir, '--threads', '0']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.trim()).toMatch(/^.*--threads 0: must be at least 1$/m);
  });
  it('refuses a settings file that asks for an absurd thread count, naming the file and the field', () => {
    const home = path.join(work, 'home');
    fs.mkdirSync(home, { recursive: true });
    const settings = new SettingsFile(home, memoryTokenVault(), { env: {}, platform: 'linux' });
    expect(settings.set({ threads: 2 })).toMatchObject({ threads: 2 });
    fs.writeFileSync(path.join(home, 'settings.json'), JSON.stringify({ threads: 1_000_000 }));
    expect(() => settings.get()).toThrow(/settings\.json: unreadable settings \("threads" must be at most 256\)/);
  });
});
