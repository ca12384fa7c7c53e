// Tiny models in real llama.cpp (node-llama-cpp's prebuilt CPU build: nothing downloaded or compiled), beside our own
// generation: the models and adapters the GGUF tests export, our greedy tokens and log-probabilities, and llama.cpp's
// log-probabilities of the same contexts.
import fs from 'node:fs';
import path from 'node:path';
import type { Llama } from 'node-llama-cpp';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import { saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { InferenceModel } from '../../main/engine/runtime/inferenceModel.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../main/model/safetensors.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { argmax } from '../../main/playground/sampler.js';
import { randomLora } from './engine.js';

const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export interface TinyCase {
  arch: 'llama' | 'qwen2' | 'qwen3';
  tie: boolean;
  /** Extra config.json fields. */
  config?: Record<string, unknown>;
}
export const TINY_CASES: Record<'llama' | 'qwen2' | 'qwen3' | 'mistral', TinyCase> = {
  llama: {
    arch: 'llama',
    tie: true,
    config: {
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
    },
  },
  qwen2: { arch: 'qwen2', tie: false },
  qwen3: { arch: 'qwen3', tie: false },
  mistral: { arch: 'llama', tie: false, config: { model_type: 'mistral', architectures: ['MistralForCausalLM'] } },
};
export const PROMPTS = [
  [5, 17, 42, 99, 3],
  [300, 12, 7],
  [450, 451, 452, 453, 454, 455, 456, 457],
];
const NEW_TOKENS = 32;

/** node-llama-cpp's CPU build, never downloaded or compiled (ESM with a native addon: load once per worker). */
export async function loadLlamaCpp(): Promise<Llama> {
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  return getLlama({
    build: 'never',
    gpu: false,
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: 1,
  });
}

export interface TinyCaseOptions {
  hidden?: number;
  intermediate?: number;
  useRslora?: boolean;
}

/**
 * A tiny model of `c` in `work` whose matrices are scaled to N(0, 0.15) as the numerics fixtures are (transformers'
 * 0.02 gives near-uniform logits, where any rounding flips a greedy choice), and a random LoRA adapter (rank 4,
 * alpha 8) on every projection.
 */
export function makeTinyCase(
  work: string,
  name: string,
  c: TinyCase,
  { hidden = 64, intermediate = 128, useRslora = false }: TinyCaseOptions = {},
): { modelDir: string; adapterDir: string } {
  const modelDir = path.join(work, `${name}-model`);
  createTinyModel(modelDir, { arch: c.arch, layers: 2, heads: 4, kvHeads: 2, tie: c.tie, hidden, intermediate });
  const configFile = path.join(modelDir, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), ...c.config }));
  const weights = path.join(modelDir, 'model.safetensors');
  const tensors = Object.fromEntries(
    [...readSafetensorsHeader(weights)].map(([key, entry]) => {
      const values = readTensorF32(entry);
      if (entry.shape.length === 2) for (let i = 0; i < values.length; i++) values[i] *= 7.5;
      if (key.endsWith('.bias')) for (let i = 0; i < values.length; i++) values[i] = 0.1 * Math.sin(i);
      return [key, { dtype: 'F32' as const, shape: entry.shape, data: values }];
    }),
  );
  writeSafetensors(weights, tensors);
  const folder = openModelFolder(modelDir);
  const lora = randomLora(folder, { rank: 4, alpha: 8, dropout: 0, targets: [...ALL_TARGETS], useRslora }, 7);
  const adapterDir = path.join(work, `${name}-adapter`);
  saveLoraAdapter(adapterDir, lora, modelDir);
  return { modelDir, adapterDir };
}

export type GreedyRun = { ids: number[]; logProbs: Float64Array[] };

/** Our greedy tokens with the unmerged adapter (scale 1), and the log-softmax that chose each. */
export async function ourGreedy(modelDir: string, adapterDir: string): Promise<GreedyRun[]> {
  const folder = openModelFolder(modelDir);
  const model = await InferenceModel.load(folder, 'cpu', loadAdapter(adapterDir, folder.spec), {
    threads: engineThreads(null),
  });
  const runs = [];
  for (const prompt of PROMPTS) {
    let { logits, cache } = await model.step(prompt, model.emptyCache(), 1);
    const ids: number[] = [];
    const logProbs: Float64Array[] = [];
    for (;;) {
      ids.push(argmax(logits));
      logProbs.push(logSoftmax(logits));
      if (ids.length === NEW_TOKENS) break;
      ({ logits, cache } = await model.step([ids[ids.length - 1]], cache, 1));
    }
    cache.dispose();
    runs.push({ ids, logProbs });
  }
  await model.close();
  return runs;
}

function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Float64Array.from(logits, (l) => l - max - Math.log(sum));
}

/**
 * llama.cpp's log-probabilities (fp32 KV cache) after each prefix of prompt + our tokens: the same contexts our
 * greedy steps saw, evaluated in one batch, so one near-tie cannot send the two sides down different texts. With
 * `loraFile`, the model runs with that LoRA adapter GGUF at scale 1.
 */
export async function llamaCppLogProbs(
  llama: Llama,
  file: string,
  runs: { ids: number[] }[],
  loraFile?: string,
): Promise<Float64Array[][]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const result: Float64Array[][] = [];
  try {
    for (const [p, prompt] of PROMPTS.entries()) {
      const context = await model.createContext({
        contextSize: 256,
        sequences: 1,
        threads: 1,
        experimentalKvCacheKeyType: 'F32',
        experimentalKvCacheValueType: 'F32',
        ...(loraFile ? { lora: { adapters: [{ filePath: loraFile, scale: 1 }] } } : {}),
      });
      const input = [...prompt, ...runs[p].ids.slice(0, -1)];
      const evaluated = await context
        .getSequence()
        .controlledEvaluate(
          input.map((id, i) => (i < prompt.length - 1 ? id : [id, { generateNext: { probabilities: true } }])),
        );
      result.push(
        evaluated.slice(prompt.length - 1).map((step) => {
          const logProbs = new Float64Array(512).fill(-Infinity);
          for (const [id, probability] of step!.next!.probabilities!) logProbs[id] = Math.log(probability);
          return logProbs;
        }),
      );
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
  return result;
}

/** Largest |a - b| over the tokens either side gives at least 1e-4 probability. */
export function worstLogProbError(a: Float64Array, b: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (Math.max(a[i], b[i]) < Math.log(1e-4)) continue;
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  return worst;
}

export function topTwoGap(logProbs: Float64Array): number {
  const sorted = [...logProbs].sort((x, y) => y - x);
  return sorted[0] - sorted[1];
}

/** Perplexity, in llama.cpp, of the 96 tokens our greedy decoding chose (a held-out text for the GGUF). */
export async function llamaCppPerplexity(llama: Llama, file: string, ours: { ids: number[] }[]): Promise<number> {
  const theirs = await llamaCppLogProbs(llama, file, ours);
  const nll = PROMPTS.flatMap((_, p) => ours[p].ids.map((id, step) => -theirs[p][step][id]));
  return Math.exp(nll.reduce((a, b) => a + b, 0) / nll.length);
}
