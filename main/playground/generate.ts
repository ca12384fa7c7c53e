// Text generation: prefill the prompt, then sample one token at a time from the KV-cached model, streaming text as
// it completes, until EOS, a stop string, the token budget or cancellation.
import fs from 'node:fs';
import path from 'node:path';
import type { InferenceModel } from '../engine/runtime/inferenceModel.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import { Rng } from '../util/random.js';
import { StreamingDetokenizer } from './detokenizer.js';
import { sampleToken, type SamplingOptions } from './sampler.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  seed: number;
  /** Generation ends before the first of these strings; it is not part of the text. */
  stop: string[];
  /** Keep going past EOS (benchmarks). */
  ignoreEos: boolean;
  /** 1 = answer with the adapter, 0 = as the base model. */
  adapterScale: number;
}

export interface GeneratedToken {
  id: number;
  /** Text this token completes ('' while a character is still incomplete). */
  text: string;
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'cancelled';

export interface GenerationResult {
  text: string;
  ids: number[];
  promptTokens: number;
  finishReason: FinishReason;
  timeToFirstTokenSeconds: number;
  /** New tokens after the first, per second of decoding. */
  decodeTokensPerSecond: number;
}

/** End-of-sequence ids: tokenizer_config.json's eos_token and generation_config.json's eos_token_id (one or a list). */
export function endOfSequenceIds(modelDir: string, tokenizer: ModelTokenizer): Set<number> {
  const ids = new Set<number>();
  if (tokenizer.eosId !== null) ids.add(tokenizer.eosId);
  const file = path.join(modelDir, 'generation_config.json');
  if (fs.existsSync(file)) {
    const configured = (JSON.parse(fs.readFileSync(file, 'utf8')) as { eos_token_id?: number | number[] }).eos_token_id;
    for (const id of Array.isArray(configured) ? configured : configured === undefined ? [] : [configured]) ids.add(id);
  }
  return ids;
}

/**
 * Streams generated tokens; the generator's return value is the whole result. Aborting `signal` ends it after the
 * token in progress with finishReason 'cancelled'.
 */
export async function* generate(
  model: InferenceModel,
  tokenizer: ModelTokenizer,
  promptIds: number[],
  options: GenerateOptions,
  signal?: AbortSignal,
): AsyncGenerator<GeneratedToken, GenerationResult> {
  const eos = options.ignoreEos ? new Set<number>() : endOfSequenceIds(model.folder.dir, tokenizer);
  const rng = new Rng(options.seed);
  const detokenizer = new StreamingDetokenizer(tokenizer);
  const ids: number[] = [];
  const started = performance.now();
  let firstTokenAt = started;
  let finishReason: FinishReason = 'length';
  let text = '';

  let { logits, cache } = await model.step(promptIds, model.emptyCache(), options.adapterScale);
  try {
    while (ids.length < options.maxNewTokens) {
      if (signal?.aborted) {
        finishReason = 'cancelled';
        break;
      }
      const id = sampleToken(logits, [...promptIds, ...ids], options, rng);
      if (ids.length === 0) firstTokenAt = performance.now();
      if (eos.has(id)) {
        finishReason = 'eos';
        break;
      }
      ids.push(id);
      const piece = detokenizer.push(id);
      text += piece;
      const stopAt = options.stop.map((s) => text.indexOf(s)).filter((i) => i >= 0);
      if (stopAt.length) {
        text = text.slice(0, Math.min(...stopAt));
        finishReason = 'stop';
        break;
      }
      yield { id, text: piece };
      if (ids.length < options.maxNewTokens) ({ logits, cache } = await model.step([id], cache, options.adapterScale));
    }
  } finally {
    cache.dispose();
  }
  if (finishReason !== 'stop') text = detokenizer.text();
  const decodeSeconds = (performance.now() - firstTokenAt) / 1000;
  return {
    text,
    ids,
    promptTokens: promptIds.length,
    finishReason,
    timeToFirstTokenSeconds: (firstTokenAt - started) / 1000,
    decodeTokensPerSecond: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
  };
}
