// The whole model as one ONNX model for generation with a KV cache: prefill a prompt, then one token at a time.
// The LoRA branch is unmerged and its scale is an input, so one loaded model answers as the base (scale 0) or as the
// fine-tuned model without reloading.
// One sequence at a time (the playground's case). Legend: T = new positions this call (virtual tokens included),
//   P = cached past positions, C = hidden, K = kv heads, D = head width, V = vocabulary, r = LoRA rank.
// Inputs: ids [1, T'] int32; prefix [T - T', C] (prompt-tuning virtual tokens before the ids, on the first call;
//   [0, C] otherwise); cos, sin [1, 1, 1, T, D]; mask [1, 1, 1, T, P + T];
//   past_key.{i} [1, K, 1, D, P] (keys transposed: what the scores multiply by), past_value.{i} [1, K, 1, P, D];
//   lora_scale []; lora_A.{i}.{target} [r, in], lora_B.{i}.{target} [out, r].
// Outputs: logits [1, V] of the last position; present_key.{i} [1, K, 1, D, P + T], present_value.{i}
//   [1, K, 1, P + T, D].
// On the CPU the layers are ONNX Runtime's fused operators instead (fusedDecoder.ts, with its own position and cache
// inputs); the embedding, LoRA inputs and head are the same.
import type { ModelSpec, TargetModule } from '../../../model/architecture.js';
import { targetShape } from '../../../model/architecture.js';
import type { TensorEntry } from '../../../model/safetensors.js';
import type { Quantized4bitWeight } from '../../../model/quant/bnb4bit.js';
import { declareDequantTables, dequantize4bit, matmulInt4 } from '../blocks/dequantize4bit.js';
import type { LoraBranch } from '../blocks/loraLinear.js';
import { rmsnormForward } from '../blocks/rmsnorm.js';
import { GraphBuilder, type ModelProto } from '../onnx/graph.js';
import { declareFusedPositions, fusedDecoderLayers } from './fusedDecoder.js';
import { declareLayerWeights, declarePositionContext, layerForward, type LayerWeights } from './layerEmitters.js';

export interface GenerationGraphOptions {
  spec: ModelSpec;
  tensors: Map<string, TensorEntry>;
  externalLocation: (entry: TensorEntry) => string;
  /** LoRA inputs to declare, or null for a base-only model. */
  lora: { rank: number; targets: readonly TargetModule[] } | null;
  /** A 4-bit checkpoint's quantized weights (empty for full precision): dequantized inside the session. */
  quantized: ReadonlyMap<string, Quantized4bitWeight>;
  /** The CPU's fused layers (fusedDecoder.ts) rather than standard operators. */
  fused: boolean;
}

export function buildGenerationGraph(options: GenerationGraphOptions): ModelProto {
  const { spec, tensors, lora } = options;
  const C = spec.hiddenSize;
  const g = new GraphBuilder('generation');
  const external = (name: string) =>
    g.externalInitializer(tensors.get(name)!, options.externalLocation(tensors.get(name)!));
  const frozen = (name: string) => g.frozenWeight(tensors.get(name)!, options.externalLocation(tensors.get(name)!));

  const ids = g.input('ids', 'int32', [1, 'Tids']);
  const prefix = g.input('prefix', 'float', ['Tprefix', C]);
  const loraScale = lora ? g.input('lora_scale', 'float', []) : null;
  // int4 weights are multiplied by as stored (MatMulNBits); nf4/fp4 ones dequantized per call.
  const quantized = options.quantized.size
    ? { weights: options.quantized, tables: declareDequantTables(g), int4Products: true }
    : null;

  // An untied table is gathered as stored (only its rows' pages are read); a tied one is the lm_head's fp32 copy.
  // The lm_head: widened once at load, dequantized at each call when it is nf4/fp4, multiplied by as stored when int4.
  const quantizedHead = quantized?.weights.get('lm_head.weight');
  let lmHead: string | null = null; // [V, C], unless the int4 product reads the stored codes
  let embedded: string; // [T', C]
  const flatIds = g.reshape(ids, [-1]);
  if (spec.tieWordEmbeddings) {
    lmHead = frozen('model.embed_tokens.weight');
    embedded = g.op('Gather', [lmHead, flatIds], { axis: 0 }, 'embedded');
  } else {
    const table = tensors.get('model.embed_tokens.weight')!;
    embedded = g.op('Gather', [external(table.name), flatIds], { axis: 0 }, 'embedded');
    if (table.dtype !== 'F32') embedded = g.cast(embedded, 'float', 'embedded');
    if (quantizedHead?.quantType !== 'int4')
      lmHead = quantizedHead
        ? dequantize4bit(
            g,
            quantizedHead,
            {
              packed: external(quantizedHead.packed.name),
              absmax: external(quantizedHead.absmax.name),
              nestedAbsmax: quantizedHead.nested ? external(quantizedHead.nested.absmax.name) : undefined,
            },
            quantized!.tables,
          )
        : frozen('lm_head.weight');
  }
  const h0 = g.op('Concat', [prefix, embedded], { axis: 0 }, 'h0'); // [T, C]
  const layerWeights = (i: number): LayerWeights => {
    const branches: Partial<Record<TargetModule, LoraBranch>> = {};
    for (const target of lora?.targets ?? []) {
      const shape = targetShape(spec, target);
      branches[target] = {
        a: g.input(`lora_A.${i}.${target}`, 'float', [lora!.rank, shape.in]),
        b: g.input(`lora_B.${i}.${target}`, 'float', [shape.out, lora!.rank]),
        scale: loraScale!,
      };
    }
    return declareLayerWeights(g, spec, i, tensors, options.externalLocation, branches, quantized);
  };
  const normed = options.fused
    ? fusedDecoderLayers(
        g,
        spec,
        h0,
        declareFusedPositions(g, spec),
        layerWeights,
        (i) => ({
          pastKey: g.input(`past_key.${i}`, 'float', [1, spec.numKvHeads, 'M', spec.headDim]),
          pastValue: g.input(`past_value.${i}`, 'float', [1, spec.numKvHeads, 'M', spec.headDim]),
        }),
        frozen('model.norm.weight'),
      )
    : standardLayers(g, spec, h0, layerWeights, frozen('model.norm.weight'));
  const logits = lmHead
    ? g.gemm(normed, lmHead, { transB: true }, 'logits')
    : matmulInt4(g, normed, quantizedHead!, external(quantizedHead!.packed.name), external(quantizedHead!.absmax.name));
  g.output(logits, 'logits', 'float', [1, spec.vocabSize]);
  return g.toModel();
}

/** The layers from standard operators, with a KV cache that each step grows by a Concat; returns the last position's
 * final RMSNorm [1, C]. */
function standardLayers(
  g: GraphBuilder,
  spec: ModelSpec,
  h0: string,
  layerWeights: (i: number) => LayerWeights,
  finalNorm: string,
): string {
  const ctx = declarePositionContext(g, spec, 'PT');
  let hidden = h0; // [T, C]
  for (let i = 0; i < spec.numLayers; i++) {
    const weights = layerWeights(i);
    const cache = {
      pastKey: g.input(`past_key.${i}`, 'float', [1, spec.numKvHeads, 1, spec.headDim, 'P']),
      pastValue: g.input(`past_value.${i}`, 'float', [1, spec.numKvHeads, 1, 'P', spec.headDim]),
    };
    const layer = layerForward(g, hidden, weights, ctx, cache);
    hidden = layer.y;
    g.output(layer.present!.pastKey, `present_key.${i}`, 'float', [1, spec.numKvHeads, 1, spec.headDim, 'PT']);
    g.output(layer.present!.pastValue, `present_value.${i}`, 'float', [1, spec.numKvHeads, 1, 'PT', spec.headDim]);
  }
  // Only the last position needs logits: the norm and the [C, V] head run on one row, not T.
  const last = g.op(
    'Slice',
    [hidden, g.constantInt64([-1]), g.constantInt64([2 ** 31 - 1]), g.constantInt64([0])],
    {},
    'last',
  ); // [1, C]
  return rmsnormForward(g, last, finalNorm, spec.rmsNormEps).y;
}
