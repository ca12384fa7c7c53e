// The LoRA adapter GGUF (`peft-studio export --format gguf`, main/adapter/gguf.ts) in real llama.cpp, as Ollama runs
// it: the base model as a GGUF (our f16 model writer, given the adapter with B zeroed, which merges to the base
// exactly) with the adapter GGUF loaded beside it at scale 1 (node-llama-cpp's createContext lora option). For tiny
// llama (tied embeddings, llama3 rope scaling: llama.cpp's q/k row permutation applies to lora_b), mistral (converted
// as llama), qwen2 (q/k/v bias) and qwen3 (q/k norm) models, and a qwen3 rsLoRA adapter (alpha written as
// alpha * sqrt(r)), llama.cpp's log-probabilities after each of our 32 greedy steps on 3 prompts are those of our own
// generation with the unmerged adapter.
import fs from 'node:fs';
import path from 'node:path';
import type { Llama } from 'node-llama-cpp';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeGgufModel } from '../../main/adapter/ggufModel.js';
import { loadLoraAdapter, saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { argmax } from '../../main/playground/sampler.js';
import { runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import {
  llamaCppLogProbs,
  loadLlamaCpp,
  makeTinyCase,
  ourGreedy,
  PROMPTS,
  TINY_CASES,
  topTwoGap,
  worstLogProbError,
} from '../support/llamaCpp.js';

let work: string;
let llama: Llama;

beforeAll(async () => {
  work = tempDir('gguf-adapter-llamacpp');
  llama = await loadLlamaCpp();
});

// The base is F16 in llama.cpp, the adapter F32: the F16 model tests' tolerance (see ggufModel.test.ts: llama.cpp's
// f16 matmul rounds activations to f16, about 5e-4 relative; logits span about ±10). A wrong permutation of lora_b,
// a missing tensor or a wrong alpha moves log-probabilities by whole units.
const LOGPROB_TOLERANCE = 0.05;

/** The base model as a GGUF: the adapter with every B zeroed merges to W + 0. */
function baseGguf(modelDir: string, adapterDir: string, name: string): string {
  const folder = openModelFolder(modelDir);
  const lora = loadLoraAdapter(adapterDir, folder.spec);
  for (const pairs of lora.layers) for (const pair of pairs.values()) pair.b.fill(0);
  const zeroDir = path.join(work, `${name}-zero-adapter`);
  saveLoraAdapter(zeroDir, lora, modelDir);
  return writeGgufModel({ modelDir, adapterDir: zeroDir, outFile: path.join(work, `${name}-base.gguf`), quant: 'f16' })
    .gguf;
}

describe.each([
  ['llama', false],
  ['mistral', false],
  ['qwen2', false],
  ['qwen3', false],
  ['qwen3', true],
] as const)('a %s LoRA GGUF (rsLoRA %s) on its base in llama.cpp', (arch, useRslora) => {
  it('gives our greedy tokens with the adapter at each of 32 steps on 3 prompts', async () => {
    const name = `${arch}${useRslora ? '-rslora' : ''}`;
    const { modelDir, adapterDir } = makeTinyCase(work, name, TINY_CASES[arch], { useRslora });
    const base = baseGguf(modelDir, adapterDir, name);
    const outDir = path.join(work, `${name}-export`); // the LoRA GGUF and its Modelfile
    fs.mkdirSync(outDir);
    const loraFile = path.join(outDir, 'adapter.gguf');
    const exported = await runCliAsync([
      'export',
      '--format',
      'gguf',
      '--adapter',
      adapterDir,
      '--model',
      modelDir,
      '--out',
      loraFile,
    ]);
    expect(exported.code, exported.stderr).toBe(0);

    const ours = await ourGreedy(modelDir, adapterDir);
    const theirs = await llamaCppLogProbs(llama, base, ours, loraFile);
    // Without the adapter llama.cpp must be far off: the adapter is what the comparison is about.
    const bare = await llamaCppLogProbs(llama, base, ours);
    let worst = 0;
    let worstBare = 0;
    let nearTies = 0;
    PROMPTS.forEach((_, p) => {
      ours[p].logProbs.forEach((mine, step) => {
        const error = worstLogProbError(mine, theirs[p][step]);
        worst = Math.max(worst, error);
        worstBare = Math.max(worstBare, worstLogProbError(mine, bare[p][step]));
        expect(error, `prompt ${p} step ${step}: log-probability error`).toBeLessThan(LOGPROB_TOLERANCE);
        if (argmax(theirs[p][step]) === ours[p].ids[step]) return;
        nearTies++;
        expect(topTwoGap(mine), `prompt ${p} step ${step}: llama.cpp chose another token`).toBeLessThan(
          2 * LOGPROB_TOLERANCE,
        );
      });
    });
    console.log(
      `${name}: worst log-probability error ${worst.toExponential(2)} with the adapter, ${worstBare.toFixed(2)} without; near ties ${nearTies}`,
    );
    expect(worstBare).toBeGreaterThan(20 * LOGPROB_TOLERANCE);
  });
});
