// Quantize on load and bitsandbytes 4-bit checkpoints: the cache is a bnb-4bit folder whose tensors decode to exactly
// what the codec gives for the source weights; a second load reuses it without quantizing; a damaged cache is rebuilt;
// a half-written one never becomes the cache; checkpoints we cannot load are refused in one line that says what is
// supported.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelFolder, type ModelFolder } from '../../main/model/modelFolder.js';
import { loadQuantized4bit } from '../../main/model/quant/bnb4bit.js';
import { dequantize4bit, quantize4bit } from '../../main/model/quant/nf4.js';
import { quantizedFolder, type QuantizeProgress } from '../../main/model/quant/quantizeOnLoad.js';
import { readTensorBytes, readTensorF32 } from '../../main/model/safetensors.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { tempDir } from '../support/engine.js';

let work: string;
let source: ModelFolder;
const NF4 = { quantType: 'nf4', doubleQuant: true } as const;

beforeAll(() => {
  work = tempDir('quantize');
  const dir = path.join(work, 'source');
  // bf16 weights, as most checkpoints on the Hub are: quantized from their widened values, kept bf16 otherwise.
  createTinyModel(dir, {
    arch: 'qwen2',
    layers: 2,
    hidden: 64,
    heads: 4,
    kvHeads: 2,
    vocab: 300,
    dtype: 'bf16',
    seed: 4,
  });
  source = openModelFolder(dir);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function quantize(root: string, config: { quantType: 'nf4' | 'fp4'; doubleQuant: boolean } = NF4) {
  const events: QuantizeProgress[] = [];
  const dir = await quantizedFolder(source, config, root, (p) => events.push(p));
  return { dir, events };
}

describe('quantize on load', () => {
  it('writes a bitsandbytes 4-bit folder whose weights decode as the codec quantizes the source', async () => {
    const { dir, events } = await quantize(path.join(work, 'cache-a'));
    const folder = openModelFolder(dir);
    expect(folder.quantization).toEqual(NF4);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config.quantization_config).toMatchObject({
      quant_method: 'bitsandbytes',
      load_in_4bit: true,
      bnb_4bit_quant_type: 'nf4',
      bnb_4bit_use_double_quant: true,
    });
    expect(fs.existsSync(path.join(dir, 'tokenizer.json'))).toBe(true);
    expect(events.at(-1)).toEqual({ done: source.tensors.size, total: source.tensors.size, cached: false });
    for (const [name, weight] of folder.quantized) {
      const expected = quantize4bit(readTensorF32(source.tensors.get(name)!), { quantType: 'nf4', doubleQuant: true });
      const stored = loadQuantized4bit(weight);
      expect(Buffer.from(stored.packed).equals(Buffer.from(expected.packed)), name).toBe(true);
      expect(Buffer.from(stored.nested!.codes).equals(Buffer.from(expected.nested!.codes)), name).toBe(true);
      expect(stored.nested!.offset).toBe(expected.nested!.offset);
      expect(dequantize4bit(stored)).toEqual(dequantize4bit(expected));
    }
    // The rest stays as the checkpoint has it: bf16, byte for byte.
    const norm = 'model.layers.0.input_layernorm.weight';
    expect(folder.tensors.get(norm)!.dtype).toBe('BF16');
    expect(readTensorBytes(folder.tensors.get(norm)!).equals(readTensorBytes(source.tensors.get(norm)!))).toBe(true);
  });

  it('reuses an intact cache without quantizing again, and keys it by format', async () => {
    const root = path.join(work, 'cache-b');
    const first = await quantize(root);
    const weights = path.join(first.dir, 'model.safetensors');
    const written = fs.statSync(weights).mtimeMs;
    const second = await quantize(root);
    expect(second.dir).toBe(first.dir);
    expect(second.events).toEqual([{ done: source.tensors.size, total: source.tensors.size, cached: true }]);
    expect(fs.statSync(weights).mtimeMs).toBe(written);
    const fp4 = await quantize(root, { quantType: 'fp4', doubleQuant: false });
    expect(fp4.dir).not.toBe(first.dir);
    expect(openModelFolder(fp4.dir).quantization).toEqual({ quantType: 'fp4', doubleQuant: false });
  });

  it('rebuilds a cache whose weights were damaged or cut short', async () => {
    const root = path.join(work, 'cache-c');
    const { dir } = await quantize(root);
    const weights = path.join(dir, 'model.safetensors');
    const good = fs.readFileSync(weights);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 10] ^= 0x40; // one bit, deep in the data: the header still parses
    fs.writeFileSync(weights, flipped);
    const again = await quantize(root);
    expect(again.events.at(-1)!.cached).toBe(false);
    expect(fs.readFileSync(weights).equals(good)).toBe(true);
    fs.truncateSync(weights, good.length - 1000);
    expect((await quantize(root)).events.at(-1)!.cached).toBe(false);
    expect(fs.readFileSync(weights).equals(good)).toBe(true);
  });

  it('leaves nothing behind when writing fails half-way', async () => {
    const root = path.join(work, 'cache-d');
    fs.mkdirSync(root);
    // A tensor the source lists but whose bytes are gone: reading it fails after others were written.
    const broken = openModelFolder(source.dir);
    const last = [...broken.tensors.keys()].sort().at(-1)!;
    broken.tensors.set(last, {
      ...broken.tensors.get(last)!,
      byteOffset: fs.statSync(broken.tensors.get(last)!.file).size + 8,
    });
    await expect(quantizedFolder(broken, NF4, root)).rejects.toThrow(/truncated/);
    expect(fs.readdirSync(root)).toEqual([]);
  });
});

describe('4-bit checkpoints we cannot load', () => {
  function withQuantizationConfig(name: string, config: Record<string, unknown>): string {
    const dir = path.join(work, name);
    fs.cpSync(source.dir, dir, { recursive: true });
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), quantization_config: config }),
    );
    return dir;
  }
  const SUPPORTED = /supported: bitsandbytes 4-bit \(nf4, fp4\) or an unquantized F32\/F16\/BF16 checkpoint/;

  it.each([
    [
      'LLM.int8',
      { quant_method: 'bitsandbytes', load_in_8bit: true },
      /LLM\.int8 \(bitsandbytes 8-bit\) checkpoint is not supported/,
    ],
    ['GPTQ', { quant_method: 'gptq', bits: 4, group_size: 128 }, /quant_method "gptq" is not supported/],
    ['AWQ', { quant_method: 'awq', bits: 4 }, /quant_method "awq" is not supported/],
    [
      'an unknown quant_type',
      { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf3' },
      /bnb_4bit_quant_type "nf3" is not supported/,
    ],
  ])('refuses %s in one line naming config.json and what is supported', (what, config, message) => {
    const dir = withQuantizationConfig(`refused-${what.replace(/\W/g, '')}`, config);
    let error: Error | undefined;
    try {
      openModelFolder(dir);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toMatch(message);
    expect(error?.message).toMatch(SUPPORTED);
    expect(error?.message).toContain(path.join(dir, 'config.json'));
    expect(error?.message).not.toContain('\n');
  });

  it('refuses a config that says 4-bit over full-precision weights, naming the tensor', () => {
    const dir = withQuantizationConfig('claims-4bit', {
      quant_method: 'bitsandbytes',
      load_in_4bit: true,
      bnb_4bit_quant_type: 'nf4',
    });
    expect(() => openModelFolder(dir)).toThrow(
      /weight "model\.layers\.0\.self_attn\.q_proj\.weight" is BF16, a 4-bit checkpoint stores it as U8/,
    );
  });
});
