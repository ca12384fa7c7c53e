// config.json to ModelSpec: sizes are checked, each against a limit above every real model, before any is used; LoRA
// target names are checked wherever they are looked up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { UserError } from '../../shared/errors.js';
import {
  checkedTargets,
  CONFIG_LIMITS,
  parseModelConfig,
  targetShape,
  type TargetModule,
} from '../../main/model/architecture.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { readSafetensorsHeader } from '../../main/model/safetensors.js';
import { createTinyModel } from '../../main/model/tinyModel.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-architecture-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** SmolLM2-1.7B's config.json, the fields we read. */
const SMOLLM2: Record<string, unknown> = {
  model_type: 'llama',
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 24,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 49152,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 130000,
};

function refusal(config: Record<string, unknown>): string {
  try {
    parseModelConfig(config, 'config.json');
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('parseModelConfig', () => {
  test('real models pass, at the limits too', () => {
    expect(parseModelConfig(SMOLLM2, 'config.json')).toMatchObject({ numLayers: 24, headDim: 64 });
    // Qwen2.5-7B-Instruct-1M's context, Gemma's 256k vocabulary, Qwen3's attention wider than the hidden size.
    expect(
      parseModelConfig(
        { ...SMOLLM2, max_position_embeddings: 1_010_000, vocab_size: 256_000, head_dim: 128 },
        'config.json',
      ),
    ).toMatchObject({ headDim: 128 });
    const limits = {
      ...SMOLLM2,
      ...CONFIG_LIMITS,
      num_key_value_heads: 1024,
      num_attention_heads: 1024,
      head_dim: 512,
    };
    expect(parseModelConfig(limits, 'config.json')).toMatchObject({ numLayers: 1024, vocabSize: 1_048_576 });
  });

  test.each(Object.entries(CONFIG_LIMITS))(
    '%s past its limit %i is refused, naming field, value and limit',
    (name, limit) => {
      const config = { ...SMOLLM2, head_dim: 64, [name]: limit + 1 };
      if (name === 'num_attention_heads') config.num_key_value_heads = limit + 1;
      expect(refusal(config)).toBe(
        `config.json: field "${name}" is ${limit + 1}, more than the ${limit} any supported model has`,
      );
    },
  );

  test.each<[string, unknown, string]>([
    ['num_hidden_layers', 1e6, 'is 1000000, more than the 1024'],
    ['num_hidden_layers', 2.5, 'must be a positive integer, found 2.5'],
    ['hidden_size', -2048, 'must be a positive integer, found -2048'],
    ['hidden_size', 0, 'must be a positive integer, found 0'],
    ['vocab_size', 'NaN', 'must be a number, found "NaN"'],
    ['vocab_size', null, 'must be a number, found null'],
    ['intermediate_size', 'x'.repeat(10_000), `must be a number, found "${'x'.repeat(59)}…`],
    ['rms_norm_eps', -1, 'must be positive, found -1'],
    ['rope_theta', 0, 'must be positive, found 0'],
  ])('%s: %s', (name, value, reason) => {
    expect(refusal({ ...SMOLLM2, [name]: value })).toContain(`config.json: field "${name}" ${reason}`);
  });

  test('head width: even, and within eight times the hidden size', () => {
    expect(refusal({ ...SMOLLM2, head_dim: 63 })).toBe('config.json: head dimension 63 must be an even integer');
    expect(refusal({ ...SMOLLM2, head_dim: 1024 })).toBe(
      'config.json: "num_attention_heads" 32 x "head_dim" 1024 is more than 8 times "hidden_size" 2048',
    );
  });

  test('a config that is no object, inherited fields, and rope scaling that is no object', () => {
    for (const config of [null, 5, 'llama', []])
      expect(refusal(config as unknown as Record<string, unknown>)).toMatch(
        /^config\.json: expected a JSON object, found /,
      );
    const own = Object.fromEntries(Object.entries(SMOLLM2).filter(([name]) => name !== 'num_hidden_layers'));
    const inherited = Object.assign(Object.create({ num_hidden_layers: 2 }) as Record<string, unknown>, own);
    expect(refusal(inherited)).toBe('config.json: field "num_hidden_layers" must be a number, found undefined');
    expect(refusal({ ...SMOLLM2, rope_scaling: 'llama3' })).toBe(
      'config.json: field "rope_scaling" must be an object or null, found "llama3"',
    );
    expect(
      refusal({
        ...SMOLLM2,
        rope_scaling: {
          rope_type: 'llama3',
          factor: -8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 8192,
        },
      }),
    ).toBe('config.json rope_scaling: field "factor" must be positive, found -8');
  });
});

describe('LoRA targets', () => {
  test('checkedTargets: known names in a fixed order, each once; anything else named', () => {
    expect(checkedTargets(['v_proj', 'q_proj', 'v_proj'], 'LoRA targets')).toEqual(['q_proj', 'v_proj']);
    for (const name of ['foo', '__proto__', 'constructor', 'toString', '']) {
      expect(() => checkedTargets(['q_proj', name], 'LoRA targets')).toThrow(
        new UserError(
          `LoRA targets: unknown LoRA target ${JSON.stringify(name)}; allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`,
        ),
      );
    }
  });

  test('targetShape never answers undefined for a name that slipped through', () => {
    const spec = parseModelConfig(SMOLLM2, 'config.json');
    expect(targetShape(spec, 'down_proj')).toEqual({ out: 2048, in: 8192 });
    expect(() => targetShape(spec, 'toString' as TargetModule)).toThrow(UserError);
  });
});

describe('model folders that lie', () => {
  let count = 0;
  const tiny = () => {
    const dir = path.join(root, `model-${count++}`);
    createTinyModel(dir);
    return dir;
  };

  test('a shard named outside the folder, or not by name, is refused without being read', () => {
    const dir = tiny();
    fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'shard.safetensors'));
    const index = path.join(dir, 'model.safetensors.index.json');
    for (const shard of ['../elsewhere.safetensors', '/etc/passwd', 5]) {
      fs.writeFileSync(index, JSON.stringify({ weight_map: { 'model.norm.weight': shard } }));
      expect(() => openModelFolder(dir)).toThrow(
        new UserError(`${index}: "weight_map" names ${JSON.stringify(shard)}, not a file of the model folder`),
      );
    }
    fs.writeFileSync(index, JSON.stringify({ weight_map: { 'model.norm.weight': 'shard.safetensors' } }));
    expect(openModelFolder(dir).tensors.size).toBeGreaterThan(1);
  });

  test('a safetensors header that is no object, or names a dtype inherited from Object', () => {
    const file = path.join(root, 'bad.safetensors');
    const write = (header: string) => {
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(header.length));
      fs.writeFileSync(file, Buffer.concat([length, Buffer.from(header)]));
    };
    write('null');
    expect(() => readSafetensorsHeader(file)).toThrow(
      new UserError(`${file}: not a safetensors file (header is not a JSON object)`),
    );
    write(JSON.stringify({ w: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }));
    expect(() => readSafetensorsHeader(file)).toThrow(
      new UserError(`${file}: tensor "w" has unsupported dtype toString`),
    );
    write(JSON.stringify({ w: { dtype: 'F32', shape: [-1, -4], data_offsets: [0, 16] } }));
    expect(() => readSafetensorsHeader(file)).toThrow(
      new UserError(`${file}: tensor "w" has a malformed header entry`),
    );
  });
});
