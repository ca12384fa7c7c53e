// Merging a LoRA adapter: the merged model evaluates as the base model with the adapter, in fp32 and bf16, sharded.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

// Asynchronous: a test worker blocked for long misses Vitest's RPC deadline.
const cli = (...args: string[]) => runCliAsync(args);
const ALL = 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj';

let work: string;
let model: string;
let adapter: string;
let data: string;
let withAdapter: number;

const evalLoss = async (...extra: string[]) => {
  const result = await cli('eval', '--data', data, '--device', 'cpu', '--json', ...extra);
  expect(result.code, result.stderr).toBe(0);
  return lastJson(result.stdout).loss as number;
};

beforeAll(async () => {
  work = tempDir('merge');
  model = path.join(work, 'model');
  expect(
    (
      await cli(
        'create-tiny-model',
        model,
        '--arch',
        'qwen2',
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
      )
    ).code,
  ).toBe(0);
  data = path.join(work, 'data.jsonl');
  fs.writeFileSync(
    data,
    ['The cat sat on the mat.', 'A dog ran in the park.', 'Birds sing at dawn.']
      .map((text) => JSON.stringify({ text }))
      .join('\n'),
  );
  adapter = path.join(work, 'adapter');
  expect(
    (
      await cli(
        'train',
        '--model',
        model,
        '--data',
        data,
        '--out',
        adapter,
        '--targets',
        ALL,
        '--rslora',
        '--steps',
        '6',
        '--lr',
        '2e-2',
        '--device',
        'cpu',
      )
    ).code,
  ).toBe(0);
  withAdapter = await evalLoss('--model', model, '--adapter', adapter);
});

describe('merge', () => {
  it('writes an fp32 model whose loss equals the base with the adapter, unmerged', async () => {
    const out = path.join(work, 'merged-f32');
    const result = await cli('merge', '--model', model, '--adapter', adapter, '--out', out, '--dtype', 'f32', '--json');
    expect(result.code, result.stderr).toBe(0);
    expect(lastJson(result.stdout)).toMatchObject({ shards: 1, mergedWeights: 2 * 7 });
    for (const file of [
      'config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'generation_config.json',
    ])
      expect(fs.existsSync(path.join(out, file)), file).toBe(true);
    const merged = await evalLoss('--model', out);
    expect(Math.abs(merged - withAdapter) / withAdapter).toBeLessThan(1e-5);
    // the adapter did change the model
    expect(Math.abs((await evalLoss('--model', model)) - withAdapter)).toBeGreaterThan(1e-3);
  });

  it('writes bf16 within bf16 tolerance, and shards with an index when asked', async () => {
    const out = path.join(work, 'merged-bf16');
    const result = await cli(
      'merge',
      '--model',
      model,
      '--adapter',
      adapter,
      '--out',
      out,
      '--dtype',
      'bf16',
      '--max-shard-size',
      '100KB',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const { shards } = lastJson(result.stdout);
    expect(shards).toBeGreaterThan(1);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(new Set(Object.values(index.weight_map)).size).toBe(shards);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    expect(openModelFolder(out).tensors.get('model.layers.0.self_attn.q_proj.weight')!.dtype).toBe('BF16');
    expect(Math.abs((await evalLoss('--model', out)) - withAdapter) / withAdapter).toBeLessThan(1e-2);
  });

  it('refuses a prompt-tuning adapter and a non-empty output folder', async () => {
    const soft = path.join(work, 'soft');
    expect(
      (
        await cli(
          'train',
          '--model',
          model,
          '--data',
          data,
          '--out',
          soft,
          '--method',
          'prompt-tuning',
          '--num-virtual-tokens',
          '2',
          '--steps',
          '1',
        )
      ).code,
    ).toBe(0);
    const refused = await cli('merge', '--model', model, '--adapter', soft, '--out', path.join(work, 'x'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/prompt-tuning adapter has no weights to merge/);
    const busy = await cli('merge', '--model', model, '--adapter', adapter, '--out', model);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/exists and is not empty/);
  });
});
