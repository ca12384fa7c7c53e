// Choosing the next token from logits: repetition penalty, temperature, top-k, top-p, then a seeded draw.
// Temperature 0 is greedy. Transformations follow transformers' logits processors, in the same order.
import type { Rng } from '../util/random.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens; 0 = all. */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 = all. */
  topP: number;
  /** > 1 discourages tokens already in the sequence (CTRL-style: positive logits divided, negative multiplied). */
  repetitionPenalty: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 };

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Picks the next token id; `seen` are the ids already in the sequence (prompt included). */
export function sampleToken(logits: Float32Array, seen: Iterable<number>, options: SamplingOptions, rng: Rng): number {
  const scores = Float64Array.from(logits);
  if (options.repetitionPenalty !== 1) {
    for (const id of new Set(seen))
      scores[id] = scores[id] > 0 ? scores[id] / options.repetitionPenalty : scores[id] * options.repetitionPenalty;
  }
  if (options.temperature === 0) return argmax(scores);

  let candidates = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
  if (options.topK > 0) candidates = candidates.slice(0, options.topK);
  const max = scores[candidates[0]];
  const weights = candidates.map((id) => Math.exp((scores[id] - max) / options.temperature));
  let total = weights.reduce((a, b) => a + b, 0);
  if (options.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < candidates.length && cumulative < options.topP * total) cumulative += weights[keep++];
    candidates = candidates.slice(0, Math.max(1, keep));
    weights.length = candidates.length;
    total = weights.reduce((a, b) => a + b, 0);
  }
  let draw = rng.uniform() * total;
  for (let i = 0; i < candidates.length; i++) {
    draw -= weights[i];
    if (draw < 0) return candidates[i];
  }
  return candidates[candidates.length - 1];
}
