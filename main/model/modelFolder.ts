// A Hugging Face model folder: config.json plus model.safetensors, or shards listed in model.safetensors.index.json.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { expectedShapes, parseModelConfig, type ModelSpec } from './architecture.js';
import { parseQuantizationConfig, quantizedWeightNames, readQuantized4bitWeights } from './quant/bnb4bit.js';
import type { Quant4bitConfig, Quantized4bitWeight } from './quant/bnb4bit.js';
import { readSafetensorsHeader, type TensorEntry } from './safetensors.js';

export interface ModelFolder {
  dir: string;
  spec: ModelSpec;
  /** Every frozen weight by its checkpoint name, with the byte range holding it. */
  tensors: Map<string, TensorEntry>;
  /** A bitsandbytes 4-bit checkpoint's settings (config.json's quantization_config), or null. */
  quantization: Quant4bitConfig | null;
  /** Its quantized weights by name (the decoder layers' projections); empty for an unquantized checkpoint. */
  quantized: Map<string, Quantized4bitWeight>;
}

/** config.json is a few kB and the largest index files about 1 MB: a bigger one is not a model's. */
const MAX_JSON_BYTES = 64 * 2 ** 20;

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    const bytes = fs.statSync(file).size;
    if (bytes > MAX_JSON_BYTES) throw new UserError(`${file}: ${bytes} bytes, too large for a model's JSON file`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UserError(`${file}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** A PEFT adapter folder chosen where a model is asked for: says so, and names the model it was trained on. */
function refuseAdapterFolder(dir: string, configFile: string): void {
  const adapterConfig = path.join(dir, 'adapter_config.json');
  if (fs.existsSync(configFile) || !fs.existsSync(adapterConfig)) return;
  const base = readJson(adapterConfig).base_model_name_or_path;
  const named = typeof base === 'string' && base ? ` (its base is ${JSON.stringify(base.slice(0, 200))})` : '';
  throw new UserError(
    `${dir}: an adapter (adapter_config.json), not a model; choose the model it was trained on${named}, and this folder as the adapter`,
  );
}

/** Opens a model folder and checks that every weight the architecture needs is present with the right shape. */
export function openModelFolder(dir: string): ModelFolder {
  const absolute = path.resolve(dir);
  if (!fs.existsSync(absolute) || !fs.statSync(absolute).isDirectory())
    throw new UserError(`${absolute}: model folder not found`);
  const configFile = path.join(absolute, 'config.json');
  refuseAdapterFolder(absolute, configFile);
  const config = readJson(configFile);
  const spec = parseModelConfig(config, configFile);
  const quantization = parseQuantizationConfig(config, configFile);

  const tensors = new Map<string, TensorEntry>();
  const single = path.join(absolute, 'model.safetensors');
  const indexFile = path.join(absolute, 'model.safetensors.index.json');
  if (fs.existsSync(single)) {
    for (const [name, entry] of readSafetensorsHeader(single)) tensors.set(name, entry);
  } else if (fs.existsSync(indexFile)) {
    const weightMap = readJson(indexFile).weight_map;
    if (!weightMap || typeof weightMap !== 'object') throw new UserError(`${indexFile}: field "weight_map" is missing`);
    for (const shard of new Set(Object.values(weightMap))) {
      // Shards are files of this folder: a name leading elsewhere is refused, not read.
      const shardFile = typeof shard === 'string' ? path.resolve(absolute, shard) : null;
      if (shardFile === null || path.dirname(shardFile) !== absolute) {
        const named = JSON.stringify(shard)?.slice(0, 100);
        throw new UserError(`${indexFile}: "weight_map" names ${named}, not a file of the model folder`);
      }
      for (const [name, entry] of readSafetensorsHeader(shardFile)) tensors.set(name, entry);
    }
  } else {
    throw new UserError(`${absolute}: no model.safetensors or model.safetensors.index.json`);
  }

  const shapes = expectedShapes(spec);
  const quantized = quantization
    ? readQuantized4bitWeights(tensors, shapes, quantizedWeightNames(spec, tensors), quantization)
    : new Map<string, Quantized4bitWeight>();
  for (const [name, shape] of shapes) {
    if (quantized.has(name)) continue;
    const entry = tensors.get(name);
    if (!entry) throw new UserError(`${absolute}: weight "${name}" is missing from the checkpoint`);
    if (entry.shape.join(',') !== shape.join(',')) {
      throw new UserError(`${entry.file}: weight "${name}" has shape [${entry.shape}], config.json implies [${shape}]`);
    }
    if (!['F32', 'F16', 'BF16'].includes(entry.dtype))
      throw new UserError(`${entry.file}: weight "${name}" has dtype ${entry.dtype}, expected F32, F16 or BF16`);
  }
  return { dir: absolute, spec, tensors, quantization, quantized };
}
