import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { expectedShapes } from '../../main/model/architecture.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { floatToBf16Bits, readTensorF32 } from '../../main/model/safetensors.js';
import { createTinyModel, DEFAULT_TINY_MODEL } from '../../main/model/tinyModel.js';
import { MIN_TINY_VOCAB } from '../../main/model/tinyTokenizer.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-tiny-model-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let folders = 0;
const freshDir = () => path.join(root, `model-${folders++}`);

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function weights(dir: string): Map<string, Float32Array> {
  const folder = openModelFolder(dir);
  return new Map([...folder.tensors].map(([name, entry]) => [name, readTensorF32(entry)]));
}

describe('createTinyModel', () => {
  test('writes a Hugging Face folder that openModelFolder reads back with the same spec', () => {
    const dir = freshDir();
    const spec = createTinyModel(dir);
    expect(fs.readdirSync(dir).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);

    const folder = openModelFolder(dir);
    expect(folder.spec).toEqual(spec);
    expect(spec).toMatchObject({
      modelType: 'llama',
      numLayers: DEFAULT_TINY_MODEL.layers,
      hiddenSize: DEFAULT_TINY_MODEL.hidden,
      numHeads: DEFAULT_TINY_MODEL.heads,
      numKvHeads: DEFAULT_TINY_MODEL.kvHeads,
      headDim: DEFAULT_TINY_MODEL.hidden / DEFAULT_TINY_MODEL.heads,
      intermediateSize: DEFAULT_TINY_MODEL.intermediate,
      vocabSize: DEFAULT_TINY_MODEL.vocab,
      rmsNormEps: 1e-5,
      tieWordEmbeddings: false,
      qkvBias: false,
      outputBias: false,
      qkNorm: false,
    });
    const shapes = expectedShapes(spec);
    expect([...folder.tensors.keys()].sort()).toEqual([...shapes.keys()].sort());
    for (const [name, entry] of folder.tensors) {
      expect(entry.shape, name).toEqual(shapes.get(name));
      expect(entry.dtype, name).toBe('F32');
    }

    const config = readJson(path.join(dir, 'config.json'));
    expect(config).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      torch_dtype: 'float32',
      bos_token_id: 0,
      eos_token_id: 0,
      pad_token_id: 0,
      attention_bias: false,
    });
    expect(readJson(path.join(dir, 'tokenizer_config.json'))).toMatchObject({
      eos_token: '<|endoftext|>',
      pad_token: '<|endoftext|>',
      model_max_length: 2048,
    });
    expect(fs.readdirSync(root).filter((name) => name.includes('.tmp-'))).toEqual([]);
  });

  test('initialises norms to 1 and matrices as N(0, 0.02)', () => {
    const dir = freshDir();
    createTinyModel(dir);
    for (const [name, values] of weights(dir)) {
      if (name.endsWith('norm.weight')) {
        expect(
          values.every((v) => v === 1),
          name,
        ).toBe(true);
        continue;
      }
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
      // Each matrix has at least 4096 draws: the sample std of N(0, 0.02) is within 5% with overwhelming odds.
      expect(Math.abs(mean), name).toBeLessThan(0.002);
      expect(Math.abs(std - 0.02) / 0.02, `${name} std ${std}`).toBeLessThan(0.05);
    }
  });

  test('qwen2 has random q/k/v biases, qwen3 per-head q/k norms, tie drops lm_head', () => {
    const qwen2 = freshDir();
    createTinyModel(qwen2, { arch: 'qwen2' });
    expect(openModelFolder(qwen2).spec).toMatchObject({
      modelType: 'qwen2',
      qkvBias: true,
      qkNorm: false,
      rmsNormEps: 1e-6,
    });
    const bias = weights(qwen2).get('model.layers.0.self_attn.k_proj.bias')!;
    expect(bias.length).toBe(DEFAULT_TINY_MODEL.kvHeads * (DEFAULT_TINY_MODEL.hidden / DEFAULT_TINY_MODEL.heads));
    expect(bias.some((v) => v !== 0)).toBe(true);
    const qwen2Config = readJson(path.join(qwen2, 'config.json'));
    expect(qwen2Config.architectures).toEqual(['Qwen2ForCausalLM']);
    expect(qwen2Config).not.toHaveProperty('attention_bias');

    const qwen3 = freshDir();
    createTinyModel(qwen3, { arch: 'qwen3', tie: true });
    const folder = openModelFolder(qwen3);
    expect(folder.spec).toMatchObject({ modelType: 'qwen3', qkvBias: false, qkNorm: true, tieWordEmbeddings: true });
    expect(folder.tensors.has('lm_head.weight')).toBe(false);
    expect(folder.tensors.get('model.layers.1.self_attn.q_norm.weight')!.shape).toEqual([
      DEFAULT_TINY_MODEL.hidden / DEFAULT_TINY_MODEL.heads,
    ]);
    expect(readJson(path.join(qwen3, 'config.json')).architectures).toEqual(['Qwen3ForCausalLM']);
  });

  test('bf16 holds the f32 weights of the same seed rounded to nearest even (relative error <= 2^-8)', () => {
    const f32Dir = freshDir();
    const bf16Dir = freshDir();
    createTinyModel(f32Dir, { seed: 7 });
    createTinyModel(bf16Dir, { seed: 7, dtype: 'bf16' });
    expect(readJson(path.join(bf16Dir, 'config.json')).torch_dtype).toBe('bfloat16');
    const exact = weights(f32Dir);
    let worst = 0;
    for (const [name, entry] of openModelFolder(bf16Dir).tensors) {
      expect(entry.dtype).toBe('BF16');
      const rounded = readTensorF32(entry);
      const reference = exact.get(name)!;
      const expectedBits = floatToBf16Bits(reference);
      for (let i = 0; i < reference.length; i++) {
        if (reference[i] !== 0) worst = Math.max(worst, Math.abs(rounded[i] - reference[i]) / Math.abs(reference[i]));
        if (new Uint32Array(rounded.buffer, 4 * i, 1)[0] >>> 16 !== expectedBits[i])
          throw new Error(`${name}[${i}]: ${rounded[i]} is not bf16(${reference[i]})`);
      }
    }
    expect(worst, `worst relative error ${worst}`).toBeLessThanOrEqual(2 ** -8);
  });

  test('is deterministic: same seed, same bytes; another seed, other weights and the same tokenizer', () => {
    const [a, b, c] = [freshDir(), freshDir(), freshDir()];
    createTinyModel(a, { seed: 3 });
    createTinyModel(b, { seed: 3 });
    createTinyModel(c, { seed: 4 });
    for (const file of fs.readdirSync(a))
      expect(fs.readFileSync(path.join(b, file)).equals(fs.readFileSync(path.join(a, file))), file).toBe(true);
    expect(
      fs.readFileSync(path.join(c, 'model.safetensors')).equals(fs.readFileSync(path.join(a, 'model.safetensors'))),
    ).toBe(false);
    expect(fs.readFileSync(path.join(c, 'tokenizer.json'), 'utf8')).toBe(
      fs.readFileSync(path.join(a, 'tokenizer.json'), 'utf8'),
    );
  });

  test('accepts an empty existing folder, refuses a non-empty one', () => {
    const empty = freshDir();
    fs.mkdirSync(empty);
    createTinyModel(empty);
    expect(() => createTinyModel(empty)).toThrow(UserError);
    expect(() => createTinyModel(empty)).toThrow(/not an empty folder/);
  });

  test('rejects impossible shapes and a vocabulary too small for byte-level BPE', () => {
    expect(() => createTinyModel(freshDir(), { vocab: 100 })).toThrow(new RegExp(`at least ${MIN_TINY_VOCAB}`));
    expect(() => createTinyModel(freshDir(), { hidden: 60, heads: 8 })).toThrow(UserError);
    expect(() => createTinyModel(freshDir(), { heads: 4, kvHeads: 3 })).toThrow(/multiple of kvHeads/);
    expect(() => createTinyModel(freshDir(), { layers: 0 })).toThrow(/layers must be a positive integer/);
  });
});

describe('tiny tokenizer', () => {
  const dir = freshDir();
  createTinyModel(dir);
  const tokenizer = loadTokenizer(dir);

  test('encodes and decodes a sentence exactly, with every id inside the vocabulary', () => {
    const sentence = 'Thank you for your message. We will get back to you as soon as possible.';
    const ids = tokenizer.encode(sentence);
    expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < DEFAULT_TINY_MODEL.vocab)).toBe(true);
    // Learned merges make common words single tokens: far fewer tokens than bytes.
    expect(ids.length).toBeLessThan(sentence.length / 2);
    expect(tokenizer.decode(ids)).toBe(sentence);
  });

  test('any text round-trips through byte tokens, including characters it never saw', () => {
    const text = 'Café ✓ 😀\n\ttabs  and   spaces\r\n';
    const ids = tokenizer.encode(text);
    expect(ids.every((id) => id < DEFAULT_TINY_MODEL.vocab)).toBe(true);
    expect(tokenizer.decode(ids)).toBe(text);
  });

  test('special tokens are single ids and the EOS is <|endoftext|>', () => {
    expect(tokenizer.eosId).toBe(0);
    const ids = tokenizer.encode('<|im_start|>user\nHi<|im_end|>\n<|endoftext|>');
    expect(ids[0]).toBe(1);
    expect(ids).toContain(2);
    expect(ids.at(-1)).toBe(0);
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe('user\nHi\n');
  });

  test('with the largest vocabulary the corpus can fill, ids stay below it', () => {
    const big = freshDir();
    createTinyModel(big, { vocab: 4096 });
    const vocab = (readJson(path.join(big, 'tokenizer.json')).model as { vocab: Record<string, number> }).vocab;
    const ids = Object.values(vocab);
    expect(Math.max(...ids)).toBeLessThan(4096);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
