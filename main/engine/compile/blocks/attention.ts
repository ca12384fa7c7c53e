// Causal scaled-dot-product attention with grouped queries, without materializing repeated keys and values.
// Legend: B = batch, K = key/value heads, G = query heads per kv head (H = K * G), T = query positions, S = key
//   positions (S = T in training; past + new with a KV cache), D = head width.
//   q [B, K, G, T, D], k and v [B, K, 1, S, D] (broadcast over G), mask [B or 1, 1, 1, T, S] additive (0 where
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
  const { out, scaledQ, probs } = attend(g, q, g.transpose(k, SWAP_LAST_TWO), v, mask, headDim);
  return { out, saved: { scaledQ, k, v, probs } };
}

/**
 * The forward alone, with keys already transposed: kT [B, K, 1, D, S]. A KV cache keeps its keys this way, so a
 * decoding step multiplies by the whole cache without transposing it.
 */
export function attend(
  g: GraphBuilder,
  q: string,
  kT: string,
  v: string,
  mask: string,
  headDim: number,
): { out: string; scaledQ: string; probs: string } {
  const scaledQ = g.mul(q, g.scalar(1 / Math.sqrt(headDim)), 'scaled_q');
  const scores = g.add(g.matmul(scaledQ, kT), mask, 'scores'); // [B, K, G, T, S]
  const probs = g.op('Softmax', [scores], { axis: -1 }, 'probs');
  const out = g.matmul(probs, v, 'attn_out'); // [B, K, G, T, D]
  return { out, scaledQ, probs };
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
