// The peft-studio command line as users run it: a real process on the built CLI, real model folders and data files.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { peftKey } from '../../main/adapter/loraAdapter.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { readSafetensorsHeader } from '../../main/model/safetensors.js';
import { lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

const ALL = 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj';

// Asynchronous: a test worker blocked for long misses Vitest's RPC deadline.
const cli = (...args: string[]) => runCliAsync(args);

/** A bad-input failure: non-zero exit, one line on stderr that says `fragment`, no stack trace. */
function expectOneLineError(result: ReturnType<typeof cli>, fragment: string | RegExp) {
  expect(result.code, result.stderr).not.toBe(0);
  const lines = result.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('Warning: max')); // Dawn's adapter notes
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(fragment);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

let work: string;
let model: string;
let textData: string;
let tokenData: string;

beforeAll(async () => {
  work = tempDir('cli');
  model = path.join(work, 'model');
  const created = await cli(
    'create-tiny-model',
    model,
    '--arch',
    'llama',
    '--layers',
    '2',
    '--hidden',
    '64',
    '--heads',
    '4',
    '--kv-heads',
    '2',
    '--intermediate',
    '128',
    '--json',
  );
  expect(created.code, created.stderr).toBe(0);
  textData = path.join(work, 'text.jsonl');
  const sentences = [
    'The cat sat on the mat.',
    'A dog ran in the park.',
    'Birds sing in the morning.',
    'The sun is warm today.',
  ];
  fs.writeFileSync(
    textData,
    Array.from({ length: 16 }, (_, i) => JSON.stringify({ text: sentences[i % 4] })).join('\n') + '\n',
  );
  tokenData = path.join(work, 'tokens.jsonl');
  fs.writeFileSync(
    tokenData,
    [
      JSON.stringify({ input_ids: [5, 6, 7, 8, 9, 10], labels: [-100, -100, 7, 8, 9, 10] }),
      JSON.stringify({ input_ids: [11, 12, 13, 14] }),
    ].join('\n'),
  );
});

describe('help', () => {
  it('is available for the program and every subcommand', async () => {
    const top = await cli('--help');
    expect(top.code).toBe(0);
    for (const command of ['create-tiny-model', 'train', 'eval', 'bench']) {
      expect(top.stdout).toContain(command);
      const sub = await cli(command, '--help');
      expect(sub.code).toBe(0);
      expect(sub.stdout).toContain(`usage: peft-studio ${command}`);
    }
  });
});

describe('create-tiny-model', () => {
  it('writes a Hugging Face folder the loader accepts, with the requested shape', async () => {
    const dir = path.join(work, 'qwen3');
    const result = await cli(
      'create-tiny-model',
      dir,
      '--arch',
      'qwen3',
      '--layers',
      '3',
      '--hidden',
      '48',
      '--heads',
      '4',
      '--kv-heads',
      '2',
      '--dtype',
      'bf16',
      '--tie',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    expect(lastJson(result.stdout).modelDir).toBe(dir);
    const folder = openModelFolder(dir);
    expect(folder.spec).toMatchObject({
      modelType: 'qwen3',
      numLayers: 3,
      hiddenSize: 48,
      numHeads: 4,
      numKvHeads: 2,
      tieWordEmbeddings: true,
      qkNorm: true,
    });
    expect(folder.tensors.get('model.embed_tokens.weight')!.dtype).toBe('BF16');
    for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
      expect(fs.existsSync(path.join(dir, file))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')).chat_template).toContain(
      'im_start',
    );
  });
});

describe('train, eval and continue', () => {
  let adapter: string;

  it('trains a PEFT adapter from text data, and the loss goes down', async () => {
    adapter = path.join(work, 'adapter');
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      textData,
      '--out',
      adapter,
      '--steps',
      '12',
      '--lr',
      '1e-2',
      '--rank',
      '4',
      '--alpha',
      '8',
      '--batch-size',
      '4',
      '--targets',
      ALL,
      '--device',
      'cpu',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const summary = lastJson(result.stdout);
    expect(summary).toMatchObject({ steps: 12, adapterDir: adapter, device: 'cpu' });
    expect(summary.tokensPerSecond).toBeGreaterThan(0);
    const config = JSON.parse(fs.readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 8,
      target_modules: ALL.split(','),
      use_rslora: false,
      bias: 'none',
    });
    const tensors = readSafetensorsHeader(path.join(adapter, 'adapter_model.safetensors'));
    expect(tensors.get(peftKey(1, 'q_proj', 'A'))!.shape).toEqual([4, 64]);
    expect(tensors.get(peftKey(1, 'k_proj', 'B'))!.shape).toEqual([32, 4]);
    expect(tensors.get(peftKey(0, 'down_proj', 'A'))!.shape).toEqual([4, 128]);
    expect(tensors.size).toBe(2 * 7 * 2);

    const before = lastJson(
      (await cli('eval', '--model', model, '--data', textData, '--device', 'cpu', '--json')).stdout,
    );
    const after = lastJson(
      (await cli('eval', '--model', model, '--adapter', adapter, '--data', textData, '--device', 'cpu', '--json'))
        .stdout,
    );
    expect(after.tokens).toBe(before.tokens);
    expect(after.loss).toBeLessThan(before.loss - 0.2);
    expect(after.perplexity).toBeCloseTo(Math.exp(after.loss), 6);
    expect(summary.finalLoss).toBeLessThan(before.loss);
  });

  it('continues from an existing adapter, whose settings win over the flags', async () => {
    const next = path.join(work, 'adapter-continued');
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      textData,
      '--out',
      next,
      '--steps',
      '2',
      '--rank',
      '16',
      '--init-adapter',
      adapter,
      '--device',
      'cpu',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(next, 'adapter_config.json'), 'utf8')).r).toBe(4);
    const start = lastJson(
      (await cli('eval', '--model', model, '--adapter', adapter, '--data', textData, '--device', 'cpu', '--json'))
        .stdout,
    );
    expect(lastJson(result.stdout).finalLoss).toBeLessThan(start.loss + 0.05);
  });

  it('trains on pre-tokenized data with MLP targets, rsLoRA and gradient accumulation', async () => {
    const out = path.join(work, 'adapter-mlp');
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      tokenData,
      '--out',
      out,
      '--steps',
      '2',
      '--grad-accum',
      '2',
      '--batch-size',
      '1',
      '--targets',
      'gate_proj,up_proj,down_proj',
      '--rslora',
      '--optimizer',
      'sgd',
      '--scheduler',
      'cosine',
      '--warmup-steps',
      '1',
      '--gradient-checkpointing',
      'off',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(config.target_modules).toEqual(['gate_proj', 'up_proj', 'down_proj']);
    expect(config.use_rslora).toBe(true);
    expect(
      readSafetensorsHeader(path.join(out, 'adapter_model.safetensors')).get(peftKey(0, 'down_proj', 'A'))!.shape,
    ).toEqual([16, 128]);
  });

  it('is seeded and deterministic on CPU: the same seed gives the same adapter bytes, another seed does not', async () => {
    const run = async (out: string, seed: string) => {
      const result = await cli(
        'train',
        '--model',
        model,
        '--data',
        textData,
        '--out',
        path.join(work, out),
        '--steps',
        '3',
        '--seed',
        seed,
        '--device',
        'auto',
      );
      expect(result.code, result.stderr).toBe(0);
      // --device auto says what it chose.
      expect(result.stderr).toMatch(/^device: (cpu|webgpu|cuda|dml) \(.+\), \d+ CPU threads$/m);
      return fs.readFileSync(path.join(work, out, 'adapter_model.safetensors'));
    };
    const first = await run('seeded-1', '7');
    expect((await run('seeded-2', '7')).equals(first)).toBe(true);
    expect((await run('seeded-3', '8')).equals(first)).toBe(false);
  });

  it('validates during training, with the same loss eval reports for the saved adapter', async () => {
    const out = path.join(work, 'adapter-validated');
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      textData,
      '--out',
      out,
      '--steps',
      '4',
      '--eval-data',
      tokenData,
      '--eval-every',
      '2',
      '--lr',
      '1e-2',
      '--device',
      'cpu',
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr.match(/^validation after step (2|4): loss \d/gm)).toHaveLength(2);
    const json = lastJson(
      (
        await cli(
          'train',
          '--model',
          model,
          '--data',
          textData,
          '--out',
          out,
          '--overwrite',
          '--steps',
          '4',
          '--eval-data',
          tokenData,
          '--lr',
          '1e-2',
          '--device',
          'cpu',
          '--json',
        )
      ).stdout,
    );
    const evaluated = lastJson(
      (await cli('eval', '--model', model, '--adapter', out, '--data', tokenData, '--device', 'cpu', '--json')).stdout,
    );
    expect(json.evalLoss).toBeCloseTo(evaluated.loss, 5);
    const split = lastJson(
      (
        await cli(
          'train',
          '--model',
          model,
          '--data',
          textData,
          '--out',
          out,
          '--overwrite',
          '--steps',
          '2',
          '--eval-split',
          '0.25',
          '--json',
        )
      ).stdout,
    );
    expect(Number.isFinite(split.evalLoss)).toBe(true);
  });

  it('benchmarks a step and reports tokens/s, seconds per step and peak memory', async () => {
    const result = await cli(
      'bench',
      '--model',
      model,
      '--seq-len',
      '16',
      '--batch-size',
      '2',
      '--steps',
      '2',
      '--device',
      'cpu',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const bench = lastJson(result.stdout);
    expect(bench.tokensPerSecond).toBeGreaterThan(0);
    expect(bench.secondsPerStep).toBeGreaterThan(0);
    expect(bench.peakRssBytes).toBeGreaterThan(10 * 2 ** 20);
  });
});

describe('bad input', () => {
  it('a missing model folder', async () => {
    expectOneLineError(
      await cli('train', '--model', path.join(work, 'nowhere'), '--data', textData, '--steps', '1'),
      /nowhere: model folder not found/,
    );
  });

  it('a model file that is not safetensors', async () => {
    const dir = path.join(work, 'not-safetensors');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(model, 'config.json'), path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'model.safetensors'), 'this is a text file, not tensors\n');
    expectOneLineError(
      await cli('train', '--model', dir, '--data', textData, '--steps', '1'),
      /model\.safetensors: not a safetensors file/,
    );
  });

  it('a truncated safetensors file', async () => {
    const dir = path.join(work, 'truncated');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(model, 'config.json'), path.join(dir, 'config.json'));
    const bytes = fs.readFileSync(path.join(model, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 1000));
    expectOneLineError(await cli('train', '--model', dir, '--data', textData, '--steps', '1'), /truncated/);
  });

  it('a config with an unknown model_type', async () => {
    const dir = path.join(work, 'unknown-arch');
    fs.mkdirSync(dir);
    const config = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'gpt_neox' }));
    fs.copyFileSync(path.join(model, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    expectOneLineError(
      await cli('train', '--model', dir, '--data', textData, '--steps', '1'),
      /config\.json: field "model_type" is "gpt_neox"/,
    );
  });

  it('an empty dataset', async () => {
    const empty = path.join(work, 'empty.jsonl');
    fs.writeFileSync(empty, '\n\n');
    expectOneLineError(await cli('train', '--model', model, '--data', empty, '--steps', '1'), /empty\.jsonl/);
  });

  it('out-of-vocabulary token ids', async () => {
    const bad = path.join(work, 'oov.jsonl');
    fs.writeFileSync(
      bad,
      `${JSON.stringify({ input_ids: [1, 2, 3] })}\n${JSON.stringify({ input_ids: [1, 99999, 3] })}\n`,
    );
    expectOneLineError(await cli('train', '--model', model, '--data', bad, '--steps', '1'), /oov\.jsonl:2: .*99999/);
  });

  it('a GPU device that cannot start', async () => {
    // No Vulkan driver to be found: Dawn gets no adapter. Its own warnings come first; ours is the last line.
    const result = await runCliAsync(
      ['train', '--model', model, '--data', textData, '--steps', '1', '--device', 'webgpu'],
      {
        env: {
          ...process.env,
          VK_ICD_FILENAMES: path.join(work, 'no-driver.json'),
          VK_DRIVER_FILES: path.join(work, 'no-driver.json'),
        },
      },
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toMatch(
      /^peft-studio train: error: --device: webgpu could not start \(.*adapter.*\); choose cpu instead$/,
    );
  });

  it('a bad flag value', async () => {
    const result = await cli('train', '--model', model, '--data', textData, '--rank', 'many');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--rank many: must be a number');
  });

  it('writes no adapter when training fails', async () => {
    const out = path.join(work, 'never-written');
    await cli('train', '--model', model, '--data', path.join(work, 'missing.jsonl'), '--out', out, '--steps', '1');
    expect(fs.existsSync(out)).toBe(false);
  });
});
