// The merged model GGUF (main/adapter/ggufModel.ts) and its quantizers (main/model/quant/ggmlQuants.ts):
//  - Q8_0 and Q4_0 blocks byte-identical to a direct port of llama.cpp's reference C (quantize_row_q8_0_ref,
//    quantize_row_q4_0_ref and ggml_compute_fp32_to_fp16 from ggml-quants.c / ggml-impl.h, written out below), and
//    Q4_0 also to gguf-py's blocks (test/fixtures/numerics/int4, made by test/reference/make_int4_fixtures.py).
//    llama.cpp's own quantizer is not reachable from the node-llama-cpp package, and the bench venv has no gguf-py
//    now, so there are no gguf-py Q8_0 fixtures.
//  - In real llama.cpp (node-llama-cpp's prebuilt CPU build; nothing downloaded or compiled): tiny llama (tied
//    embeddings, llama3 rope scaling), qwen2 (q/k/v bias) and qwen3 (q/k norm) models with a random LoRA adapter on
//    all seven projections: the f16 and q8_0 files give our own generation's greedy tokens (base + unmerged adapter,
//    fp32) for 32 tokens on 3 prompts; q4_0 loads and generates.
//  - llama.cpp's tokenization of 20 varied strings equals ours, for the Llama 3 and Qwen3 tokenizer.json files.
//  - Bad input: a prompt-tuning adapter, an out path that is a folder, an unknown quant, a write that fails midway.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gguf as parseGguf } from '@huggingface/gguf';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import { writeGgufModel } from '../../main/adapter/ggufModel.js';
import { saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { InferenceModel } from '../../main/engine/runtime/inferenceModel.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import {
  GgmlType,
  ggmlTypeFor,
  quantizeQ4_0,
  quantizeQ8_0,
  type GgufModelQuant,
} from '../../main/model/quant/ggmlQuants.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../main/model/safetensors.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { argmax } from '../../main/playground/sampler.js';
import { Rng } from '../../main/util/random.js';
import { CLI, lastJson, runCliAsync } from '../support/cli.js';
import { randomLora, tempDir } from '../support/engine.js';

const ROOT = path.resolve(path.dirname(CLI), '../../..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

// ---- A direct port of ggml's reference C, kept apart from the code under test. ----

/** ggml-impl.h ggml_compute_fp32_to_fp16 (the portable bit-trick version), float32 arithmetic throughout. */
function cFp32ToFp16(f: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  const bitsOf = (x: number) => (buf.setFloat32(0, x, true), buf.getUint32(0, true));
  const fromBits = (b: number) => (buf.setUint32(0, b >>> 0, true), buf.getFloat32(0, true));
  const scaleToInf = 2 ** 112;
  const scaleToZero = 2 ** -110;
  let base = Math.fround(Math.fround(Math.abs(Math.fround(f)) * scaleToInf) * scaleToZero);
  const w = bitsOf(f);
  const shl1W = (w + w) >>> 0;
  const sign = w & 0x80000000;
  let bias = (shl1W & 0xff000000) >>> 0;
  if (bias < 0x71000000) bias = 0x71000000;
  base = Math.fround(fromBits(((bias >>> 1) + 0x07800000) >>> 0) + base);
  const bits = bitsOf(base);
  const expBits = (bits >>> 13) & 0x00007c00;
  const mantissaBits = bits & 0x00000fff;
  const nonsign = expBits + mantissaBits;
  return ((sign >>> 16) | (shl1W > 0xff000000 ? 0x7e00 : nonsign)) & 0xffff;
}

/**
 * C's (int8_t) of a float as x86 compiles it (cvttss2si, then the low byte): out of range and NaN convert to INT_MIN,
 * whose low byte is 0. C leaves that case undefined; it happens when 1 / d overflows (|max| < 2^-125).
 */
function toInt8(v: number): number {
  const i = Number.isFinite(v) && Math.abs(v) < 2 ** 31 ? Math.trunc(v) : -(2 ** 31);
  return (i << 24) >> 24;
}

/** quantize_row_q8_0_ref: block_q8_0 { ggml_half d; int8_t qs[32]; }. */
function cQuantizeRowQ8_0(x: Float32Array): Uint8Array {
  const QK8_0 = 32;
  const nb = x.length / QK8_0;
  const y = new Uint8Array(nb * 34);
  for (let i = 0; i < nb; i++) {
    let amax = 0; // absolute max
    for (let j = 0; j < QK8_0; j++) {
      const v = x[i * QK8_0 + j];
      amax = amax > Math.abs(v) ? amax : Math.abs(v); // MAX(amax, fabsf(v))
    }
    const d = Math.fround(amax / ((1 << 7) - 1));
    const id = d ? Math.fround(1.0 / d) : 0.0;
    const h = cFp32ToFp16(d);
    y[i * 34] = h & 0xff;
    y[i * 34 + 1] = h >> 8;
    for (let j = 0; j < QK8_0; ++j) {
      const x0 = Math.fround(x[i * QK8_0 + j] * id);
      const rounded = Math.sign(x0) * Math.floor(Math.abs(x0) + 0.5); // roundf: half away from zero
      y[i * 34 + 2 + j] = toInt8(rounded) & 0xff; // (int8_t)
    }
  }
  return y;
}

/** quantize_row_q4_0_ref: block_q4_0 { ggml_half d; uint8_t qs[16]; }. */
function cQuantizeRowQ4_0(x: Float32Array): Uint8Array {
  const qk = 32;
  const nb = x.length / qk;
  const y = new Uint8Array(nb * 18);
  for (let i = 0; i < nb; i++) {
    let amax = 0; // absolute max
    let max = 0;
    for (let j = 0; j < qk; j++) {
      const v = x[i * qk + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1.0 / d) : 0.0;
    const h = cFp32ToFp16(d);
    y[i * 18] = h & 0xff;
    y[i * 18 + 1] = h >> 8;
    for (let j = 0; j < qk / 2; ++j) {
      const x0 = Math.fround(x[i * qk + 0 + j] * id);
      const x1 = Math.fround(x[i * qk + qk / 2 + j] * id);
      const xi0 = Math.min(15, toInt8(Math.fround(x0 + 8.5))); // MIN(15, (int8_t)(x0 + 8.5f))
      const xi1 = Math.min(15, toInt8(Math.fround(x1 + 8.5)));
      y[i * 18 + 2 + j] = xi0 | (xi1 << 4);
    }
  }
  return y;
}

/** Random rows at several scales, then blocks made to hit the edges: zeros, exact halves, ties, tiny, huge. */
function testTensor(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) {
    const scale = [0.02, 1, 300, 1e-6][Math.floor(i / 32) % 4];
    x[i] = (rng.uniform() - 0.5) * 2 * scale;
  }
  const block = (b: number, values: (j: number) => number) => {
    for (let j = 0; j < 32; j++) x[b * 32 + j] = values(j);
  };
  block(0, () => 0);
  block(1, (j) => (j === 0 ? 127 : (j % 7) - 3 + 0.5)); // Q8_0: d = 1, x * id lands on halves
  block(2, (j) => (j === 3 ? -8 : j === 9 ? 8 : (j % 17) - 8 + 0.5)); // Q4_0: -8 first of a tie, codes on halves
  block(3, (j) => (j + 1) * 1e-30); // tiny: fp16 d underflows
  block(4, (j) => (j - 16) * 4e6); // huge: fp16 d overflows to infinity
  return x;
}

/** Blocks as hex, one per line: a failure shows the blocks that differ. */
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('ggml quantizers', () => {
  it('Q8_0 blocks are byte-identical to quantize_row_q8_0_ref', () => {
    for (const [rows, cols, seed] of [
      [8, 64, 1],
      [5, 160, 2],
      [3, 32, 3],
    ]) {
      const x = testTensor(rows, cols, seed);
      expect(hex(quantizeQ8_0(x, cols))).toBe(hex(cQuantizeRowQ8_0(x)));
    }
  });

  it('Q4_0 blocks are byte-identical to quantize_row_q4_0_ref and to gguf-py', () => {
    for (const [rows, cols, seed] of [
      [8, 64, 4],
      [5, 160, 5],
    ]) {
      const x = testTensor(rows, cols, seed);
      expect(hex(quantizeQ4_0(x, cols))).toBe(hex(cQuantizeRowQ4_0(x)));
    }
    const dir = path.join(FIXTURES, 'numerics', 'int4');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
      cases: {
        file: string;
        shape: [number, number];
        sections: Record<string, { byte_offset: number; length: number }>;
      };
    };
    for (const c of manifest.cases) {
      const bytes = fs.readFileSync(path.join(dir, c.file));
      const { input, q4_0 } = c.sections;
      const x = new Float32Array(bytes.buffer.slice(bytes.byteOffset + input.byte_offset).slice(0, input.length * 4));
      const expected = bytes.subarray(q4_0.byte_offset, q4_0.byte_offset + q4_0.length);
      expect(hex(quantizeQ4_0(x, c.shape[1])), c.file).toBe(hex(expected));
      expect(hex(cQuantizeRowQ4_0(x)), c.file).toBe(hex(expected));
    }
  });

  it('keeps 1-D tensors F32, the q4_0 output matrix Q8_0, and widths off the block F16, as llama.cpp does', () => {
    expect(ggmlTypeFor('blk.0.attn_norm.weight', [64], 'q4_0', false)).toBe(GgmlType.F32);
    expect(ggmlTypeFor('blk.0.attn_q.bias', [64], 'q8_0', false)).toBe(GgmlType.F32);
    expect(ggmlTypeFor('blk.0.attn_q.weight', [64, 64], 'f16', false)).toBe(GgmlType.F16);
    expect(ggmlTypeFor('blk.0.attn_q.weight', [64, 64], 'q8_0', false)).toBe(GgmlType.Q8_0);
    expect(ggmlTypeFor('blk.0.attn_q.weight', [64, 64], 'q4_0', false)).toBe(GgmlType.Q4_0);
    expect(ggmlTypeFor('token_embd.weight', [512, 64], 'q4_0', false)).toBe(GgmlType.Q4_0);
    expect(ggmlTypeFor('output.weight', [512, 64], 'q4_0', true)).toBe(GgmlType.Q8_0);
    expect(ggmlTypeFor('blk.0.ffn_down.weight', [64, 48], 'q4_0', false)).toBe(GgmlType.F16);
  });
});

// ---- Tiny models in llama.cpp ----

interface Case {
  arch: 'llama' | 'qwen2' | 'qwen3';
  tie: boolean;
  /** Extra config.json fields. */
  config?: Record<string, unknown>;
}
const CASES: Record<string, Case> = {
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
};
const PROMPTS = [
  [5, 17, 42, 99, 3],
  [300, 12, 7],
  [450, 451, 452, 453, 454, 455, 456, 457],
];
const NEW_TOKENS = 32;

let work: string;
// node-llama-cpp is ESM with a native addon: loaded once, in this worker.
let llama: import('node-llama-cpp').Llama;

beforeAll(async () => {
  work = tempDir('gguf-model');
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  llama = await getLlama({
    build: 'never',
    gpu: false,
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: 1,
  });
});

/**
 * A tiny model of `c` whose matrices are scaled to N(0, 0.15) as the numerics fixtures are (transformers' 0.02 gives
 * near-uniform logits, where any rounding flips a greedy choice), and a random LoRA adapter on every projection.
 */
function makeCase(name: string, c: Case): { modelDir: string; adapterDir: string } {
  const modelDir = path.join(work, `${name}-model`);
  createTinyModel(modelDir, {
    arch: c.arch,
    layers: 2,
    hidden: 64,
    heads: 4,
    kvHeads: 2,
    intermediate: 128,
    tie: c.tie,
  });
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
  const lora = randomLora(folder, { rank: 4, alpha: 8, dropout: 0, targets: [...ALL_TARGETS], useRslora: false }, 7);
  const adapterDir = path.join(work, `${name}-adapter`);
  saveLoraAdapter(adapterDir, lora, modelDir);
  return { modelDir, adapterDir };
}

/** Our greedy tokens with the unmerged adapter (scale 1), and the log-softmax that chose each. */
async function ourGreedy(modelDir: string, adapterDir: string) {
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
 * greedy steps saw, evaluated in one batch, so one near-tie cannot send the two sides down different texts.
 */
async function llamaCppLogProbs(file: string, runs: { ids: number[] }[]) {
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
function worstLogProbError(a: Float64Array, b: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (Math.max(a[i], b[i]) < Math.log(1e-4)) continue;
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  return worst;
}

// Tolerances on log-probabilities (tokens above 1e-4), from what llama.cpp computes: with F16 weights its CPU matmul
// also rounds activations to f16 (about 5e-4 relative per product); with Q8_0 weights it quantizes activations to
// Q8_0 blocks too (up to 1/254 of a block's largest value each). Logits here span about ±10, so f16 stays under 0.05
// and q8_0 under 0.5 (measured: 0.02 and 0.3); a wrong permutation, tensor or hyperparameter gives errors of whole
// units. A greedy choice may differ only where our own top two are closer than twice that: both sides' errors meet.
const LOGPROB_TOLERANCE: Record<'f16' | 'q8_0', number> = { f16: 0.05, q8_0: 0.5 };

// Q4_0 on these tiny random models (N(0, 0.15) weights, 64 wide) costs far more than on trained ones, where llama.cpp
// reports a few percent; the bound only says the blocks decode to the model (a misread block gives perplexities of
// hundreds).
const Q4_0_PERPLEXITY_RATIO = 2;

function topTwoGap(logProbs: Float64Array): number {
  const sorted = [...logProbs].sort((x, y) => y - x);
  return sorted[0] - sorted[1];
}

describe.each(Object.keys(CASES))('%s model GGUF in llama.cpp', (name) => {
  let dirs: { modelDir: string; adapterDir: string };
  let ours: Awaited<ReturnType<typeof ourGreedy>>;
  const files: Partial<Record<GgufModelQuant, string>> = {};

  beforeAll(async () => {
    dirs = makeCase(name, CASES[name]);
    ours = await ourGreedy(dirs.modelDir, dirs.adapterDir);
    for (const quant of ['f16', 'q8_0', 'q4_0'] as const) {
      files[quant] = writeGgufModel({ ...dirs, outFile: path.join(work, `${name}-${quant}.gguf`), quant }).gguf;
    }
  });

  it('carries the metadata and tensor types llama.cpp reads', async () => {
    const { metadata, tensorInfos } = await parseGguf(files.q4_0!, { allowLocalFile: true });
    const arch = CASES[name].arch;
    const meta = metadata as unknown as Record<string, unknown>;
    expect(meta['general.architecture']).toBe(arch);
    expect(meta['general.type']).toBe('model');
    expect(meta['general.file_type']).toBe(2);
    expect(meta[`${arch}.block_count`]).toBe(2);
    expect(meta[`${arch}.attention.head_count_kv`]).toBe(2);
    expect(meta['tokenizer.ggml.model']).toBe('gpt2');
    expect(meta['tokenizer.ggml.pre']).toBe('qwen2'); // the tiny tokenizer splits as Qwen2's
    expect((meta['tokenizer.ggml.tokens'] as string[]).length).toBe(512);
    expect(String(meta['tokenizer.chat_template'])).toContain('<|im_start|>');
    const types = new Map(tensorInfos.map((t) => [t.name, t.dtype as number]));
    expect(types.get('blk.0.attn_norm.weight')).toBe(GgmlType.F32);
    expect(types.get('blk.0.ffn_down.weight')).toBe(GgmlType.Q4_0);
    // The output matrix (token_embd when tied) one step up, as llama-quantize's Q4_0 mix raises it.
    expect(types.get(CASES[name].tie ? 'token_embd.weight' : 'output.weight')).toBe(GgmlType.Q8_0);
    expect(types.has('output.weight')).toBe(!CASES[name].tie);
    expect(types.has('rope_freqs.weight')).toBe(name === 'llama');
    expect(types.has('blk.1.attn_q.bias')).toBe(arch === 'qwen2');
    expect(types.has('blk.1.attn_k_norm.weight')).toBe(arch === 'qwen3');
  });

  it.each(['f16', 'q8_0'] as const)(
    '%s picks our greedy token with the adapter at each of 32 steps on 3 prompts',
    async (quant) => {
      const theirs = await llamaCppLogProbs(files[quant]!, ours);
      let worst = 0;
      let nearTies = 0;
      PROMPTS.forEach((_, p) => {
        ours[p].logProbs.forEach((mine, step) => {
          const error = worstLogProbError(mine, theirs[p][step]);
          worst = Math.max(worst, error);
          expect(error, `prompt ${p} step ${step}: log-probability error`).toBeLessThan(LOGPROB_TOLERANCE[quant]);
          if (argmax(theirs[p][step]) === ours[p].ids[step]) return;
          nearTies++;
          expect(topTwoGap(mine), `prompt ${p} step ${step}: llama.cpp chose another token`).toBeLessThan(
            2 * LOGPROB_TOLERANCE[quant],
          );
        });
      });
      console.log(`${name} ${quant}: worst log-probability error ${worst.toExponential(2)}, near ties ${nearTies}`);
    },
  );

  it('q4_0 predicts our text about as well as f16 does', async () => {
    // Perplexity, in llama.cpp, of the 96 tokens our greedy decoding chose (a held-out text for the GGUF).
    const perplexity = async (file: string) => {
      const theirs = await llamaCppLogProbs(file, ours);
      const nll = PROMPTS.flatMap((_, p) => ours[p].ids.map((id, step) => -theirs[p][step][id]));
      return Math.exp(nll.reduce((a, b) => a + b, 0) / nll.length);
    };
    const [f16, q4] = [await perplexity(files.f16!), await perplexity(files.q4_0!)];
    console.log(`${name}: perplexity of our greedy text in llama.cpp, f16 ${f16.toFixed(3)}, q4_0 ${q4.toFixed(3)}`);
    expect(q4 / f16).toBeLessThan(Q4_0_PERPLEXITY_RATIO);
  });
});

const TOKENIZER_TEXTS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  "I'll say it's what they'd've DONE",
  '1234567890 and 3.14159, 1,000,000',
  '  two leading spaces, trailing   ',
  'tabs\tand\nnew\n\nlines\r\n',
  'def f(x):\n    return x ** 2  # square',
  'const a = [1, 2, 3].map((v) => v * 2);',
  'Ünïcödé àccents: café, naïve, Zürich',
  '日本語のテキストと中文文本',
  'Emoji 🙂🚀 and symbols ©®™ ∑∫√',
  'Привет, мир! Γειά σου κόσμε',
  'مرحبا بالعالم',
  '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
  'https://example.com/path?query=1&x=y#frag',
  'UPPER lower MiXeD CaSe',
  '...!!!???---___',
  'a',
  '    \n    indented block\n',
  'email: someone@example.org, phone: +1 (555) 010-9999',
];

/**
 * A tiny qwen3 model (1 layer, 32 wide) carrying a real tokenizer: vocab_size as the tokenizer's family pads it,
 * embeddings of zeros (only the vocabulary is under test), and a random adapter to merge.
 */
function modelWithTokenizer(name: string, vocabSize: number): { modelDir: string; adapterDir: string } {
  const modelDir = path.join(work, `${name}-tokenizer-model`);
  createTinyModel(modelDir, {
    arch: 'qwen3',
    layers: 1,
    hidden: 32,
    heads: 2,
    kvHeads: 1,
    intermediate: 32,
    tie: true,
  });
  for (const file of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(FIXTURES, 'templates', name, file), path.join(modelDir, file));
  const configFile = path.join(modelDir, 'config.json');
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  fs.writeFileSync(configFile, JSON.stringify({ ...config, vocab_size: vocabSize }));
  const weights = path.join(modelDir, 'model.safetensors');
  const tensors = Object.fromEntries(
    [...readSafetensorsHeader(weights)].map(([key, entry]) => {
      const shape = key === 'model.embed_tokens.weight' ? [vocabSize, 32] : entry.shape;
      const data = key === 'model.embed_tokens.weight' ? new Float32Array(vocabSize * 32) : readTensorF32(entry);
      return [key, { dtype: 'F32' as const, shape, data }];
    }),
  );
  writeSafetensors(weights, tensors);
  const folder = openModelFolder(modelDir);
  const adapterDir = path.join(work, `${name}-tokenizer-adapter`);
  const settings = { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj' as const], useRslora: false };
  saveLoraAdapter(adapterDir, randomLora(folder, settings, 3), modelDir);
  return { modelDir, adapterDir };
}

describe.each([
  ['llama3', 128256, 'llama-bpe', true],
  ['qwen3', 151936, 'qwen2', false],
] as const)('the %s tokenizer in a model GGUF', (name, vocabSize, pre, addsBos) => {
  it('tokenizes 20 varied strings in llama.cpp as tokenizer.json does', async () => {
    const dirs = modelWithTokenizer(name, vocabSize);
    const file = writeGgufModel({ ...dirs, outFile: path.join(work, `${name}-tokenizer.gguf`), quant: 'q8_0' }).gguf;
    const { metadata } = await parseGguf(file, { allowLocalFile: true });
    const meta = metadata as unknown as Record<string, unknown>;
    expect(meta['tokenizer.ggml.pre']).toBe(pre);
    expect(meta['tokenizer.ggml.add_bos_token']).toBe(addsBos);
    expect((meta['tokenizer.ggml.tokens'] as string[]).length).toBe(vocabSize);
    const ours = loadTokenizer(dirs.modelDir);
    const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
    try {
      for (const text of TOKENIZER_TEXTS) {
        expect(Array.from(model.tokenize(text, true)), JSON.stringify(text)).toEqual(
          ours.encode(text, { addSpecialTokens: false }),
        );
      }
    } finally {
      await model.dispose();
    }
  });
});

describe('peft-studio export --format gguf-model', () => {
  let dirs: { modelDir: string; adapterDir: string };
  beforeAll(() => {
    dirs = makeCase('cli', CASES.qwen2);
  });
  const exportArgs = (out: string, ...more: string[]) => [
    'export',
    '--format',
    'gguf-model',
    '--adapter',
    dirs.adapterDir,
    '--model',
    dirs.modelDir,
    '--out',
    out,
    ...more,
  ];

  it('writes the model, a Modelfile FROM it, and prints the ollama create line', async () => {
    const out = path.join(work, 'cli-out', 'model.gguf');
    const result = await runCliAsync(exportArgs(out, '--quant', 'q4_0', '--json'));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const printed = lastJson(result.stdout);
    const modelfile = path.join(work, 'cli-out', 'Modelfile');
    expect(printed).toEqual({ gguf: out, modelfile, ollama: `ollama create cli-adapter -f ${modelfile}` });
    const text = fs.readFileSync(modelfile, 'utf8');
    expect(text.split('\n')[0]).toBe('FROM ./model.gguf');
    expect(text).toContain('PARAMETER stop "<|im_end|>"');
    expect(text).not.toContain('ADAPTER');
    const { metadata } = await parseGguf(out, { allowLocalFile: true });
    expect((metadata as unknown as Record<string, unknown>)['general.file_type']).toBe(2);
    expect(fs.readdirSync(path.dirname(out)).sort()).toEqual(['Modelfile', 'model.gguf']);
  });

  it('refuses bad input in one line', async () => {
    const cases: [string[], RegExp][] = [
      [exportArgs(path.join(work, 'x.gguf'), '--quant', 'q5_k'), /--quant q5_k: expected one of f16, q8_0, q4_0/],
      [exportArgs(work), /is a folder; give the path of the \.gguf file/],
      [
        [...exportArgs(path.join(work, 'pt.gguf'))]
          .map((a) =>
            a === dirs.adapterDir ? path.join(FIXTURES, 'numerics', 'llama_gqa', 'prompt_tuning', 'adapter') : a,
          )
          .map((a) => (a === dirs.modelDir ? path.join(FIXTURES, 'numerics', 'llama_gqa', 'model') : a)),
        /prompt-tuning adapter has no weights to merge/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await runCliAsync(args);
      expect(result.code, result.stderr).not.toBe(0);
      expect(result.stderr.split('\n')[0]).toMatch(message);
    }
    expect(fs.existsSync(path.join(work, 'pt.gguf'))).toBe(false);
  });

  it('leaves nothing behind when a write fails midway (file size limit, as a full disk would)', () => {
    const dir = path.join(work, 'cli-full');
    fs.mkdirSync(dir);
    // SIGXFSZ ignored: a write past `ulimit -f` (in KiB) fails with EFBIG instead of killing the process.
    const command = `trap '' XFSZ; ulimit -f 40; exec "$0" "$@"`;
    const result = spawnSync('bash', ['-c', command, process.execPath, CLI, ...exportArgs(path.join(dir, 'm.gguf'))], {
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toMatch(/^peft-studio export: .*(EFBIG|file too large)/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
