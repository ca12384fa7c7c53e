// One decoder layer as one ONNX model: an If on the boolean input `forward`.
//   then: the layer forward, y = x + attn(norm(x)); y += mlp(norm(y)).
//   else: the layer backward from dy to dx and to every LoRA A and B. With gradient checkpointing the else branch
//         recomputes the forward from x first; without, it reads the activations the then branch returned.
// Both branches read the same frozen weights (outer-scope initializers whose bytes stay in the .safetensors file),
// so one session per layer holds one copy of them and at most one layer's working set is alive at a time. 16-bit and
// 4-bit projections stay as stored; a call widens or dequantizes one next to each product that reads it.
// Legend: B = batch, T = sequence, N = B * T tokens, C = hidden, H = query heads, K = kv heads, G = H / K,
//   D = head width, I = MLP width, r = LoRA rank. Activations enter and leave as [N, C].
import { type ModelSpec, type TargetModule, targetShape } from '../../../model/architecture.js';
import type { TensorEntry } from '../../../model/safetensors.js';
import type { Quantized4bitWeight } from '../../../model/quant/bnb4bit.js';
import { declareDequantTables } from '../blocks/dequantize4bit.js';
import type { LoraBranch } from '../blocks/loraLinear.js';
import {
  declareLayerWeights,
  declarePositionContext,
  layerBackward,
  layerForward,
  type LayerSaved,
} from './layerEmitters.js';
import { GraphBuilder, type ModelProto } from '../onnx/graph.js';

export interface LoraPlan {
  rank: number;
  scale: number;
  targets: readonly TargetModule[];
  /** Dropout masks are fed per target as `lora_mask.<target>` [N, in]. */
  dropout: boolean;
}

export interface TrainingLayerGraphOptions {
  spec: ModelSpec;
  layerIndex: number;
  tensors: Map<string, TensorEntry>;
  /** Path of a checkpoint file relative to the folder the .onnx file will be written to. */
  externalLocation: (entry: TensorEntry) => string;
  lora: LoraPlan;
  gradientCheckpointing: boolean;
  /** A 4-bit checkpoint's quantized weights (empty for full precision): dequantized inside the session. */
  quantized: ReadonlyMap<string, Quantized4bitWeight>;
}

export interface TrainingLayerGraph {
  model: ModelProto;
  /** What outputs aux_0.. hold after a forward call: saved activations (empty with checkpointing). */
  forwardAux: number;
  /** What outputs aux_0.. hold after a backward call: `<target>.A` / `<target>.B` gradients. */
  gradNames: string[];
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

export function buildTrainingLayerGraph(options: TrainingLayerGraphOptions): TrainingLayerGraph {
  const { spec, lora } = options;
  const g = new GraphBuilder(`decoder_layer_${options.layerIndex}`, { keep16bit: true });
  const forward = g.input('forward', 'bool', []);
  const x = g.input('x', 'float', ['N', spec.hiddenSize]);
  const dy = g.input('dy', 'float', null);
  // Position tables and the attention mask broadcast over heads: one row for every sequence when all start at
  // position 0 under a causal mask, one per sequence when packed samples restart positions and block attention.
  const ctx = declarePositionContext(g, spec, 'T');

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
  const quantized = options.quantized.size
    ? { weights: options.quantized, tables: declareDequantTables(g), int4Products: false }
    : null;
  const w = declareLayerWeights(
    g,
    spec,
    options.layerIndex,
    options.tensors,
    options.externalLocation,
    loraBranches,
    quantized,
  );

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
  for (const [branch, outputs] of [
    [thenBranch, thenOutputs],
    [elseBranch, elseOutputs],
  ] as const) {
    const padded = [...outputs];
    while (padded.length < outputCount) padded.push(branch.constantFloat([0], [1], 'unused'));
    padded.forEach((value, i) => branch.output(value, `${branch.name}_${i}`));
  }
  const results = g.node('If', [forward], { then_branch: thenBranch, else_branch: elseBranch }, outputCount, 'layer');
  g.output(results[0], 'hidden', 'float', ['N', spec.hiddenSize]);
  results.slice(1).forEach((value, i) => g.output(value, `aux_${i}`));
  return { model: g.toModel(), forwardAux: thenOutputs.length - 1, gradNames };
}
