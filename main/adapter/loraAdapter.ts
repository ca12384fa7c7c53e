// LoRA weights in memory and as a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) that Python
// PEFT loads unchanged. Keys: base_model.model.model.layers.{i}.{self_attn|mlp}.{target}.lora_{A|B}.weight,
// A [r, in] and B [out, r]; scale alpha / r, or alpha / sqrt(r) with rsLoRA.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import type { LoraSettings } from '../../shared/training.js';
import { ALL_TARGETS, targetParent, targetShape, type ModelSpec, type TargetModule } from '../model/architecture.js';
import {
  readSafetensorsHeader,
  readTensorF32,
  writeSafetensors,
  type TensorEntry,
  type TensorToWrite,
} from '../model/safetensors.js';
import { writeFileAtomic } from '../util/atomicWrite.js';

export interface LoraPair {
  a: Float32Array; // [r, in]
  b: Float32Array; // [out, r]
}

export interface LoraWeights {
  settings: LoraSettings;
  targets: TargetModule[];
  /** layers[i].get(target) */
  layers: Map<TargetModule, LoraPair>[];
}

export function loraScale(settings: LoraSettings): number {
  return settings.useRslora ? settings.alpha / Math.sqrt(settings.rank) : settings.alpha / settings.rank;
}

export function peftKey(layer: number, target: TargetModule, matrix: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${targetParent(target)}.${target}.lora_${matrix}.weight`;
}

export function validateTargets(targets: string[], where: string): TargetModule[] {
  if (targets.length === 0) throw new UserError(`${where}: no LoRA target modules given`);
  for (const t of targets) {
    if (!(ALL_TARGETS as readonly string[]).includes(t))
      throw new UserError(`${where}: unknown LoRA target "${t}"; allowed: ${ALL_TARGETS.join(', ')}`);
  }
  return ALL_TARGETS.filter((t) => targets.includes(t));
}

/**
 * PEFT's init: A ~ kaiming_uniform(a = sqrt 5), i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0, so training starts at the base
 * model.
 */
export function initLoraWeights(spec: ModelSpec, settings: LoraSettings, uniform: () => number): LoraWeights {
  const targets = validateTargets(settings.targets, 'LoRA targets');
  const layers = Array.from({ length: spec.numLayers }, () => {
    const pairs = new Map<TargetModule, LoraPair>();
    for (const target of targets) {
      const { out, in: fanIn } = targetShape(spec, target);
      const bound = 1 / Math.sqrt(fanIn);
      const a = new Float32Array(settings.rank * fanIn);
      for (let i = 0; i < a.length; i++) a[i] = (2 * uniform() - 1) * bound;
      pairs.set(target, { a, b: new Float32Array(out * settings.rank) });
    }
    return pairs;
  });
  return { settings, targets, layers };
}

/** Writes the adapter folder's two files; returns their names. */
export function saveLoraAdapter(dir: string, weights: LoraWeights, baseModel: string): string[] {
  const { settings } = weights;
  const tensors: Record<string, TensorToWrite> = {};
  weights.layers.forEach((pairs, layer) => {
    for (const [target, pair] of pairs) {
      tensors[peftKey(layer, target, 'A')] = {
        dtype: 'F32',
        shape: [settings.rank, pair.a.length / settings.rank],
        data: pair.a,
      };
      tensors[peftKey(layer, target, 'B')] = {
        dtype: 'F32',
        shape: [pair.b.length / settings.rank, settings.rank],
        data: pair.b,
      };
    }
  });
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: settings.rank,
    lora_alpha: settings.alpha,
    lora_dropout: settings.dropout,
    target_modules: weights.targets,
    use_rslora: settings.useRslora,
    use_dora: false,
    bias: 'none',
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileAtomic(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
  return ['adapter_model.safetensors', 'adapter_config.json'];
}

/** A PEFT adapter folder's adapter_config.json. */
export function readAdapterConfig(dir: string): Record<string, unknown> {
  const configFile = path.join(dir, 'adapter_config.json');
  if (!fs.existsSync(configFile)) throw new UserError(`${configFile}: not found (not a PEFT adapter folder)`);
  try {
    return JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } catch (err) {
    throw new UserError(`${configFile}: invalid JSON (${(err as Error).message})`);
  }
}

/** Loads a PEFT LoRA adapter for `spec`; its own r, alpha, targets and rsLoRA setting are returned with it. */
export function loadLoraAdapter(dir: string, spec: ModelSpec, config = readAdapterConfig(dir)): LoraWeights {
  const configFile = path.join(dir, 'adapter_config.json');
  if (config.peft_type !== 'LORA')
    throw new UserError(`${configFile}: field "peft_type" is ${JSON.stringify(config.peft_type)}, expected "LORA"`);
  const rank = config.r;
  const alpha = config.lora_alpha;
  if (typeof rank !== 'number' || rank <= 0 || !Number.isInteger(rank))
    throw new UserError(`${configFile}: field "r" must be a positive integer`);
  if (typeof alpha !== 'number') throw new UserError(`${configFile}: field "lora_alpha" must be a number`);
  const rawTargets = config.target_modules;
  const targetList = typeof rawTargets === 'string' ? [rawTargets] : rawTargets;
  if (!Array.isArray(targetList)) throw new UserError(`${configFile}: field "target_modules" must be a list`);
  const targets = validateTargets(targetList as string[], configFile);
  const settings: LoraSettings = {
    rank,
    alpha,
    dropout: typeof config.lora_dropout === 'number' ? config.lora_dropout : 0,
    targets,
    useRslora: config.use_rslora === true,
  };

  const weightsFile = adapterWeightsFile(dir);
  const entries = normalizedAdapterTensors(weightsFile);
  const expected = new Set<string>();
  const layers = Array.from({ length: spec.numLayers }, (_, layer) => {
    const pairs = new Map<TargetModule, LoraPair>();
    for (const target of targets) {
      const { out, in: fanIn } = targetShape(spec, target);
      const read = (matrix: 'A' | 'B', shape: number[]) => {
        const key = peftKey(layer, target, matrix);
        expected.add(key);
        const entry = entries.get(key);
        if (!entry) throw new UserError(`${weightsFile}: tensor "${key}" is missing`);
        if (entry.shape.join(',') !== shape.join(','))
          throw new UserError(`${weightsFile}: tensor "${key}" has shape [${entry.shape}], expected [${shape}]`);
        return readTensorF32(entry);
      };
      pairs.set(target, { a: read('A', [rank, fanIn]), b: read('B', [out, rank]) });
    }
    return pairs;
  });
  const unexpected = [...entries.keys()].filter((key) => !expected.has(key));
  if (unexpected.length)
    throw new UserError(
      `${weightsFile}: tensor "${unexpected[0]}" does not belong to a ${targets.join('/')} LoRA of this ${spec.numLayers}-layer model${unexpected.length > 1 ? ` (and ${unexpected.length - 1} more)` : ''}`,
    );
  return { settings, targets, layers };
}

/**
 * The adapter's weights file, which must be a safetensors file inside the adapter folder: pickled `.bin` files can
 * run code when loaded, and a link out of the folder is not the adapter the user chose.
 */
export function adapterWeightsFile(dir: string): string {
  const file = path.join(dir, 'adapter_model.safetensors');
  if (!fs.existsSync(file)) {
    if (fs.existsSync(path.join(dir, 'adapter_model.bin'))) {
      throw new UserError(
        `${dir}: only adapter_model.bin, a pickled PyTorch file that can run code when loaded; save it with PEFT's save_pretrained(safe_serialization=True) as adapter_model.safetensors`,
      );
    }
    throw new UserError(`${file}: not found`);
  }
  const folder = fs.realpathSync(dir);
  if (!fs.realpathSync(file).startsWith(folder + path.sep))
    throw new UserError(`${file}: points outside the adapter folder ${folder}`);
  return file;
}

/**
 * Tensor entries under the names this studio writes. Python PEFT names them base_model.model.<module>.lora_A.weight
 * on disk, but in-memory state dicts carry the adapter name (`.lora_A.default.weight`) and some tools drop the
 * `base_model.model.` prefix; both are accepted.
 */
export function normalizedAdapterTensors(file: string): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  for (const [name, entry] of readSafetensorsHeader(file)) {
    let key = name.replace(/\.(lora_[AB])\.default\.weight$/, '.$1.weight');
    if (key.startsWith('model.layers.')) key = `base_model.model.${key}`;
    if (out.has(key)) throw new UserError(`${file}: tensors "${out.get(key)!.name}" and "${name}" are the same weight`);
    out.set(key, entry);
  }
  return out;
}
