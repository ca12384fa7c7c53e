// Rotary position embedding with the rotate_half convention of transformers:
//   y = x * cos + rotate_half(x) * sin, rotate_half([x1, x2]) = [-x2, x1]
// We write rotate_half(x) * sin = swap(x) * sinSigned, swap([x1, x2]) = [x2, x1], sinSigned = [-sin1, sin2],
// which makes the backward the same shape as the forward.
// Legend: x [B, K, G, T, D], cos and sinSigned [B or 1, 1, 1, T, D] broadcast over the heads.
import type { GraphBuilder } from '../onnx/graph.js';

export interface RopeTables {
  cos: string; // [B or 1, 1, 1, T, D]
  sinSigned: string; // [B or 1, 1, 1, T, D]
  headDim: number;
}

function swapHalves(g: GraphBuilder, x: string, headDim: number): string {
  const half = headDim / 2;
  const [first, second] = g.node('Split', [x, g.constantInt64([half, half])], { axis: -1 }, 2, 'half');
  return g.op('Concat', [second, first], { axis: -1 }, 'swapped');
}

export function ropeForward(g: GraphBuilder, x: string, tables: RopeTables): string {
  return g.add(g.mul(x, tables.cos), g.mul(swapHalves(g, x, tables.headDim), tables.sinSigned), 'roped');
}

// In the forward pass this was: y = x * cos + swap(x) * s; swap is its own transpose, so dx = dy * cos + swap(dy * s).
export function ropeBackward(g: GraphBuilder, dy: string, tables: RopeTables): string {
  return g.add(g.mul(dy, tables.cos), swapHalves(g, g.mul(dy, tables.sinSigned), tables.headDim), 'd_rope_in');
}
