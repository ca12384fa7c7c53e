// Quantize on load and bitsandbytes 4-bit checkpoints: the cache is a bnb-4bit folder (or our int4 one) whose tensors
// decode to exactly what the codec gives for the source weights; a second load reuses it without quantizing; a damaged
// cache is rebuilt; a half-written one never becomes the cache; checkpoints we cannot load are refused in one line that
// says what is supported.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelFolder, type ModelFolder } from '../../main/model/modelFolder.js';
import { loadQuantized4bit, type Quant4bitConfig } from '../../main/model/quant/bnb4bit.js';
import { quantizeInt4 } from '../../main/model/quant/int4.js';
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

async function quantize(root: string, config: Quant4bitConfig = NF4) {
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

  it('writes an int4 folder: Q4_0 codes in the MatMulNBits layout with fp16 scales, keyed apart from nf4', async () => {
    const root = path.join(work, 'cache-int4');
    const { dir } = await quantize(root, { quantType: 'int4', doubleQuant: false });
    expect(path.dirname(dir)).toBe(root);
    const folder = openModelFolder(dir);
    expect(folder.quantization).toEqual({ quantType: 'int4', doubleQuant: false });
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config.quantization_config).toEqual({
      quant_method: 'peft-studio-int4',
      bits: 4,
      block_size: 32,
      values: 'ggml Q4_0',
    });
    expect(folder.quantized.size).toBe(2 * 7 + 1); // the untied lm_head too
    for (const [name, weight] of folder.quantized) {
      const [rows, cols] = weight.shape;
      const expected = quantizeInt4(readTensorF32(source.tensors.get(name)!), rows, cols);
      expect(weight.packed.shape).toEqual([rows, cols / 32, 16]);
      expect(weight.absmax.dtype).toBe('F16');
      expect(readTensorBytes(weight.packed).equals(Buffer.from(expected.packed)), name).toBe(true);
      expect(readTensorBytes(weight.absmax).equals(Buffer.from(expected.scales.buffer)), name).toBe(true);
    }
    const nf4 = await quantize(root);
    expect(nf4.dir).not.toBe(dir);
  });

  it('refuses int4 for a model whose rows are not whole blocks of 32, in one line that suggests nf4', async () => {
    const dir = path.join(work, 'odd-width');
    createTinyModel(dir, { arch: 'llama', layers: 1, hidden: 64, heads: 4, kvHeads: 2, intermediate: 152, vocab: 300 });
    const root = path.join(work, 'cache-odd');
    await expect(
      quantizedFolder(openModelFolder(dir), { quantType: 'int4', doubleQuant: false }, root),
    ).rejects.toThrow(
      /^model\.layers\.0\.mlp\.down_proj\.weight is \[64, 152\]: int4 needs rows whose width is a multiple of 32; use nf4$/,
    );
    expect(fs.existsSync(root) ? fs.readdirSync(root) : []).toEqual([]);
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
  const SUPPORTED =
    /supported: bitsandbytes 4-bit \(nf4, fp4\), the studio's own int4 cache or an unquantized F32\/F16\/BF16 checkpoint/;

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

  it('refuses an int4 config of another width, and int4 claimed over full-precision weights', () => {
    const eightBit = withQuantizationConfig('int4-8bit', { quant_method: 'peft-studio-int4', bits: 8, block_size: 32 });
    expect(() => openModelFolder(eightBit)).toThrow(
      /config\.json: an int4 quantization_config with bits 8 and block_size 32 is not supported \(4 and 32 are\)$/,
    );
    const claims = withQuantizationConfig('claims-int4', { quant_method: 'peft-studio-int4', bits: 4, block_size: 32 });
    expect(() => openModelFolder(claims)).toThrow(
      /tensor "model\.layers\.0\.self_attn\.q_proj\.weight" is BF16 \[64,64\], int4 stores U8 \[64,2,16\]$/,
    );
  });
});
