// Merging a LoRA adapter into its base: a complete Hugging Face model folder where W' = W + scale * B A.
// Streamed tensor by tensor: one weight in fp32 at a time is all that is held, so a 7B model merges in a few GB.
// QLoRA practice merges into the 16-bit base the 4-bit one was made from; given only a 4-bit checkpoint, its weights
// are dequantized first and the result says it is an approximation of that.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { openModelFolder, type ModelFolder } from '../model/modelFolder.js';
import { ADAPTER_TEMPLATE_FILE } from '../model/chatTemplate.js';
import { dequantizeOnHost } from '../model/quant/bnb4bit.js';
import { readTensorF32, SafetensorsStreamWriter } from '../model/safetensors.js';
import { loadAdapter } from './anyAdapter.js';
import { loraScale, type LoraWeights } from './loraAdapter.js';
import { expectedShapes, targetParent, type TargetModule } from '../model/architecture.js';

export type MergeDtype = 'f32' | 'bf16' | 'f16';
type FloatDtype = 'F32' | 'BF16' | 'F16';
const DTYPES: Record<MergeDtype, { safetensors: FloatDtype; torch: string }> = {
  f32: { safetensors: 'F32', torch: 'float32' },
  bf16: { safetensors: 'BF16', torch: 'bfloat16' },
  f16: { safetensors: 'F16', torch: 'float16' },
};

/** Files of a model folder that describe it rather than hold weights, copied as they are. */
const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'chat_template.jinja',
  'tokenizer.model',
];

export interface MergeOptions {
  modelDir: string;
  adapterDir: string;
  outDir: string;
  /** Default: the base checkpoint's own dtype. */
  dtype?: MergeDtype;
  /** Shards are cut before they pass this size (transformers' default is 5 GB). */
  maxShardBytes: number;
  onProgress?: (done: number, total: number) => void;
}

export interface MergeResult {
  outDir: string;
  shards: number;
  mergedWeights: number;
  /** The base was a 4-bit checkpoint: merged into its dequantized weights, not the 16-bit ones it came from. */
  fromQuantizedBase: boolean;
}

/** A base model and a LoRA adapter, ready to hand out each weight merged. */
export interface MergeSource {
  folder: ModelFolder;
  lora: LoraWeights;
  /** Every weight the model has, each once, with its checkpoint shape, sorted by name. */
  entries: { name: string; shape: number[] }[];
  /** Weight `name` in fp32, with scale * B A added when the adapter changes it. */
  mergedWeight(name: string): Float32Array;
  /** How many weights the adapter changes. */
  mergedWeights: number;
  /** The base is a 4-bit checkpoint: weights are its dequantized ones. */
  fromQuantizedBase: boolean;
}

/** Opens the base and the adapter for a merge; a prompt-tuning adapter is refused (it has no weights to merge). */
export function openMergeSource(modelDir: string, adapterDir: string): MergeSource {
  const folder = openModelFolder(modelDir);
  const adapter = loadAdapter(adapterDir, folder.spec);
  if (adapter.kind !== 'lora')
    throw new UserError(
      `${adapterDir}: a prompt-tuning adapter has no weights to merge; use it unmerged, beside its base model`,
    );
  const { lora } = adapter;
  const scale = loraScale(lora.settings);

  // Which checkpoint weight each LoRA pair changes: model.layers.{i}.{self_attn|mlp}.{target}.weight
  const deltas = new Map<string, { layer: number; target: TargetModule }>();
  lora.layers.forEach((pairs, layer) => {
    for (const target of pairs.keys())
      deltas.set(`model.layers.${layer}.${targetParent(target)}.${target}.weight`, { layer, target });
  });

  // The weights the model has, each once: a 4-bit weight's absmax, maps and quant state are part of it, not weights.
  const { quantized } = folder;
  const entries = [...expectedShapes(folder.spec).keys()]
    .map((name) => {
      const q = quantized.get(name);
      return { name, shape: q ? q.shape : folder.tensors.get(name)!.shape };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
  return {
    folder,
    lora,
    entries,
    mergedWeight(name) {
      const q = quantized.get(name);
      const values = q ? dequantizeOnHost(q) : readTensorF32(folder.tensors.get(name)!);
      const delta = deltas.get(name);
      if (delta) addLoraDelta(values, lora.layers[delta.layer].get(delta.target)!, lora.settings.rank, scale);
      return values;
    },
    mergedWeights: deltas.size,
    fromQuantizedBase: quantized.size > 0,
  };
}

export function mergeLoraAdapter(options: MergeOptions): MergeResult {
  const source = openMergeSource(options.modelDir, options.adapterDir);
  if (fs.existsSync(options.outDir) && fs.readdirSync(options.outDir).length > 0)
    throw new UserError(`${options.outDir}: exists and is not empty`);
  const { folder, entries } = source;
  // openModelFolder has checked every full-precision weight is F32, F16 or BF16; a 4-bit base's others are 16-bit.
  const plain = entries.find((e) => !folder.quantized.has(e.name))!;
  const sourceDtype = folder.tensors.get(plain.name)!.dtype as FloatDtype;
  const dtype: FloatDtype = options.dtype ? DTYPES[options.dtype].safetensors : sourceDtype;
  const bytesPer = dtype === 'F32' ? 4 : 2;

  // Plan shards by size, then stream each tensor into its shard.
  const shards: (typeof entries)[] = [[]];
  let shardBytes = 0;
  for (const entry of entries) {
    const size = entry.shape.reduce((a, b) => a * b, 1) * bytesPer;
    if (shards[shards.length - 1].length > 0 && shardBytes + size > options.maxShardBytes) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(entry);
    shardBytes += size;
  }

  const temp = `${options.outDir}.tmp-${process.pid}`;
  fs.rmSync(temp, { recursive: true, force: true });
  fs.mkdirSync(temp, { recursive: true });
  try {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    let done = 0;
    shards.forEach((shard, s) => {
      const file =
        shards.length === 1
          ? 'model.safetensors'
          : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      const writer = new SafetensorsStreamWriter(
        path.join(temp, file),
        shard.map((e) => ({ name: e.name, dtype, shape: e.shape })),
        { format: 'pt' },
      );
      try {
        for (const entry of shard) {
          const values = source.mergedWeight(entry.name);
          writer.write(entry.name, values);
          weightMap[entry.name] = file;
          totalSize += values.length * bytesPer;
          options.onProgress?.(++done, entries.length);
        }
        writer.close();
      } catch (err) {
        writer.abort();
        throw err;
      }
    });
    if (shards.length > 1) {
      fs.writeFileSync(
        path.join(temp, 'model.safetensors.index.json'),
        JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n',
      );
    }
    const config = JSON.parse(fs.readFileSync(path.join(folder.dir, 'config.json'), 'utf8'));
    config.torch_dtype = Object.values(DTYPES).find((d) => d.safetensors === dtype)!.torch;
    delete config.quantization_config; // merged weights are full precision
    fs.writeFileSync(path.join(temp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    for (const name of COMPANION_FILES) {
      if (fs.existsSync(path.join(folder.dir, name)))
        fs.copyFileSync(path.join(folder.dir, name), path.join(temp, name));
    }
    // An adapter trained with a chat template of its own brings it: transformers reads chat_template.jinja first.
    const adapterTemplate = path.join(options.adapterDir, ADAPTER_TEMPLATE_FILE);
    if (fs.existsSync(adapterTemplate)) fs.copyFileSync(adapterTemplate, path.join(temp, ADAPTER_TEMPLATE_FILE));
    // The destination was checked empty: removing it can never take anything with it.
    if (fs.existsSync(options.outDir)) fs.rmdirSync(options.outDir);
    fs.renameSync(temp, options.outDir);
  } catch (err) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw err;
  }
  return {
    outDir: options.outDir,
    shards: shards.length,
    mergedWeights: source.mergedWeights,
    fromQuantizedBase: source.fromQuantizedBase,
  };
}

/** W [out, in] += scale * B [out, r] A [r, in], accumulated rank by rank into the fp32 weight. */
function addLoraDelta(
  weight: Float32Array,
  pair: { a: Float32Array; b: Float32Array },
  rank: number,
  scale: number,
): void {
  const fanIn = pair.a.length / rank;
  const out = pair.b.length / rank;
  for (let o = 0; o < out; o++) {
    const row = o * fanIn;
    for (let k = 0; k < rank; k++) {
      const b = scale * pair.b[o * rank + k];
      if (b === 0) continue;
      const aRow = k * fanIn;
      for (let i = 0; i < fanIn; i++) weight[row + i] += b * pair.a[aRow + i];
    }
  }
}
