// The catalogue of real models: every entry goes through the same parser as a downloaded config.json, and its sizes
// are checked against facts published apart from config.json: each model's parameter count as its Hugging Face page
// reports it (the safetensors total), which a wrong width, vocabulary or tie flag would change.
import { describe, expect, test } from 'vitest';
import { expectedShapes } from '../../main/model/architecture.js';
import { catalogueSpecs, MODEL_CATALOGUE } from '../../main/model/catalogue.js';

/** Parameters by repository, as the Hub counts the safetensors files (Qwen3-1.7B: see below). */
const PUBLISHED_PARAMETERS: Record<string, number> = {
  'HuggingFaceTB/SmolLM2-135M-Instruct': 134_515_008,
  'HuggingFaceTB/SmolLM2-360M-Instruct': 361_821_120,
  'HuggingFaceTB/SmolLM2-1.7B-Instruct': 1_711_376_384,
  'Qwen/Qwen2.5-0.5B-Instruct': 494_032_768,
  'Qwen/Qwen2.5-1.5B-Instruct': 1_543_714_304,
  'Qwen/Qwen2.5-3B-Instruct': 3_085_938_688,
  'Qwen/Qwen2.5-7B-Instruct': 7_615_616_512,
  'Qwen/Qwen3-0.6B': 596_049_920,
  // The checkpoint also stores a copy of the tied embedding as lm_head (the Hub counts 2,031,739,904, one
  // [151936, 2048] table more); the model card's 1.7B total and 1.4B without embeddings are the tied count.
  'Qwen/Qwen3-1.7B': 2_031_739_904 - 151_936 * 2048,
  'Qwen/Qwen3-4B': 4_022_468_096,
  'Qwen/Qwen3-8B': 8_190_735_360,
  'meta-llama/Llama-3.2-1B-Instruct': 1_235_814_400,
  'meta-llama/Llama-3.2-3B-Instruct': 3_212_749_824,
  'meta-llama/Llama-3.1-8B-Instruct': 8_030_261_248,
  'mistralai/Mistral-7B-Instruct-v0.3': 7_248_023_552,
};

const specs = catalogueSpecs();
const byRepo = new Map(specs.map((entry) => [entry.repoId, entry]));
const spec = (repoId: string) => byRepo.get(repoId)!.spec;

describe('the model catalogue', () => {
  test('holds the fifteen models of the issue, each once, every one parsed as a bf16 checkpoint', () => {
    expect(specs.map((s) => s.repoId)).toEqual(Object.keys(PUBLISHED_PARAMETERS));
    expect(new Set(specs.map((s) => s.name)).size).toBe(specs.length);
    for (const entry of specs) {
      expect(entry.weightBytesPerElement, entry.repoId).toBe(2);
      expect(entry.repoId).toMatch(/^[\w.-]+\/[\w.-]+$/);
    }
    // The parser, not a copy: the config the catalogue stores is what parseModelConfig read.
    const mistral = MODEL_CATALOGUE.find((m) => m.repoId === 'mistralai/Mistral-7B-Instruct-v0.3')!;
    expect(spec(mistral.repoId).vocabSize).toBe(mistral.config.vocab_size);
  });

  test.each(Object.entries(PUBLISHED_PARAMETERS))('%s has its published parameter count', (repoId, published) => {
    let parameters = 0;
    for (const shape of expectedShapes(spec(repoId)).values()) parameters += shape.reduce((a, b) => a * b, 1);
    expect(parameters).toBe(published);
  });

  test('spot checks: vocabularies, tied embeddings, head widths, biases, norms, RoPE', () => {
    expect(spec('meta-llama/Llama-3.1-8B-Instruct')).toMatchObject({
      vocabSize: 128256,
      tieWordEmbeddings: false,
      numLayers: 32,
      numKvHeads: 8,
      headDim: 128,
      ropeTheta: 500000,
      ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    expect(spec('meta-llama/Llama-3.2-1B-Instruct')).toMatchObject({
      tieWordEmbeddings: true,
      headDim: 64,
      ropeScaling: { factor: 32 },
    });
    expect(spec('Qwen/Qwen2.5-0.5B-Instruct')).toMatchObject({
      vocabSize: 151936,
      tieWordEmbeddings: true,
      qkvBias: true,
      outputBias: false,
      headDim: 64,
    });
    expect(spec('Qwen/Qwen2.5-7B-Instruct')).toMatchObject({ vocabSize: 152064, tieWordEmbeddings: false });
    expect(spec('Qwen/Qwen3-8B')).toMatchObject({
      headDim: 128,
      qkNorm: true,
      qkvBias: false,
      tieWordEmbeddings: false,
      vocabSize: 151936,
    });
    // Qwen3's 128-wide heads make the attention wider than the residual stream on the small ones.
    expect(spec('Qwen/Qwen3-0.6B')).toMatchObject({ headDim: 128, hiddenSize: 1024, numHeads: 16 });
    expect(spec('mistralai/Mistral-7B-Instruct-v0.3')).toMatchObject({
      vocabSize: 32768,
      tieWordEmbeddings: false,
      qkvBias: false,
      ropeTheta: 1e6,
    });
    expect(spec('HuggingFaceTB/SmolLM2-135M-Instruct')).toMatchObject({ numHeads: 9, numKvHeads: 3, headDim: 64 });
    for (const entry of specs) expect(entry.spec.rmsNormEps, entry.repoId).toBeLessThanOrEqual(1e-5);
  });
});
