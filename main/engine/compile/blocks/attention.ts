// Causal scaled-dot-product attention with grouped queries, without materializing repeated keys and values.
// Legend: B = batch, K = key/value heads, G = query heads per kv head (H = K * G), T = sequence, D = head width.
//   q [B, K, G, T, D], k and v [B, K, 1, T, D] (broadcast over G), mask [B or 1, 1, 1, T, T] additive (0 where
//   attention is allowed, -inf elsewhere: above the diagonal, and across packed samples).
import type { GraphBuilder } from '../onnx/graph.js';

export interface AttentionSaved {
  scaledQ: string; // [B, K, G, T, D] q / sqrt(D)
  k: string; // [B, K, 1, T, D]
  v: string; // [B, K, 1, T, D]
  probs: string; // [B, K, G, T, T] softmax of the scores
}

const SWAP_LAST_TWO = [0, 1, 2, 4, 3];

export function attentionForward(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  mask: string,
  headDim: number,
): { out: string; saved: AttentionSaved } {
  const scaledQ = g.mul(q, g.scalar(1 / Math.sqrt(headDim)), 'scaled_q');
  const scores = g.add(g.matmul(scaledQ, g.transpose(k, SWAP_LAST_TWO)), mask, 'scores'); // [B, K, G, T, T]
  const probs = g.op('Softmax', [scores], { axis: -1 }, 'probs');
  const out = g.matmul(probs, v, 'attn_out'); // [B, K, G, T, D]
  return { out, saved: { scaledQ, k, v, probs } };
}

// In the forward pass this was: S = (q/sqrt D) k^T + mask, P = softmax(S), O = P v. So
//   dv = sum_G P^T dO, dP = dO v^T, dS = P * (dP - rowsum(dP * P)), dq = dS k / sqrt D, dk = sum_G dS^T (q/sqrt D).
export function attentionBackward(
  g: GraphBuilder,
  dOut: string,
  saved: AttentionSaved,
  headDim: number,
): { dq: string; dk: string; dv: string } {
  const dv = g.reduceSum(g.matmul(g.transpose(saved.probs, SWAP_LAST_TWO), dOut), [2], true, 'd_v'); // [B, K, 1, T, D]
  const dProbs = g.matmul(dOut, g.transpose(saved.v, SWAP_LAST_TWO)); // [B, K, G, T, T]
  const rowDot = g.reduceSum(g.mul(dProbs, saved.probs), [-1]); // [B, K, G, T, 1]
  const dScores = g.mul(saved.probs, g.sub(dProbs, rowDot), 'd_scores');
  const dq = g.mul(g.matmul(dScores, saved.k), g.scalar(1 / Math.sqrt(headDim)), 'd_q'); // [B, K, G, T, D]
  // [B, K, 1, T, D]
  const dk = g.reduceSum(g.matmul(g.transpose(dScores, SWAP_LAST_TWO), saved.scaledQ), [2], true, 'd_k');
  return { dq, dk, dv };
}
