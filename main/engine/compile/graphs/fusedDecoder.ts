// The decoder layers of the generation graph on the CPU, forward only, from ONNX Runtime's fused operators
// (com.microsoft): SkipSimplifiedLayerNormalization adds the residual and normalizes in one kernel, and
// GroupQueryAttention rotates queries and keys (RotaryEmbedding before it, for head widths its rotation lacks) and
// attends over a KV cache that past and present share, so a decoding step writes its one new position in place
// instead of copying the whole cache. Where it rotates, and no LoRA branch or per-head norm reads them apart, the
// query, key and value projections are one product of their weights stacked (folded once at load), which it reads
// packed. A decoded token then runs about 14 kernels a layer instead of about 45: on [1, C] activations each kernel
// costs its launch, not its arithmetic.
// The projections, LoRA branches and MLP are the standard-op blocks that training uses (loraLinear.ts, mlp.ts).
// Legend: T = new positions this call, M = the cache's capacity in positions (>= all positions so far), C = hidden,
//   H = query heads, K = kv heads, D = head width.
// Inputs it declares: rope_cos, rope_sin [S, D/2] (S >= every position); position_ids [1, T] int64, only where
//   RotaryEmbedding rotates; seqlens_k [1] int32 (positions so far, these included, minus one: the new positions
//   follow the cached ones); total_length [] int32 (positions so far, these included);
//   past_key.{i}, past_value.{i} [1, K, M, D]. Outputs: present_key.{i}, present_value.{i} [1, K, M, D], written in
//   place when the caller passes its past buffers as the outputs.
import type { ModelSpec } from '../../../model/architecture.js';
import { loraLinearForward, type FrozenLinear } from '../blocks/loraLinear.js';
import { mlpForward } from '../blocks/mlp.js';
import type { AttributeValue, GraphBuilder } from '../onnx/graph.js';
import type { LayerWeights } from './layerEmitters.js';

/** Whether a model's shape fits GroupQueryAttention's CPU kernel (head width a multiple of 8). */
export function fusedDecoderFits(spec: ModelSpec): boolean {
  return spec.headDim % 8 === 0;
}

/** Whether GroupQueryAttention's CPU kernel rotates queries and keys itself: head widths a multiple of 16. */
export function rotaryInAttention(spec: ModelSpec): boolean {
  return spec.headDim % 16 === 0;
}

export interface FusedPositions {
  cos: string; // [S, D/2]
  sin: string; // [S, D/2]
  positionIds: string | null; // [1, T] int64, where RotaryEmbedding rotates
  seqlensK: string; // [1] int32
  totalLength: string; // [] int32
}

export function declareFusedPositions(g: GraphBuilder, spec: ModelSpec): FusedPositions {
  return {
    cos: g.input('rope_cos', 'float', ['S', spec.headDim / 2]),
    sin: g.input('rope_sin', 'float', ['S', spec.headDim / 2]),
    positionIds: rotaryInAttention(spec) ? null : g.input('position_ids', 'int64', [1, 'T']),
    seqlensK: g.input('seqlens_k', 'int32', [1]),
    totalLength: g.input('total_length', 'int32', []),
  };
}

/** RMSNorm of x [..., C] by weight [C] in one kernel. */
function rmsnorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op('SimplifiedLayerNormalization', [x, weight], { axis: -1, epsilon: { float: eps } }, 'normed');
}

/** RMSNorm of (x + residual) [T, C]; returns the normalized sum and the sum, the next residual. */
function addAndRmsnorm(
  g: GraphBuilder,
  x: string,
  residual: string,
  weight: string,
  eps: number,
): { normed: string; sum: string } {
  const [normed, , , sum] = g.contribNode(
    'SkipSimplifiedLayerNormalization',
    [x, residual, weight],
    { epsilon: { float: eps } },
    4,
    'skip_norm',
  );
  return { normed, sum };
}

/**
 * Queries, keys and values of x [T, C] as one product [T, (H + 2K) * D] when the three projections are plain fp32
 * weights with no LoRA branch and no per-head norm; null otherwise. The stacked weight is a Concat of initializers,
 * which ONNX Runtime folds into one at load (the three are then unused and dropped).
 */
function packedQkv(g: GraphBuilder, x: string, w: LayerWeights): string | null {
  const parts: FrozenLinear[] = [w.q, w.k, w.v];
  if (w.lora.q_proj || w.lora.k_proj || w.lora.v_proj || w.qNorm || w.kNorm) return null;
  const weights = parts.map((part) => ('weight' in part && typeof part.weight === 'string' ? part.weight : null));
  const biases = parts.map((part) => part.bias ?? null);
  if (weights.includes(null) || (biases.includes(null) && biases.some((b) => b !== null))) return null;
  const stack = (values: (string | null)[], hint: string) => g.op('Concat', values as string[], { axis: 0 }, hint);
  const bias = biases[0] === null ? undefined : stack(biases, 'qkv_bias'); // [(H + 2K) * D]
  return g.gemm(x, stack(weights, 'qkv_weight'), { transB: true, bias }, 'qkv'); // [T, (H + 2K) * D]
}

/**
 * Runs the decoder layers over h0 [T, C] and returns the last position's final RMSNorm [1, C]. `layerWeights(i)`
 * declares layer i's weights; `cache(i)` its past key and value [1, K, M, D].
 */
export function fusedDecoderLayers(
  g: GraphBuilder,
  spec: ModelSpec,
  h0: string,
  positions: FusedPositions,
  layerWeights: (i: number) => LayerWeights,
  cache: (i: number) => { pastKey: string; pastValue: string },
  finalNorm: string,
): string {
  const { numHeads: H, numKvHeads: K, headDim: D, rmsNormEps: eps } = spec;
  const asSequence = (x: string, width: number) => g.reshape(x, [1, -1, width]); // [T, w] -> [1, T, w]
  const { positionIds } = positions;
  const rotate = (x: string, heads: number) =>
    positionIds === null
      ? x
      : g.contribOp(
          'RotaryEmbedding',
          [x, positionIds, positions.cos, positions.sin],
          { num_heads: heads, interleaved: 0 },
          'roped',
        ); // [1, T, heads*D]
  // GroupQueryAttention's own rotation: queries and keys at positions past + 0..T-1, rotate_half as transformers.
  const rotation: Record<string, AttributeValue> = positionIds === null ? { do_rotary: 1, rotary_interleaved: 0 } : {};
  const rotaryTables = positionIds === null ? [positions.cos, positions.sin] : [];
  // Qwen3's per-head RMSNorm of queries and keys, before the rotation: [T, heads*D] -> [1, T, heads*D].
  const perHead = (x: string, heads: number, weight?: string) =>
    asSequence(weight ? rmsnorm(g, g.reshape(x, [-1, D]), weight, eps) : x, heads * D);

  let residual = h0; // [T, C]
  let mlpOut: string | null = null; // [T, C], the previous layer's MLP output, added to residual by the next norm
  for (let i = 0; i < spec.numLayers; i++) {
    const w = layerWeights(i);
    let normed: string;
    if (mlpOut) ({ normed, sum: residual } = addAndRmsnorm(g, mlpOut, residual, w.inputNorm, eps));
    else normed = rmsnorm(g, residual, w.inputNorm, eps);
    const packed = positionIds === null ? packedQkv(g, normed, w) : null;
    let qkv: string[]; // [1, T, (H + 2K) * D] packed with no key or value, or query, key, value [1, T, heads * D]
    if (packed) qkv = [asSequence(packed, (H + 2 * K) * D), '', ''];
    else {
      const q = loraLinearForward(g, normed, w.q, w.lora.q_proj).y; // [T, H*D]
      const k = loraLinearForward(g, normed, w.k, w.lora.k_proj).y; // [T, K*D]
      const v = loraLinearForward(g, normed, w.v, w.lora.v_proj).y; // [T, K*D]
      qkv = [rotate(perHead(q, H, w.qNorm), H), rotate(perHead(k, K, w.kNorm), K), asSequence(v, K * D)];
    }
    const { pastKey, pastValue } = cache(i);
    const [attended, presentKey, presentValue] = g.contribNode(
      'GroupQueryAttention',
      [...qkv, pastKey, pastValue, positions.seqlensK, positions.totalLength, ...rotaryTables],
      { num_heads: H, kv_num_heads: K, ...rotation },
      3,
      'attn',
    ); // [1, T, H*D], [1, K, M, D] x 2
    g.outputInPlace(presentKey, `present_key.${i}`, 'float', [1, K, 'M', D]);
    g.outputInPlace(presentValue, `present_value.${i}`, 'float', [1, K, 'M', D]);
    const o = loraLinearForward(g, g.reshape(attended, [-1, H * D]), w.o, w.lora.o_proj).y; // [T, C]
    const post = addAndRmsnorm(g, o, residual, w.postNorm, eps);
    residual = post.sum;
    mlpOut = mlpForward(g, post.normed, w.mlp).y; // [T, C]
  }
  // Only the last position needs logits: the last residual and the final norm run on one row.
  const lastRow = (x: string) =>
    g.op('Slice', [x, g.constantInt64([-1]), g.constantInt64([2 ** 31 - 1]), g.constantInt64([0])], {}, 'last');
  return addAndRmsnorm(g, lastRow(mlpOut!), lastRow(residual), finalNorm, eps).normed; // [1, C]
}
