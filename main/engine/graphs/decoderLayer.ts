// One decoder layer as one ONNX model: an If on the boolean input `forward`.
//   then: the layer forward, y = x + attn(norm(x)); y += mlp(norm(y)).
//   else: the layer backward from dy to dx and to every LoRA A and B. With gradient checkpointing the else branch
//         recomputes the forward from x first; without, it reads the activations the then branch returned.
// Both branches read the same frozen weights (outer-scope initializers whose bytes stay in the .safetensors file),
// so one session per layer holds one copy of them and at most one layer's working set is alive at a time.
// Legend: B = batch, T = sequence, N = B * T tokens, C = hidden, H = query heads, K = kv heads, G = H / K,
//   D = head width, I = MLP width, r = LoRA rank. Activations enter and leave as [N, C].
import { type ModelSpec, type TargetModule, layerWeightNames, targetShape } from '../../model/architecture.js';
import type { TensorEntry } from '../../model/safetensors.js';
import { attentionBackward, attentionForward, type AttentionSaved } from '../blocks/attention.js';
import { loraLinearBackward, loraLinearForward, type FrozenLinear, type LoraBranch, type LoraLinearSaved } from '../blocks/loraLinear.js';
import { mlpBackward, mlpForward, type MlpSaved, type MlpWeights } from '../blocks/mlp.js';
import { rmsnormBackward, rmsnormForward, type RmsnormSaved } from '../blocks/rmsnorm.js';
import { ropeBackward, ropeForward, type RopeTables } from '../blocks/rope.js';
import { GraphBuilder } from '../onnx/graph.js';

export interface LoraPlan {
  rank: number;
  scale: number;
  targets: readonly TargetModule[];
  /** Dropout masks are fed per target as `lora_mask.<target>` [N, in]. */
  dropout: boolean;
}

export interface DecoderLayerGraphOptions {
  spec: ModelSpec;
  layerIndex: number;
  tensors: Map<string, TensorEntry>;
  /** Path of a checkpoint file relative to the folder the .onnx file will be written to. */
  externalLocation: (entry: TensorEntry) => string;
  lora: LoraPlan;
  gradientCheckpointing: boolean;
}

export interface DecoderLayerGraph {
  model: Uint8Array;
  /** What outputs aux_0.. hold after a forward call: saved activations (empty with checkpointing). */
  forwardAux: number;
  /** What outputs aux_0.. hold after a backward call: `<target>.A` / `<target>.B` gradients. */
  gradNames: string[];
}

interface LayerWeights {
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

interface LayerContext {
  spec: ModelSpec;
  rope: RopeTables;
  mask: string; // [B or 1, 1, 1, T, T] additive
  shapeQ: string; // int64 [5]: [-1, T, K, G, D]
  shapeKv: string; // int64 [5]: [-1, T, K, 1, D]
}

interface LayerSaved {
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

function layerForward(g: GraphBuilder, x: string, w: LayerWeights, ctx: LayerContext): { y: string; saved: LayerSaved } {
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
  const attention = attentionForward(g, ropeForward(g, q5, ctx.rope), ropeForward(g, k5, ctx.rope), v5, ctx.mask, spec.headDim);
  const attnFlat = g.reshape(g.transpose(attention.out, TOKENS_FIRST), [-1, spec.numHeads * spec.headDim]); // [N, H*D]
  const o = loraLinearForward(g, attnFlat, w.o, w.lora.o_proj); // [N, C]
  const afterAttention = g.add(x, o.y, 'resid_attn'); // [N, C]
  const postNorm = rmsnormForward(g, afterAttention, w.postNorm, spec.rmsNormEps);
  const mlp = mlpForward(g, postNorm.y, w.mlp); // [N, C]
  return {
    y: g.add(afterAttention, mlp.y, 'resid_mlp'),
    saved: { inputNorm: inputNorm.saved, qLora: q.saved, kLora: k.saved, vLora: v.saved, qNorm, kNorm, attention: attention.saved, oLora: o.saved, postNorm: postNorm.saved, mlp: mlp.saved },
  };
}

function layerBackward(g: GraphBuilder, dy: string, saved: LayerSaved, w: LayerWeights, ctx: LayerContext): { dx: string; grads: Map<string, string> } {
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
  const attention = attentionBackward(g, g.transpose(g.reshape(o.dx, ctx.shapeQ), HEADS_FIRST), saved.attention, spec.headDim);
  let dq5 = ropeBackward(g, attention.dq, ctx.rope); // [B, K, G, T, D]
  let dk5 = ropeBackward(g, attention.dk, ctx.rope); // [B, K, 1, T, D]
  if (w.qNorm && w.kNorm && saved.qNorm && saved.kNorm) {
    dq5 = rmsnormBackward(g, dq5, saved.qNorm, w.qNorm);
    dk5 = rmsnormBackward(g, dk5, saved.kNorm, w.kNorm);
  }
  const kvWidth = spec.numKvHeads * spec.headDim;
  const q = loraLinearBackward(g, g.reshape(g.transpose(dq5, TOKENS_FIRST), [-1, spec.numHeads * spec.headDim]), w.q, w.lora.q_proj, saved.qLora);
  const k = loraLinearBackward(g, g.reshape(g.transpose(dk5, TOKENS_FIRST), [-1, kvWidth]), w.k, w.lora.k_proj, saved.kLora);
  const v = loraLinearBackward(g, g.reshape(g.transpose(attention.dv, TOKENS_FIRST), [-1, kvWidth]), w.v, w.lora.v_proj, saved.vLora);
  keep('q_proj', q);
  keep('k_proj', k);
  keep('v_proj', v);
  const dNormed = g.add(g.add(q.dx, k.dx), v.dx); // [N, C]
  return { dx: g.add(dAfterAttention, rmsnormBackward(g, dNormed, saved.inputNorm, w.inputNorm), 'd_layer_in'), grads };
}

/** Every value name inside a nested saved-activation record, in a stable order. */
function leaves(record: unknown, into: string[] = []): string[] {
  if (typeof record === 'string') into.push(record);
  else if (record && typeof record === 'object') for (const value of Object.values(record)) leaves(value, into);
  return into;
}

function renameLeaves<T>(record: T, rename: (value: string) => string): T {
  if (typeof record === 'string') return rename(record) as T;
  if (!record || typeof record !== 'object') return record;
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, renameLeaves(value, rename)])) as T;
}

export function buildDecoderLayerGraph(options: DecoderLayerGraphOptions): DecoderLayerGraph {
  const { spec, lora } = options;
  const g = new GraphBuilder(`decoder_layer_${options.layerIndex}`);
  const names = layerWeightNames(spec, options.layerIndex);
  const weight = (key: string) => {
    const entry = options.tensors.get(names[key]);
    if (!entry) throw new Error(`weight ${names[key]} missing`);
    return g.externalInitializer(entry, options.externalLocation(entry));
  };

  const forward = g.input('forward', 'bool', []);
  const x = g.input('x', 'float', ['N', spec.hiddenSize]);
  const dy = g.input('dy', 'float', null);
  // Position tables and the attention mask broadcast over heads: one row for every sequence when all start at
  // position 0 under a causal mask, one per sequence when packed samples restart positions and block attention.
  const cos = g.input('cos', 'float', ['P', 1, 1, 'T', spec.headDim]);
  const sin = g.input('sin', 'float', ['P', 1, 1, 'T', spec.headDim]);
  const mask = g.input('mask', 'float', ['P', 1, 1, 'T', 'T']);

  const half = spec.headDim / 2;
  const signs = g.constantFloat([...Array(half).fill(-1), ...Array(half).fill(1)], [spec.headDim], 'rope_signs');
  const seqLen = g.op('Slice', [g.op('Shape', [cos]), g.constantInt64([3]), g.constantInt64([4])], {}, 'seq_len');
  const group = spec.numHeads / spec.numKvHeads;
  const ctx: LayerContext = {
    spec,
    rope: { cos, sinSigned: g.mul(sin, signs, 'sin_signed'), headDim: spec.headDim },
    mask,
    shapeQ: g.op('Concat', [g.constantInt64([-1]), seqLen, g.constantInt64([spec.numKvHeads, group, spec.headDim])], { axis: 0 }, 'shape_q'),
    shapeKv: g.op('Concat', [g.constantInt64([-1]), seqLen, g.constantInt64([spec.numKvHeads, 1, spec.headDim])], { axis: 0 }, 'shape_kv'),
  };

  const loraBranches: Partial<Record<TargetModule, LoraBranch>> = {};
  for (const target of lora.targets) {
    const shape = targetShape(spec, target);
    loraBranches[target] = {
      a: g.input(`lora_A.${target}`, 'float', [lora.rank, shape.in]),
      b: g.input(`lora_B.${target}`, 'float', [shape.out, lora.rank]),
      scale: lora.scale,
      mask: lora.dropout ? g.input(`lora_mask.${target}`, 'float', ['N', shape.in]) : undefined,
    };
  }
  const linear = (key: string, biasKey?: string): FrozenLinear => ({ weight: weight(key), bias: biasKey && names[biasKey] ? weight(biasKey) : undefined });
  const w: LayerWeights = {
    inputNorm: weight('inputNorm'),
    postNorm: weight('postNorm'),
    q: linear('q', 'qBias'),
    k: linear('k', 'kBias'),
    v: linear('v', 'vBias'),
    o: linear('o', 'oBias'),
    qNorm: spec.qkNorm ? weight('qNorm') : undefined,
    kNorm: spec.qkNorm ? weight('kNorm') : undefined,
    mlp: { gate: linear('gate'), up: linear('up'), down: linear('down'), lora: { gate: loraBranches.gate_proj, up: loraBranches.up_proj, down: loraBranches.down_proj } },
    lora: loraBranches,
  };

  const thenBranch = g.subgraph('layer_forward');
  const fwd = layerForward(thenBranch, x, w, ctx);
  const thenOutputs = [fwd.y];
  let savedForBackward: LayerSaved | null = null;
  if (!options.gradientCheckpointing) {
    // Without checkpointing every activation the backward reads leaves the forward call and comes back as an input.
    const unique = [...new Set(leaves(fwd.saved))];
    thenOutputs.push(...unique);
    const inputFor = new Map(unique.map((value, i) => [value, g.input(`saved_${i}`, 'float', null)]));
    savedForBackward = renameLeaves(fwd.saved, (value) => inputFor.get(value)!);
  }

  const elseBranch = g.subgraph('layer_backward');
  const saved = savedForBackward ?? layerForward(elseBranch, x, w, ctx).saved;
  const bwd = layerBackward(elseBranch, dy, saved, w, ctx);
  const gradNames = [...bwd.grads.keys()];
  const elseOutputs = [bwd.dx, ...bwd.grads.values()];

  // If requires both branches to return as many outputs: pad the shorter with a 1-element zero.
  const outputCount = Math.max(thenOutputs.length, elseOutputs.length);
  for (const [branch, outputs] of [[thenBranch, thenOutputs], [elseBranch, elseOutputs]] as const) {
    const padded = [...outputs];
    while (padded.length < outputCount) padded.push(branch.constantFloat([0], [1], 'unused'));
    padded.forEach((value, i) => branch.output(value, `${branch.name}_${i}`));
  }
  const results = g.node('If', [forward], { then_branch: thenBranch, else_branch: elseBranch }, outputCount, 'layer');
  g.output(results[0], 'hidden', 'float', ['N', spec.hiddenSize]);
  results.slice(1).forEach((value, i) => g.output(value, `aux_${i}`));
  return { model: g.toModelBytes(), forwardAux: thenOutputs.length - 1, gradNames };
}
