// Sampling rules and streaming detokenization, with the real tiny tokenizer (byte-level BPE).
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { loadTokenizer, type ModelTokenizer } from '../../main/model/tokenizer.js';
import { StreamingDetokenizer } from '../../main/playground/detokenizer.js';
import { GREEDY, sampleToken } from '../../main/playground/sampler.js';
import { Rng } from '../../main/util/random.js';
import { tempDir } from '../support/engine.js';

const logits = Float32Array.from([1.0, 3.0, 2.5, -1.0, 0.5]);

function frequencies(options: Parameters<typeof sampleToken>[2], draws = 4000, seen: number[] = []): number[] {
  const rng = new Rng(1);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampleToken(logits, seen, options, rng)]++;
  return counts.map((c) => c / draws);
}

describe('sampleToken', () => {
  it('is greedy at temperature 0', () => {
    expect(sampleToken(logits, [], GREEDY, new Rng(0))).toBe(1);
  });

  it('draws in proportion to softmax(logits / T)', () => {
    const f = frequencies({ ...GREEDY, temperature: 1 });
    const z = Array.from(logits).map(Math.exp);
    const total = z.reduce((a, b) => a + b);
    z.forEach((p, i) => expect(Math.abs(f[i] - p / total)).toBeLessThan(0.03));
  });

  it('keeps only the k most likely tokens with top-k', () => {
    const f = frequencies({ ...GREEDY, temperature: 1, topK: 2 });
    expect(f[0] + f[3] + f[4]).toBe(0);
    expect(f[1]).toBeGreaterThan(f[2]);
  });

  it('keeps the smallest set reaching p with top-p', () => {
    // softmax: 0.53, 0.32, ... for ids 1 and 2: p = 0.6 needs both, p = 0.5 only id 1.
    expect(frequencies({ ...GREEDY, temperature: 1, topP: 0.5 })).toEqual([0, 1, 0, 0, 0]);
    const f = frequencies({ ...GREEDY, temperature: 1, topP: 0.6 });
    expect(f[1] + f[2]).toBe(1);
    expect(f[2]).toBeGreaterThan(0.2);
  });

  it('penalizes repeated tokens as transformers does (positive logits divided, negative multiplied)', () => {
    expect(sampleToken(logits, [1], { ...GREEDY, repetitionPenalty: 1.5 }, new Rng(0))).toBe(2); // 3 / 1.5 < 2.5
    // -1.5 < -1.2
    expect(sampleToken(Float32Array.from([-1, -1.2]), [0], { ...GREEDY, repetitionPenalty: 1.5 }, new Rng(0))).toBe(1);
  });

  it('repeats itself for the same seed', () => {
    const draw = (seed: number) =>
      Array.from(
        { length: 20 },
        function (this: Rng) {
          return sampleToken(logits, [], { ...GREEDY, temperature: 1.3 }, this);
        },
        new Rng(seed),
      );
    expect(draw(5)).toEqual(draw(5));
    expect(draw(5)).not.toEqual(draw(6));
  });
});

describe('StreamingDetokenizer', () => {
  let tokenizer: ModelTokenizer;
  beforeAll(() => {
    const dir = path.join(tempDir('detok'), 'model');
    createTinyModel(dir, { vocab: 512 });
    tokenizer = loadTokenizer(dir);
  });

  it('never emits half a character, and the pieces add up to the text', () => {
    const text = 'Grüße 👋🏽 from 東京 and مرحبا!';
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    const detokenizer = new StreamingDetokenizer(tokenizer);
    const pieces = ids.map((id) => detokenizer.push(id));
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    // Some tokens end inside a multi-byte character and must have produced nothing.
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0);
    expect(pieces.join('')).toBe(text);
  });
});
