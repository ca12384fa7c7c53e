// One Llama-family decoder layer, forward and backward, as graph emitters shared by the training graphs
// (trainingLayer.ts) and the generation graph (generation.ts).
// Legend: B = batch, T = sequence (new tokens), P = cached past tokens, N = B * T tokens, C = hidden, H = query heads,
//   K = kv heads, G = H / K, D = head width, I = MLP width, r = LoRA rank. Activations enter and leave as [N, C].
import { type ModelSpec, type TargetModule, layerWeightNames } from '../../../model/architecture.js';
import type { TensorEntry } from '../../../model/safetensors.js';
import type { Quantized4bitWeight } from '../../../model/quant/bnb4bit.js';
import { dequantize4bit, matmulInt4, type DequantTables } from '../blocks/dequantize4bit.js';
import { attend, attentionBackward, attentionForward, type AttentionSaved } from '../blocks/attention.js';
import {
  loraLinearBackward,
  loraLinearForward,
  type FrozenLinear,
  type FrozenWeight,
  type LoraBranch,
  type LoraLinearSaved,
} from '../blocks/loraLinear.js';
import { mlpBackward, mlpForward, type MlpSaved, type MlpWeights } from '../blocks/mlp.js';
import { rmsnormBackward, rmsnormForward, type RmsnormSaved } from '../blocks/rmsnorm.js';
import { ropeBackward, ropeForward, type RopeTables } from '../blocks/rope.js';
import type { GraphBuilder } from '../onnx/graph.js';

export interface LayerWeights {
  inputNorm: string;
  postNorm: string;
  q: FrozenLinear;
  k: FrozenLinear;
  v: FrozenLinear;
  o: FrozenLinear;
  qNorm?: string;
  kNorm?: string;
  mlp: MlpWeights;
  lora: Partial<Record<TargetModule, LoraBranch>>;
}

export interface LayerContext {
  spec: ModelSpec;
  rope: RopeTables;
  mask: string; // [B or 1, 1, 1, T, T] additive
  shapeQ: string; // int64 [5]: [-1, T, K, G, D]
  shapeKv: string; // int64 [5]: [-1, T, K, 1, D]
}

export interface LayerSaved {
  inputNorm: RmsnormSaved;
  qLora?: LoraLinearSaved;
  kLora?: LoraLinearSaved;
  vLora?: LoraLinearSaved;
  qNorm?: RmsnormSaved;
  kNorm?: RmsnormSaved;
  attention: AttentionSaved;
  oLora?: LoraLinearSaved;
  postNorm: RmsnormSaved;
  mlp: MlpSaved;
}

const HEADS_FIRST = [0, 2, 3, 1, 4]; // [B, T, K, G, D] -> [B, K, G, T, D]
const TOKENS_FIRST = [0, 3, 1, 2, 4]; // [B, K, G, T, D] -> [B, T, K, G, D]
const SWAP_LAST_TWO = [0, 1, 2, 4, 3]; // [B, K, 1, T, D] -> [B, K, 1, D, T]

/**
 * Past keys and values of this layer, for generation with a KV cache: keys transposed [B, K, 1, D, P] (what the
 * scores multiply by, so a step never transposes the whole cache), values [B, K, 1, P, D].
 */
export interface KvCache {
  pastKey: string;
  pastValue: string;
}

export function layerForward(
  g: GraphBuilder,
  x: string,
  w: LayerWeights,
  ctx: LayerContext,
  cache?: KvCache,
): { y: string; saved: LayerSaved; present?: KvCache } {
  const { spec } = ctx;
  const inputNorm = rmsnormForward(g, x, w.inputNorm, spec.rmsNormEps); // [N, C]
  const q = loraLinearForward(g, inputNorm.y, w.q, w.lora.q_proj); // [N, H*D]
  const k = loraLinearForward(g, inputNorm.y, w.k, w.lora.k_proj); // [N, K*D]
  const v = loraLinearForward(g, inputNorm.y, w.v, w.lora.v_proj); // [N, K*D]
  let q5 = g.transpose(g.reshape(q.y, ctx.shapeQ), HEADS_FIRST); // [B, K, G, T, D]
  let k5 = g.transpose(g.reshape(k.y, ctx.shapeKv), HEADS_FIRST); // [B, K, 1, T, D]
  const v5 = g.transpose(g.reshape(v.y, ctx.shapeKv), HEADS_FIRST); // [B, K, 1, T, D]
  let qNorm: RmsnormSaved | undefined;
  let kNorm: RmsnormSaved | undefined;
  if (w.qNorm && w.kNorm) {
    const qn = rmsnormForward(g, q5, w.qNorm, spec.rmsNormEps);
    const kn = rmsnormForward(g, k5, w.kNorm, spec.rmsNormEps);
    [q5, k5, qNorm, kNorm] = [qn.y, kn.y, qn.saved, kn.saved];
  }
  const keys = ropeForward(g, k5, ctx.rope); // [B, K, 1, T, D]
  const queries = ropeForward(g, q5, ctx.rope); // [B, K, G, T, D]
  let attention: { out: string; saved?: AttentionSaved };
  let present: KvCache | undefined;
  if (cache) {
    present = {
      pastKey: g.op('Concat', [cache.pastKey, g.transpose(keys, SWAP_LAST_TWO)], { axis: 4 }, 'present_key'), // [B, K, 1, D, P + T]
      pastValue: g.op('Concat', [cache.pastValue, v5], { axis: 3 }, 'present_value'), // [B, K, 1, P + T, D]
    };
    attention = attend(g, queries, present.pastKey, present.pastValue, ctx.mask, spec.headDim);
  } else {
    attention = attentionForward(g, queries, keys, v5, ctx.mask, spec.headDim);
  }
  const attnFlat = g.reshape(g.transpose(attention.out, TOKENS_FIRST), [-1, spec.numHeads * spec.headDim]); // [N, H*D]
  const o = loraLinearForward(g, attnFlat, w.o, w.lora.o_proj); // [N, C]
  const afterAttention = g.add(x, o.y, 'resid_attn'); // [N, C]
  const postNorm = rmsnormForward(g, afterAttention, w.postNorm, spec.rmsNormEps);
  const mlp = mlpForward(g, postNorm.y, w.mlp); // [N, C]
  return {
    y: g.add(afterAttention, mlp.y, 'resid_mlp'),
    present,
    saved: {
      inputNorm: inputNorm.saved,
      qLora: q.saved,
      kLora: k.saved,
      vLora: v.saved,
      qNorm,
      kNorm,
      attention: attention.saved!,
      oLora: o.saved,
      postNorm: postNorm.saved,
      mlp: mlp.saved,
    },
  };
}

export function layerBackward(
  g: GraphBuilder,
  dy: string,
  saved: LayerSaved,
  w: LayerWeights,
  ctx: LayerContext,
): { dx: string; grads: Map<string, string> } {
  const { spec } = ctx;
  const grads = new Map<string, string>();
  const keep = (target: TargetModule, r: { dA?: string; dB?: string }) => {
    if (r.dA && r.dB) grads.set(`${target}.A`, r.dA).set(`${target}.B`, r.dB);
  };
  // y = a + mlp(norm(a)) with a = x + attn(norm(x)): the residuals pass dy straight through.
  const mlp = mlpBackward(g, dy, saved.mlp, w.mlp);
  for (const [name, r] of Object.entries(mlp.grads)) keep(`${name}_proj` as TargetModule, r);
  const dAfterAttention = g.add(dy, rmsnormBackward(g, mlp.dx, saved.postNorm, w.postNorm)); // [N, C]
  const o = loraLinearBackward(g, dAfterAttention, w.o, w.lora.o_proj, saved.oLora); // dx [N, H*D]
  keep('o_proj', o);
  const attention = attentionBackward(
    g,
    g.transpose(g.reshape(o.dx, ctx.shapeQ), HEADS_FIRST),
    saved.attention,
    spec.headDim,
  );
  let dq5 = ropeBackward(g, attention.dq, ctx.rope); // [B, K, G, T, D]
  let dk5 = ropeBackward(g, attention.dk, ctx.rope); // [B, K, 1, T, D]
  if (w.qNorm && w.kNorm && saved.qNorm && saved.kNorm) {
    dq5 = rmsnormBackward(g, dq5, saved.qNorm, w.qNorm);
    dk5 = rmsnormBackward(g, dk5, saved.kNorm, w.kNorm);
  }
  const kvWidth = spec.numKvHeads * spec.headDim;
  const q = loraLinearBackward(
    g,
    g.reshape(g.transpose(dq5, TOKENS_FIRST), [-1, spec.numHeads * spec.headDim]),
    w.q,
    w.lora.q_proj,
    saved.qLora,
  );
  const k = loraLinearBackward(
    g,
    g.reshape(g.transpose(dk5, TOKENS_FIRST), [-1, kvWidth]),
    w.k,
    w.lora.k_proj,
    saved.kLora,
  );
  const v = loraLinearBackward(
    g,
    g.reshape(g.transpose(attention.dv, TOKENS_FIRST), [-1, kvWidth]),
    w.v,
    w.lora.v_proj,
    saved.vLora,
  );
  keep('q_proj', q);
  keep('k_proj', k);
  keep('v_proj', v);
  const dNormed = g.add(g.add(q.dx, k.dx), v.dx); // [N, C]
  return { dx: g.add(dAfterAttention, rmsnormBackward(g, dNormed, saved.inputNorm, w.inputNorm), 'd_layer_in'), grads };
}

/** A 4-bit checkpoint's quantized weights and the graph's dequantization table inputs. */
export interface QuantizedLayerWeights {
  weights: ReadonlyMap<string, Quantized4bitWeight>;
  tables: DequantTables;
  /** int4 weights multiplied by as stored (MatMulNBits), not dequantized: the forward-only generation graph. */
  int4Products: boolean;
}

/**
 * Declares layer `layerIndex`'s frozen weights as external initializers of `g` and pairs them with LoRA branches.
 * A 4-bit projection is dequantized, and a 16-bit one widened, next to each product that reads it (in the forward,
 * the recompute and the backward alike): at most one projection's fp32 copy is alive at a time, not the layer's.
 */
export function declareLayerWeights(
  g: GraphBuilder,
  spec: ModelSpec,
  layerIndex: number,
  tensors: Map<string, TensorEntry>,
  externalLocation: (entry: TensorEntry) => string,
  lora: Partial<Record<TargetModule, LoraBranch>>,
  quantized: QuantizedLayerWeights | null = null,
): LayerWeights {
  const names = layerWeightNames(spec, layerIndex);
  const external = (entry: TensorEntry) => g.externalInitializer(entry, externalLocation(entry));
  const stored = (key: string) => {
    const entry = tensors.get(names[key]);
    if (!entry) throw new Error(`weight ${names[key]} missing`);
    return entry;
  };
  const weight = (key: string) => g.frozenWeight(stored(key), externalLocation(stored(key)));
  // A projection that is not fp32 becomes fp32 where each product reads it, in whichever branch that is.
  const projection = (key: string): FrozenWeight => {
    const q = quantized?.weights.get(names[key]);
    if (q) {
      const packed = external(q.packed);
      const absmax = external(q.absmax);
      const nestedAbsmax = q.nested ? external(q.nested.absmax) : undefined;
      const rows = { start: 0, end: q.shape[0] };
      return (b, again) =>
        dequantize4bit(b, q, { packed, absmax, nestedAbsmax }, quantized!.tables, { ...rows, distinct: again });
    }
    const entry = stored(key);
    if (entry.dtype === 'F32') return weight(key);
    const value = external(entry);
    return (b, again) => b.widen(value, entry.shape, again);
  };
  const linear = (key: string, biasKey?: string): FrozenLinear => {
    const bias = biasKey && names[biasKey] ? weight(biasKey) : undefined;
    const q = quantized?.weights.get(names[key]);
    if (q?.quantType === 'int4' && quantized!.int4Products) {
      const [packed, scales] = [external(q.packed), external(q.absmax)];
      return { product: (b, x) => matmulInt4(b, x, q, packed, scales), bias };
    }
    return { weight: projection(key), bias };
  };
  return {
    inputNorm: weight('inputNorm'),
    postNorm: weight('postNorm'),
    q: linear('q', 'qBias'),
    k: linear('k', 'kBias'),
    v: linear('v', 'vBias'),
    o: linear('o', 'oBias'),
    qNorm: spec.qkNorm ? weight('qNorm') : undefined,
    kNorm: spec.qkNorm ? weight('kNorm') : undefined,
    mlp: {
      gate: linear('gate'),
      up: linear('up'),
      down: linear('down'),
      lora: { gate: lora.gate_proj, up: lora.up_proj, down: lora.down_proj },
    },
    lora,
  };
}

/**
 * The position inputs every layer shares: RoPE tables cos/sin [B or 1, 1, 1, T, D] for the tokens being processed and
 * the additive mask [B or 1, 1, 1, T, P + T], plus the reshape targets derived from T.
 */
export function declarePositionContext(g: GraphBuilder, spec: ModelSpec, maskKeys: string): LayerContext {
  const cos = g.input('cos', 'float', ['R', 1, 1, 'T', spec.headDim]);
  const sin = g.input('sin', 'float', ['R', 1, 1, 'T', spec.headDim]);
  const mask = g.input('mask', 'float', ['R', 1, 1, 'T', maskKeys]);
  const half = spec.headDim / 2;
  const signs = g.constantFloat([...Array(half).fill(-1), ...Array(half).fill(1)], [spec.headDim], 'rope_signs');
  const seqLen = g.op('Slice', [g.op('Shape', [cos]), g.constantInt64([3]), g.constantInt64([4])], {}, 'seq_len');
  const group = spec.numHeads / spec.numKvHeads;
  return {
    spec,
    rope: { cos, sinSigned: g.mul(sin, signs, 'sin_signed'), headDim: spec.headDim },
    mask,
    shapeQ: g.op(
      'Concat',
      [g.constantInt64([-1]), seqLen, g.constantInt64([spec.numKvHeads, group, spec.headDim])],
      { axis: 0 },
      'shape_q',
    ),
    shapeKv: g.op(
      'Concat',
      [g.constantInt64([-1]), seqLen, g.constantInt64([spec.numKvHeads, 1, spec.headDim])],
      { axis: 0 },
      'shape_kv',
    ),
  };
}
