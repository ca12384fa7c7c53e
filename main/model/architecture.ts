// The model is data: one description of a Llama-family decoder, with each architecture's differences as fields.
// llama (SmolLM2, Llama 3.x), mistral, qwen2 (q/k/v bias), qwen3 (per-head q/k RMSNorm).
import { UserError } from '../../shared/errors.js';
import { LORA_TARGETS, type LoraTarget } from '../../shared/training.js';

export type ModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3';
export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelSpec {
  modelType: ModelType;
  /** C: residual stream width. */
  hiddenSize: number;
  /** I: MLP inner width. */
  intermediateSize: number;
  numLayers: number;
  /** H: query heads. */
  numHeads: number;
  /** K: key/value heads (grouped-query attention when K < H). */
  numKvHeads: number;
  /** D: per-head width; config `head_dim` when given, else C / H. */
  headDim: number;
  /** V: vocabulary size. */
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  maxPositionEmbeddings: number;
  /** lm_head shares model.embed_tokens.weight. */
  tieWordEmbeddings: boolean;
  /** q_proj, k_proj and v_proj carry a bias (qwen2, or `attention_bias`). */
  qkvBias: boolean;
  /** o_proj carries a bias too (`attention_bias` on llama and qwen3). */
  outputBias: boolean;
  /** RMSNorm over D applied to each query and key head before RoPE (qwen3). */
  qkNorm: boolean;
}

/**
 * The largest value each size field may hold: well above every real model (vocabularies reach ~256k, contexts 10M),
 * so that an absurd config.json is refused before anything sized by it (weight tables, graphs, plans) is built.
 */
export const CONFIG_LIMITS = {
  num_hidden_layers: 1024,
  hidden_size: 65_536,
  intermediate_size: 262_144,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 4096,
  vocab_size: 1_048_576,
  max_position_embeddings: 16_777_216,
} as const;
type SizeField = keyof typeof CONFIG_LIMITS;

function field(config: Record<string, unknown>, name: string, file: string, fallback?: number): number {
  const given = Object.hasOwn(config, name) ? config[name] : undefined;
  const value = given ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new UserError(`${file}: field "${name}" must be a number, found ${describeConfigValue(given)}`);
  }
  return value;
}

function positiveNumber(config: Record<string, unknown>, name: string, file: string, fallback?: number): number {
  const value = field(config, name, file, fallback);
  if (value <= 0) throw new UserError(`${file}: field "${name}" must be positive, found ${value}`);
  return value;
}

function size(config: Record<string, unknown>, name: SizeField, file: string, fallback?: number): number {
  const value = field(config, name, file, fallback);
  if (!Number.isInteger(value) || value <= 0)
    throw new UserError(`${file}: field "${name}" must be a positive integer, found ${value}`);
  const limit = CONFIG_LIMITS[name];
  if (value > limit) {
    throw new UserError(`${file}: field "${name}" is ${value}, more than the ${limit} any supported model has`);
  }
  return value;
}

/** A config value for an error message, cut short: the file may hold anything. */
function describeConfigValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Turns a Hugging Face `config.json` object into a ModelSpec; errors name the file and field. */
export function parseModelConfig(config: Record<string, unknown>, file: string): ModelSpec {
  if (!isObject(config)) throw new UserError(`${file}: expected a JSON object, found ${describeConfigValue(config)}`);
  const modelType = config.model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    const supported = SUPPORTED_MODEL_TYPES.join(', ');
    throw new UserError(`${file}: field "model_type" is ${describeConfigValue(modelType)}; supported: ${supported}`);
  }
  // Every size first, each within its limit, before any is used.
  const hiddenSize = size(config, 'hidden_size', file);
  const intermediateSize = size(config, 'intermediate_size', file);
  const numLayers = size(config, 'num_hidden_layers', file);
  const numHeads = size(config, 'num_attention_heads', file);
  const numKvHeads = size(config, 'num_key_value_heads', file, numHeads);
  const vocabSize = size(config, 'vocab_size', file);
  const maxPositionEmbeddings = size(config, 'max_position_embeddings', file, 2048);
  if (numHeads % numKvHeads !== 0)
    throw new UserError(
      `${file}: "num_attention_heads" ${numHeads} is not a multiple of "num_key_value_heads" ${numKvHeads}`,
    );
  const headDim = config.head_dim == null ? hiddenSize / numHeads : size(config, 'head_dim', file);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw new UserError(`${file}: head dimension ${headDim} must be an even integer`);
  // Real models keep the attention width H * D within a few times C (Qwen3: 2 C).
  if (numHeads * headDim > 8 * hiddenSize) {
    const width = `"num_attention_heads" ${numHeads} x "head_dim" ${headDim}`;
    throw new UserError(`${file}: ${width} is more than 8 times "hidden_size" ${hiddenSize}`);
  }

  let ropeScaling: Llama3RopeScaling | null = null;
  const scaling = config.rope_scaling;
  if (scaling != null) {
    if (!isObject(scaling)) {
      const found = describeConfigValue(scaling);
      throw new UserError(`${file}: field "rope_scaling" must be an object or null, found ${found}`);
    }
    const kind = scaling.rope_type ?? scaling.type;
    if (kind === 'llama3') {
      const where = `${file} rope_scaling`;
      ropeScaling = {
        factor: positiveNumber(scaling, 'factor', where),
        lowFreqFactor: positiveNumber(scaling, 'low_freq_factor', where),
        highFreqFactor: positiveNumber(scaling, 'high_freq_factor', where),
        originalMaxPositionEmbeddings: positiveNumber(scaling, 'original_max_position_embeddings', where),
      };
    } else if (kind !== 'default') {
      const type = describeConfigValue(kind);
      throw new UserError(`${file}: rope_scaling type ${type} is not supported (supported: llama3, default)`);
    }
  }

  const attentionBias = config.attention_bias === true;
  return {
    modelType: modelType as ModelType,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps: positiveNumber(config, 'rms_norm_eps', file, 1e-6),
    ropeTheta: positiveNumber(config, 'rope_theta', file, 10000),
    ropeScaling,
    maxPositionEmbeddings,
    tieWordEmbeddings: config.tie_word_embeddings === true,
    // As transformers: qwen2 always has q/k/v bias and no o_proj bias; llama and qwen3 bias all four projections
    // when attention_bias says so; mistral never has attention biases.
    qkvBias: modelType === 'qwen2' || (attentionBias && modelType !== 'mistral'),
    outputBias: attentionBias && (modelType === 'llama' || modelType === 'qwen3'),
    qkNorm: modelType === 'qwen3',
  };
}

/** RoPE inverse frequencies [D/2], with Llama 3 frequency scaling when configured (as transformers computes them). */
export function ropeInverseFrequencies(spec: ModelSpec): Float64Array {
  const half = spec.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / spec.ropeTheta ** ((2 * i) / spec.headDim);
  const s = spec.ropeScaling;
  if (!s) return inv;
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowFreqWavelen) inv[i] = inv[i] / s.factor;
    else if (wavelen >= highFreqWavelen) {
      const smooth =
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
    }
  }
  return inv;
}

/** cos and sin tables [T, D] for positions 0..T-1, halves duplicated as in transformers' rotate_half convention. */
export function ropeTables(spec: ModelSpec, seqLen: number): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInverseFrequencies(spec);
  const d = spec.headDim;
  const half = d / 2;
  const cos = new Float32Array(seqLen * d);
  const sin = new Float32Array(seqLen * d);
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < half; i++) {
      // transformers computes t * inv_freq in fp32 before cos/sin; do the same for bit-level agreement.
      const angle = Math.fround(t * Math.fround(inv[i]));
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * d + i] = cos[t * d + half + i] = c;
      sin[t * d + i] = sin[t * d + half + i] = s;
    }
  }
  return { cos, sin };
}

/** Names of the frozen weights of decoder layer `i`, as stored in Hugging Face checkpoints. */
export function layerWeightNames(spec: ModelSpec, i: number): Record<string, string> {
  const p = `model.layers.${i}`;
  const names: Record<string, string> = {
    inputNorm: `${p}.input_layernorm.weight`,
    q: `${p}.self_attn.q_proj.weight`,
    k: `${p}.self_attn.k_proj.weight`,
    v: `${p}.self_attn.v_proj.weight`,
    o: `${p}.self_attn.o_proj.weight`,
    postNorm: `${p}.post_attention_layernorm.weight`,
    gate: `${p}.mlp.gate_proj.weight`,
    up: `${p}.mlp.up_proj.weight`,
    down: `${p}.mlp.down_proj.weight`,
  };
  if (spec.qkvBias)
    Object.assign(names, {
      qBias: `${p}.self_attn.q_proj.bias`,
      kBias: `${p}.self_attn.k_proj.bias`,
      vBias: `${p}.self_attn.v_proj.bias`,
    });
  if (spec.outputBias) names.oBias = `${p}.self_attn.o_proj.bias`;
  if (spec.qkNorm)
    Object.assign(names, { qNorm: `${p}.self_attn.q_norm.weight`, kNorm: `${p}.self_attn.k_norm.weight` });
  return names;
}

/** Expected shape of each frozen weight, used to check a checkpoint before any graph is built. */
export function expectedShapes(spec: ModelSpec): Map<string, number[]> {
  const { hiddenSize: C, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: D, vocabSize: V } = spec;
  const shapes = new Map<string, number[]>([
    ['model.embed_tokens.weight', [V, C]],
    ['model.norm.weight', [C]],
  ]);
  if (!spec.tieWordEmbeddings) shapes.set('lm_head.weight', [V, C]);
  for (let i = 0; i < spec.numLayers; i++) {
    const n = layerWeightNames(spec, i);
    shapes.set(n.inputNorm, [C]).set(n.postNorm, [C]);
    shapes
      .set(n.q, [H * D, C])
      .set(n.k, [K * D, C])
      .set(n.v, [K * D, C])
      .set(n.o, [C, H * D]);
    shapes.set(n.gate, [I, C]).set(n.up, [I, C]).set(n.down, [C, I]);
    if (spec.qkvBias)
      shapes
        .set(n.qBias, [H * D])
        .set(n.kBias, [K * D])
        .set(n.vBias, [K * D]);
    if (spec.outputBias) shapes.set(n.oBias, [C]);
    if (spec.qkNorm) shapes.set(n.qNorm, [D]).set(n.kNorm, [D]);
  }
  return shapes;
}

/** LoRA target modules: which projection, where it lives, and its [out, in] shape. */
export const ATTENTION_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const MLP_TARGETS = ['gate_proj', 'up_proj', 'down_proj'] as const;
export type TargetModule = LoraTarget;
export const ALL_TARGETS: readonly TargetModule[] = LORA_TARGETS;

function isTargetModule(name: string): name is TargetModule {
  return (ALL_TARGETS as readonly string[]).includes(name);
}

function unknownTarget(name: unknown): string {
  return `unknown LoRA target ${describeConfigValue(name)}; allowed: ${ALL_TARGETS.join(', ')}`;
}

/** Known targets in ALL_TARGETS order, each once; an unknown name (`foo`, `__proto__`) is a UserError. */
export function checkedTargets(names: readonly string[], where: string): TargetModule[] {
  const unknown = names.find((name) => !isTargetModule(name));
  if (unknown !== undefined) throw new UserError(`${where}: ${unknownTarget(unknown)}`);
  return ALL_TARGETS.filter((target) => names.includes(target));
}

export function targetShape(spec: ModelSpec, target: TargetModule): { out: number; in: number } {
  const { hiddenSize: C, intermediateSize: I, numHeads: H, numKvHeads: K, headDim: D } = spec;
  switch (target) {
    case 'q_proj':
      return { out: H * D, in: C };
    case 'k_proj':
      return { out: K * D, in: C };
    case 'v_proj':
      return { out: K * D, in: C };
    case 'o_proj':
      return { out: C, in: H * D };
    case 'gate_proj':
      return { out: I, in: C };
    case 'up_proj':
      return { out: I, in: C };
    case 'down_proj':
      return { out: C, in: I };
    // Callers check names first; a name that slipped through must not come back as undefined.
    default:
      throw new UserError(unknownTarget(target));
  }
}

export function targetParent(target: TargetModule): 'self_attn' | 'mlp' {
  return (ATTENTION_TARGETS as readonly string[]).includes(target) ? 'self_attn' : 'mlp';
}
