// RMSNorm over the last axis, weight frozen.
// Legend: x [..., C] any leading dims; C = normalized width; the weight w is [C].
import type { GraphBuilder } from '../onnx/graph.js';

export interface RmsnormSaved {
  xhat: string; // [..., C] x * rstd
  rstd: string; // [..., 1] 1 / sqrt(mean(x^2) + eps)
}

export function rmsnormForward(
  g: GraphBuilder,
  x: string,
  weight: string,
  eps: number,
): { y: string; saved: RmsnormSaved } {
  const meanSquare = g.reduceMean(g.mul(x, x), [-1]); // [..., 1]
  const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.add(meanSquare, g.scalar(eps))])], {}, 'rstd');
  const xhat = g.mul(x, rstd, 'xhat');
  return { y: g.mul(xhat, weight, 'normed'), saved: { xhat, rstd } };
}

// In the forward pass this was: y = w * x * rstd, rstd = (mean(x^2) + eps)^-1/2, so d rstd / dx = -rstd^3 x / C and
// dx = rstd * (dxhat - xhat * mean(dxhat * xhat)) with dxhat = dy * w.
export function rmsnormBackward(g: GraphBuilder, dy: string, saved: RmsnormSaved, weight: string): string {
  const dxhat = g.mul(dy, weight);
  const projection = g.reduceMean(g.mul(dxhat, saved.xhat), [-1]); // [..., 1]
  return g.mul(saved.rstd, g.sub(dxhat, g.mul(saved.xhat, projection)), 'd_norm_in');
}
