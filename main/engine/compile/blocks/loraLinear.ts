// A frozen linear layer with an optional LoRA branch, as PEFT defines it:
//   y = x W^T (+ b) + scale * (dropout(x) A^T) B^T
// Legend: N = tokens (batch x sequence), in/out = layer widths, r = LoRA rank.
//   x [N, in], W [out, in] (stored layout, read with transB), b [out], A [r, in], B [out, r], mask [N, in].
import type { GraphBuilder } from '../onnx/graph.js';

/**
 * A frozen weight W [out, in] as fp32: a value, or an emitter called where the weight is used (a 4-bit or 16-bit
 * weight dequantized or widened next to its product, so its fp32 copy lives for that product only). `again` marks
 * the backward's copy, which must stay a separate node (see dequantize4bit.ts).
 */
export type FrozenWeight = string | ((g: GraphBuilder, again: boolean) => string);

/**
 * The frozen part: W as fp32, or, in a forward-only graph, a `product` x W^T [N, out] computed from W as stored
 * (MatMulNBits on int4 codes), which has no fp32 copy for a backward to read.
 */
export type FrozenLinear = { bias?: string } & (
  { weight: FrozenWeight } | { product: (g: GraphBuilder, x: string) => string }
);

function fp32Weight(g: GraphBuilder, base: FrozenLinear, again: boolean): string {
  if (!('weight' in base)) throw new Error('a frozen weight multiplied as stored has no backward');
  return typeof base.weight === 'string' ? base.weight : base.weight(g, again);
}

function frozenProduct(g: GraphBuilder, x: string, base: FrozenLinear): string {
  if (!('product' in base)) return g.gemm(x, fp32Weight(g, base, false), { transB: true, bias: base.bias }, 'proj');
  const product = base.product(g, x);
  return base.bias ? g.add(product, base.bias, 'proj') : product;
}

export interface LoraBranch {
  a: string;
  b: string;
  /** alpha / r (or alpha / sqrt r), fixed when training; a scalar input when generating, so 0 answers as the base. */
  scale: number | string;
  /** Dropout mask already divided by the keep probability, or undefined when dropout is off. */
  mask?: string;
}

export interface LoraLinearSaved {
  droppedX: string; // [N, in] dropout(x)
  down: string; // [N, r] dropout(x) A^T
}

export function loraLinearForward(
  g: GraphBuilder,
  x: string,
  base: FrozenLinear,
  lora?: LoraBranch,
): { y: string; saved?: LoraLinearSaved } {
  const frozen = frozenProduct(g, x, base); // [N, out]
  if (!lora) return { y: frozen };
  const droppedX = lora.mask ? g.mul(x, lora.mask, 'dropped') : x;
  const down = g.gemm(droppedX, lora.a, { transB: true }, 'lora_down'); // [N, r]
  const up =
    typeof lora.scale === 'number'
      ? g.gemm(down, lora.b, { transB: true, alpha: lora.scale }, 'lora_up') // [N, out]
      : g.mul(g.gemm(down, lora.b, { transB: true }), lora.scale, 'lora_up');
  return { y: g.add(frozen, up, 'proj_lora'), saved: { droppedX, down } };
}

// In the forward pass this was: y = x W^T + s * (xd A^T) B^T, so
//   dB = s * dy^T (xd A^T), d(down) = s * dy B, dA = d(down)^T xd, dx = dy W + (d(down) A) * mask.
export function loraLinearBackward(
  g: GraphBuilder,
  dy: string,
  base: FrozenLinear,
  lora?: LoraBranch,
  saved?: LoraLinearSaved,
): { dx: string; dA?: string; dB?: string } {
  const dxFrozen = g.matmul(dy, fp32Weight(g, base, true), 'd_proj_in'); // [N, in]
  if (!lora || !saved) return { dx: dxFrozen };
  if (typeof lora.scale !== 'number') throw new Error('LoRA backward needs its scale at compile time');
  const dB = g.gemm(dy, saved.down, { transA: true, alpha: lora.scale }, 'grad_lora_B'); // [out, r]
  const dDown = g.matmul(dy, lora.b); // [N, r], scale applied below
  const dDownScaled = lora.scale === 1 ? dDown : g.mul(dDown, g.scalar(lora.scale));
  const dA = g.gemm(dDownScaled, saved.droppedX, { transA: true }, 'grad_lora_A'); // [r, in]
  let dxLora = g.matmul(dDownScaled, lora.a); // [N, in]
  if (lora.mask) dxLora = g.mul(dxLora, lora.mask);
  return { dx: g.add(dxFrozen, dxLora, 'd_proj_lora_in'), dA, dB };
}
