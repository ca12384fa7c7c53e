// Tiny models in real llama.cpp (node-llama-cpp's prebuilt CPU build: nothing downloaded or compiled), beside our own
// generation: the models and adapters the GGUF tests export (random, or trained by our engine to repeat short texts),
// our greedy tokens and log-probabilities, llama.cpp's greedy tokens, and its log-probabilities of the same contexts.
import fs from 'node:fs';
import path from 'node:path';
import type { Llama, Token } from 'node-llama-cpp';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import { saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { InferenceModel } from '../../main/engine/runtime/inferenceModel.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../main/model/safetensors.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { argmax } from '../../main/playground/sampler.js';
import { defaultTrainJob } from '../../shared/trainJob.js';
import type * as Host from '../../main/engine/process/host.js';
import { ROOT } from './cli.js';
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

/**
 * Three short texts the tiny tokenizer knows, each longer than a prompt of PROMPT_TOKENS tokens plus NEW_TOKENS, so
 * that a greedy continuation of the prompt never reaches the row's end.
 */
export const MEMORISED_TEXTS = [
  'the cat sat on the mat and looked at the door, then it walked to the garden and slept in the warm sun until the evening came',
  'we will meet at the station at nine in the morning, take the first train to the city and walk along the river to the old bridge',
  'add two cups of flour, one egg and a little milk, stir until it is smooth, then bake it in a hot oven for twenty minutes or so',
];
const PROMPT_TOKENS = 6;

/**
 * A LoRA adapter (rank 8 on every projection) trained by our engine, in its own process as the studio runs it, to
 * repeat MEMORISED_TEXTS: at its loss of about 0.15 each greedy step wins by over 3.5 logits, so a rounding of the
 * weights (f16, q8_0) cannot flip it and a free-running decode can be compared token for token (a random adapter on
 * a random model leaves near ties). Returns the prompts: each text's first PROMPT_TOKENS tokens, as training saw
 * them.
 */
export async function trainMemorisingAdapter(
  modelDir: string,
  adapterDir: string,
  steps = 150,
): Promise<{ prompts: number[][]; finalLoss: number; seconds: number }> {
  const dataFile = `${adapterDir}.jsonl`;
  fs.writeFileSync(dataFile, MEMORISED_TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const base = defaultTrainJob('lora', { modelDir, dataFile, outDir: adapterDir });
  const job = {
    ...base,
    lora: { ...base.lora, rank: 8, alpha: 16, dropout: 0, targets: [...ALL_TARGETS] },
    optimizer: { ...base.optimizer, learningRate: 1e-2, scheduler: 'constant' as const },
    steps,
    batchSize: MEMORISED_TEXTS.length,
    maxSeqLen: 128,
    gradientCheckpointing: false,
    device: 'cpu' as const,
    checkpointEvery: 0,
    keepBest: false,
    overwriteOutput: true,
  };
  // The built host forks dist/main/engine/process/worker.js.
  const { runEngine } = (await import(path.join(ROOT, 'dist/main/engine/process/host.js'))) as typeof Host;
  const result = await runEngine({ kind: 'train', job, checkpointDir: null, resume: false }, () => {}).result;
  if (result.status !== 'completed') throw new Error(`training stopped at step ${result.step}`);
  const tokenizer = loadTokenizer(modelDir);
  const texts = MEMORISED_TEXTS.map((text) => tokenizer.encode(text));
  if (texts.some((ids) => ids.length < PROMPT_TOKENS + NEW_TOKENS)) throw new Error('a memorised text is too short');
  const prompts = texts.map((ids) => ids.slice(0, PROMPT_TOKENS));
  return { prompts, finalLoss: result.finalLoss, seconds: result.seconds };
}

/** llama.cpp's own greedy decoding (its sampler at temperature 0, fp32 KV cache) of NEW_TOKENS tokens per prompt. */
export async function llamaCppGreedy(llama: Llama, file: string, prompts: number[][]): Promise<number[][]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const result: number[][] = [];
  try {
    for (const prompt of prompts) {
      const context = await model.createContext({
        contextSize: 256,
        sequences: 1,
        threads: 1,
        experimentalKvCacheKeyType: 'F32',
        experimentalKvCacheValueType: 'F32',
      });
      const ids: number[] = [];
      for await (const id of context.getSequence().evaluate(prompt as Token[], { temperature: 0 })) {
        ids.push(id);
        if (ids.length === NEW_TOKENS) break;
      }
      result.push(ids);
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
  return result;
}

export type GreedyRun = { ids: number[]; logProbs: Float64Array[] };

/** Our greedy tokens with the unmerged adapter (scale 1), and the log-softmax that chose each. */
export async function ourGreedy(modelDir: string, adapterDir: string, prompts = PROMPTS): Promise<GreedyRun[]> {
  const folder = openModelFolder(modelDir);
  const model = await InferenceModel.load(folder, 'cpu', loadAdapter(adapterDir, folder.spec), {
    threads: engineThreads(null),
  });
  const runs = [];
  for (const prompt of prompts) {
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
  prompts = PROMPTS,
  vocab = 512,
): Promise<Float64Array[][]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const result: Float64Array[][] = [];
  try {
    for (const [p, prompt] of prompts.entries()) {
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
          const logProbs = new Float64Array(vocab).fill(-Infinity);
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

/** Perplexity, in llama.cpp, of the tokens our greedy decoding chose after each prompt (held-out text for the GGUF). */
export async function llamaCppPerplexity(
  llama: Llama,
  file: string,
  ours: { ids: number[] }[],
  prompts = PROMPTS,
  vocab = 512,
): Promise<number> {
  const theirs = await llamaCppLogProbs(llama, file, ours, undefined, prompts, vocab);
  const nll = prompts.flatMap((_, p) => ours[p].ids.map((id, step) => -theirs[p][step][id]));
  return Math.exp(nll.reduce((a, b) => a + b, 0) / nll.length);
}
