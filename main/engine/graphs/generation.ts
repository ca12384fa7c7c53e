// The whole model as one ONNX model for generation with a KV cache: prefill a prompt, then one token at a time.
// The LoRA branch is unmerged and its scale is an input, so one loaded model answers as the base (scale 0) or as the
// fine-tuned model without reloading.
// Legend: B = rows, T = new tokens this call, P = cached past tokens, C = hidden, K = kv heads, D = head width,
//   V = vocabulary, r = LoRA rank.
// Inputs: ids [B, T] int32; cos, sin [1, 1, 1, T, D]; mask [1, 1, 1, T, P + T]; past_key.{i}, past_value.{i}
//   [B, K, 1, P, D]; lora_scale []; lora_A.{i}.{target} [r, in], lora_B.{i}.{target} [out, r].
// Outputs: logits [B, V] of each row's last token; present_key.{i}, present_value.{i} [B, K, 1, P + T, D].
import type { ModelSpec, TargetModule } from '../../model/architecture.js';
import { targetShape } from '../../model/architecture.js';
import type { TensorEntry } from '../../model/safetensors.js';
import type { LoraBranch } from '../blocks/loraLinear.js';
import { rmsnormForward } from '../blocks/rmsnorm.js';
import { GraphBuilder } from '../onnx/graph.js';
import { declareLayerWeights, declarePositionContext, layerForward } from './decoderBlock.js';

export interface GenerationGraphOptions {
  spec: ModelSpec;
  tensors: Map<string, TensorEntry>;
  externalLocation: (entry: TensorEntry) => string;
  /** LoRA inputs to declare, or null for a base-only model. */
  lora: { rank: number; targets: readonly TargetModule[] } | null;
}

export function buildGenerationGraph(options: GenerationGraphOptions): Uint8Array {
  const { spec, tensors, lora } = options;
  const C = spec.hiddenSize;
  const g = new GraphBuilder('generation');
  const external = (name: string) => g.externalInitializer(tensors.get(name)!, options.externalLocation(tensors.get(name)!));
  const embedding = external('model.embed_tokens.weight'); // [V, C]
  const lmHead = spec.tieWordEmbeddings ? embedding : external('lm_head.weight'); // [V, C]

  const ids = g.input('ids', 'int32', ['B', 'T']);
  const ctx = declarePositionContext(g, spec, 'PT');
  const loraScale = lora ? g.input('lora_scale', 'float', []) : null;

  let hidden = g.op('Gather', [embedding, g.reshape(ids, [-1])], { axis: 0 }, 'h0'); // [N, C]
  for (let i = 0; i < spec.numLayers; i++) {
    const branches: Partial<Record<TargetModule, LoraBranch>> = {};
    for (const target of lora?.targets ?? []) {
      const shape = targetShape(spec, target);
      branches[target] = {
        a: g.input(`lora_A.${i}.${target}`, 'float', [lora!.rank, shape.in]),
        b: g.input(`lora_B.${i}.${target}`, 'float', [shape.out, lora!.rank]),
        scale: loraScale!,
      };
    }
    const weights = declareLayerWeights(g, spec, i, tensors, options.externalLocation, branches);
    const cache = {
      pastKey: g.input(`past_key.${i}`, 'float', ['B', spec.numKvHeads, 1, 'P', spec.headDim]),
      pastValue: g.input(`past_value.${i}`, 'float', ['B', spec.numKvHeads, 1, 'P', spec.headDim]),
    };
    const layer = layerForward(g, hidden, weights, ctx, cache);
    hidden = layer.y;
    g.output(layer.present!.pastKey, `present_key.${i}`, 'float', ['B', spec.numKvHeads, 1, 'PT', spec.headDim]);
    g.output(layer.present!.pastValue, `present_value.${i}`, 'float', ['B', spec.numKvHeads, 1, 'PT', spec.headDim]);
  }

  // Only each row's last position needs logits: the norm and the [C, V] head run on B rows, not B * T.
  const seqLen = g.op('Slice', [g.op('Shape', [ids]), g.constantInt64([1]), g.constantInt64([2])], {}, 'seq_len');
  const rows = g.reshape(hidden, g.op('Concat', [g.constantInt64([-1]), seqLen, g.constantInt64([C])], { axis: 0 })); // [B, T, C]
  const last = g.reshape(g.op('Slice', [rows, g.constantInt64([-1]), g.constantInt64([2 ** 31 - 1]), g.constantInt64([1])], {}, 'last'), [-1, C]); // [B, C]
  const normed = rmsnormForward(g, last, external('model.norm.weight'), spec.rmsNormEps).y;
  g.output(g.gemm(normed, lmHead, { transB: true }, 'logits'), 'logits', 'float', ['B', spec.vocabSize]);
  return g.toModelBytes();
}
