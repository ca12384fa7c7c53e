// LoRA weights in memory and as a PEFT adapter folder (adapter_config.json + adapter_model.safetensors) that Python
// PEFT loads unchanged. Keys: base_model.model.model.layers.{i}.{self_attn|mlp}.{target}.lora_{A|B}.weight,
// A [r, in] and B [out, r]; scale alpha / r, or alpha / sqrt(r) with rsLoRA.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import type { LoraSettings } from '../../shared/training.js';
import { ALL_TARGETS, targetParent, targetShape, type ModelSpec, type TargetModule } from '../model/architecture.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
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
    if (!(ALL_TARGETS as readonly string[]).includes(t)) throw new UserError(`${where}: unknown LoRA target "${t}"; allowed: ${ALL_TARGETS.join(', ')}`);
  }
  return ALL_TARGETS.filter((t) => targets.includes(t));
}

/** PEFT's init: A ~ kaiming_uniform(a = sqrt 5), i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0, so training starts at the base model. */
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

export function saveLoraAdapter(dir: string, weights: LoraWeights, baseModel: string): void {
  const { settings } = weights;
  const tensors: Record<string, TensorToWrite> = {};
  weights.layers.forEach((pairs, layer) => {
    for (const [target, pair] of pairs) {
      tensors[peftKey(layer, target, 'A')] = { dtype: 'F32', shape: [settings.rank, pair.a.length / settings.rank], data: pair.a };
      tensors[peftKey(layer, target, 'B')] = { dtype: 'F32', shape: [pair.b.length / settings.rank, settings.rank], data: pair.b };
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
  if (config.peft_type !== 'LORA') throw new UserError(`${configFile}: field "peft_type" is ${JSON.stringify(config.peft_type)}, expected "LORA"`);
  const rank = config.r;
  const alpha = config.lora_alpha;
  if (typeof rank !== 'number' || rank <= 0 || !Number.isInteger(rank)) throw new UserError(`${configFile}: field "r" must be a positive integer`);
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

  const weightsFile = path.join(dir, 'adapter_model.safetensors');
  const entries = readSafetensorsHeader(weightsFile);
  const layers = Array.from({ length: spec.numLayers }, (_, layer) => {
    const pairs = new Map<TargetModule, LoraPair>();
    for (const target of targets) {
      const { out, in: fanIn } = targetShape(spec, target);
      const read = (matrix: 'A' | 'B', shape: number[]) => {
        const key = peftKey(layer, target, matrix);
        const entry = entries.get(key);
        if (!entry) throw new UserError(`${weightsFile}: tensor "${key}" is missing`);
        if (entry.shape.join(',') !== shape.join(',')) throw new UserError(`${weightsFile}: tensor "${key}" has shape [${entry.shape}], expected [${shape}]`);
        return readTensorF32(entry);
      };
      pairs.set(target, { a: read('A', [rank, fanIn]), b: read('B', [out, rank]) });
    }
    return pairs;
  });
  return { settings, targets, layers };
}
