// Model folders as Hugging Face writes them: sharded checkpoints, half-precision weights, and what is wrong with them.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import {
  readSafetensorsHeader,
  readTensorF32,
  writeSafetensors,
  type TensorToWrite,
} from '../../main/model/safetensors.js';
import { createTinyModel, DEFAULT_TINY_MODEL } from '../../main/model/tinyModel.js';
import { countLabelTokens } from '../../main/engine/runtime/trainableModel.js';
import type { LoraSettings } from '../../shared/training.js';
import { openTrainable, randomBatch, randomLora, tempDir, zeroGrads } from '../support/engine.js';

const settings: LoraSettings = { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false };
let source: string;

beforeAll(() => {
  source = path.join(tempDir('folder'), 'model');
  createTinyModel(source, {
    ...DEFAULT_TINY_MODEL,
    layers: 2,
    hidden: 32,
    heads: 4,
    kvHeads: 2,
    intermediate: 64,
    vocab: 300,
  });
});

function allTensors(dir: string): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, entry] of readSafetensorsHeader(path.join(dir, 'model.safetensors')))
    out[name] = { dtype: 'F32', shape: entry.shape, data: readTensorF32(entry) };
  return out;
}

/** A copy of the tiny model with its weights rewritten by `write` (config and tokenizer kept). */
function variant(name: string, write: (dir: string, tensors: Record<string, TensorToWrite>) => void): string {
  const dir = path.join(path.dirname(source), name);
  fs.mkdirSync(dir);
  for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(source, file), path.join(dir, file));
  write(dir, allTensors(source));
  return dir;
}

async function lossOf(dir: string): Promise<number> {
  const folder = openModelFolder(dir);
  const model = await openTrainable(folder, settings);
  try {
    const batch = randomBatch(300, 2, 8, 1);
    const lora = randomLora(folder, settings, 2);
    return await model.forwardBackward(batch, lora, zeroGrads(lora), countLabelTokens(batch), 0);
  } finally {
    await model.close();
  }
}

describe('model folders', () => {
  it('read sharded checkpoints through model.safetensors.index.json with the same result', async () => {
    const sharded = variant('sharded', (dir, tensors) => {
      const names = Object.keys(tensors).sort();
      const half = Math.ceil(names.length / 2);
      const shards = [names.slice(0, half), names.slice(half)];
      const weightMap: Record<string, string> = {};
      shards.forEach((shard, i) => {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        writeSafetensors(path.join(dir, file), Object.fromEntries(shard.map((n) => [n, tensors[n]])));
        for (const n of shard) weightMap[n] = file;
      });
      fs.writeFileSync(
        path.join(dir, 'model.safetensors.index.json'),
        JSON.stringify({ metadata: {}, weight_map: weightMap }),
      );
    });
    const folder = openModelFolder(sharded);
    expect(new Set([...folder.tensors.values()].map((t) => path.basename(t.file))).size).toBe(2);
    expect(await lossOf(sharded)).toBeCloseTo(await lossOf(source), 6);
  });

  it('widen BF16 weights in the graph to the values a reader widens them to', async () => {
    const bf16 = variant('bf16', (dir, tensors) => {
      for (const t of Object.values(tensors)) t.dtype = 'BF16';
      writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    });
    // The fp32 model holding exactly the bf16-rounded values must give the same loss.
    const rounded = variant('bf16-rounded', (dir) => {
      const widened: Record<string, TensorToWrite> = {};
      for (const [name, entry] of readSafetensorsHeader(path.join(bf16, 'model.safetensors')))
        widened[name] = { dtype: 'F32', shape: entry.shape, data: readTensorF32(entry) };
      writeSafetensors(path.join(dir, 'model.safetensors'), widened);
    });
    expect(await lossOf(bf16)).toBeCloseTo(await lossOf(rounded), 6);
  });

  it('widen F16 weights in the graph as the reader does', async () => {
    const f16 = variant('f16', (dir, tensors) => {
      // Written by hand: the writer emits F32 and BF16 only. Round each value to binary16 through Float32 bit tricks.
      const f16Bytes = (data: Float32Array) => {
        const out = Buffer.alloc(data.length * 2);
        data.forEach((v, i) => out.writeUInt16LE(toHalf(v), 2 * i));
        return out;
      };
      const names = Object.keys(tensors).sort();
      let offset = 0;
      const header: Record<string, unknown> = {};
      const chunks = names.map((name) => {
        const bytes = f16Bytes(tensors[name].data as Float32Array);
        header[name] = { dtype: 'F16', shape: tensors[name].shape, data_offsets: [offset, offset + bytes.length] };
        offset += bytes.length;
        return bytes;
      });
      const json = Buffer.from(JSON.stringify(header));
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(json.length));
      fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([prefix, json, ...chunks]));
    });
    const widened = variant('f16-widened', (dir) => {
      const out: Record<string, TensorToWrite> = {};
      for (const [name, entry] of readSafetensorsHeader(path.join(f16, 'model.safetensors'))) {
        expect(entry.dtype).toBe('F16');
        out[name] = { dtype: 'F32', shape: entry.shape, data: readTensorF32(entry) };
      }
      writeSafetensors(path.join(dir, 'model.safetensors'), out);
    });
    expect(await lossOf(f16)).toBeCloseTo(await lossOf(widened), 6);
    expect(Math.abs((await lossOf(f16)) - (await lossOf(source)))).toBeLessThan(1e-2);
  });

  it('name the file and weight when a weight is missing or misshapen', () => {
    const missing = variant('missing', (dir, tensors) => {
      delete tensors['model.layers.1.mlp.up_proj.weight'];
      writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    });
    expect(() => openModelFolder(missing)).toThrow(/weight "model\.layers\.1\.mlp\.up_proj\.weight" is missing/);
    const misshapen = variant('misshapen', (dir, tensors) => {
      tensors['model.norm.weight'] = { dtype: 'F32', shape: [31], data: new Float32Array(31) };
      writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    });
    expect(() => openModelFolder(misshapen)).toThrow(UserError);
    expect(() => openModelFolder(misshapen)).toThrow(
      /model\.safetensors: weight "model\.norm\.weight" has shape \[31\], config\.json implies \[32\]/,
    );
  });

  it('load through weights linked into a temp folder (read-only model folders) and leave nothing behind', async () => {
    const folder = openModelFolder(source);
    // A temp folder of this test's own: other test files load models beside it at the same time.
    const tmp = tempDir('link-tmp');
    const sharedTmp = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    const linkFolders = () => fs.readdirSync(tmp).filter((f) => f.startsWith('peft-studio-weights-')).length;
    const model = await openTrainable(folder, settings, { graphPlacement: 'temp' }).finally(() => {
      if (sharedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = sharedTmp;
    });
    expect(linkFolders()).toBe(1);
    try {
      const batch = randomBatch(300, 2, 8, 1);
      const lora = randomLora(folder, settings, 2);
      expect(await model.forwardBackward(batch, lora, zeroGrads(lora), countLabelTokens(batch), 0)).toBeCloseTo(
        await lossOf(source),
        6,
      );
    } finally {
      await model.close();
    }
    expect(fs.readdirSync(source).filter((f) => f.endsWith('.onnx'))).toEqual([]);
    expect(linkFolders()).toBe(0);
  });

  it('remove graph files an engine killed mid-load left in the model folder, and only those', async () => {
    const dir = path.join(path.dirname(source), 'orphaned-graphs');
    fs.cpSync(source, dir, { recursive: true });
    // A process that has exited: its pid names no one now.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    const orphan = path.join(dir, `.peft-studio-${gone}-abc-layer_0.onnx`);
    const live = path.join(dir, `.peft-studio-${process.pid}-abc-layer_0.onnx`);
    for (const file of [orphan, live]) fs.writeFileSync(file, 'partial graph');
    const model = await openTrainable(openModelFolder(dir), settings);
    await model.close();
    expect(fs.existsSync(orphan)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
  });
});

/** fp32 to IEEE binary16 bits, round to nearest (normal range; tiny values flush to zero, enough for weights). */
function toHalf(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  if (exponent <= 0) return sign;
  const mantissa = bits & 0x7fffff;
  let half = sign | (exponent << 10) | (mantissa >>> 13);
  if (mantissa & 0x1000) half++; // round half up on the dropped bits
  return half;
}
