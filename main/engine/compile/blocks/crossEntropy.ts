// Next-token cross-entropy from logits, built from ops every execution provider has (WebGPU lacks LogSoftmax and
// SoftmaxCrossEntropyLoss). The caller passes a per-token weight, 0 for ignored labels and 1 / (label tokens in the
// optimizer step) otherwise, so the loss is already the step's mean and chunks of rows simply add up.
// Legend: N = token rows, V = vocabulary. logits [N, V], targets [N, 1] int32 (ignored rows point at 0), weight [N, 1].
import type { GraphBuilder } from '../onnx/graph.js';

export interface CrossEntropySaved {
  exps: string; // [N, V] exp(logits - rowmax)
  sums: string; // [N, 1] row sums of exps
}

export function crossEntropyForward(
  g: GraphBuilder,
  logits: string,
  targets: string,
  weight: string,
): { loss: string; saved: CrossEntropySaved } {
  const shifted = g.sub(logits, g.reduceMax(logits, [-1]), 'shifted_logits'); // [N, V]
  const exps = g.op('Exp', [shifted]);
  const sums = g.reduceSum(exps, [-1]); // [N, 1]
  const targetLogit = g.op('GatherElements', [shifted, targets], { axis: 1 }, 'target_logit'); // [N, 1]
  const tokenLoss = g.sub(g.op('Log', [sums]), targetLogit, 'token_loss'); // [N, 1] logsumexp - target logit
  return { loss: g.reduceSum(g.mul(tokenLoss, weight), [0, 1], false, 'loss'), saved: { exps, sums } };
}

// In the forward pass this was: loss = sum_n w_n (logsumexp(z_n) - z_n[t_n]), so dz_n = w_n (softmax(z_n) -
// onehot(t_n)).
export function crossEntropyBackward(
  g: GraphBuilder,
  targets: string,
  weight: string,
  saved: CrossEntropySaved,
): string {
  const weightedProbs = g.mul(g.op('Div', [saved.exps, saved.sums]), weight, 'weighted_probs'); // [N, V]
  const atTarget = g.sub(g.op('GatherElements', [weightedProbs, targets], { axis: 1 }), weight); // [N, 1]
  return g.op('ScatterElements', [weightedProbs, targets, atTarget], { axis: 1 }, 'd_logits');
}
