// A Hugging Face model folder: config.json plus model.safetensors, or shards listed in model.safetensors.index.json.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { expectedShapes, parseModelConfig, type ModelSpec } from './architecture.js';
import { readSafetensorsHeader, type TensorEntry } from './safetensors.js';

export interface ModelFolder {
  dir: string;
  spec: ModelSpec;
  /** Every frozen weight by its checkpoint name, with the byte range holding it. */
  tensors: Map<string, TensorEntry>;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
  }
}

/** Opens a model folder and checks that every weight the architecture needs is present with the right shape. */
export function openModelFolder(dir: string): ModelFolder {
  const absolute = path.resolve(dir);
  if (!fs.existsSync(absolute) || !fs.statSync(absolute).isDirectory()) throw new UserError(`${absolute}: model folder not found`);
  const configFile = path.join(absolute, 'config.json');
  const spec = parseModelConfig(readJson(configFile), configFile);

  const tensors = new Map<string, TensorEntry>();
  const single = path.join(absolute, 'model.safetensors');
  const indexFile = path.join(absolute, 'model.safetensors.index.json');
  if (fs.existsSync(single)) {
    for (const [name, entry] of readSafetensorsHeader(single)) tensors.set(name, entry);
  } else if (fs.existsSync(indexFile)) {
    const weightMap = readJson(indexFile).weight_map as Record<string, string> | undefined;
    if (!weightMap || typeof weightMap !== 'object') throw new UserError(`${indexFile}: field "weight_map" is missing`);
    for (const shard of new Set(Object.values(weightMap))) {
      for (const [name, entry] of readSafetensorsHeader(path.join(absolute, shard))) tensors.set(name, entry);
    }
  } else {
    throw new UserError(`${absolute}: no model.safetensors or model.safetensors.index.json`);
  }

  for (const [name, shape] of expectedShapes(spec)) {
    const entry = tensors.get(name);
    if (!entry) throw new UserError(`${absolute}: weight "${name}" is missing from the checkpoint`);
    if (entry.shape.join(',') !== shape.join(',')) {
      throw new UserError(`${entry.file}: weight "${name}" has shape [${entry.shape}], config.json implies [${shape}]`);
    }
    if (!['F32', 'F16', 'BF16'].includes(entry.dtype)) throw new UserError(`${entry.file}: weight "${name}" has dtype ${entry.dtype}, expected F32, F16 or BF16`);
  }
  return { dir: absolute, spec, tensors };
}
