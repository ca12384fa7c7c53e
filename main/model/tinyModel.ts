// Tiny, randomly initialised Hugging Face model folders (llama, qwen2, qwen3) for tests and the built-in demo:
// config.json, model.safetensors, tokenizer.json, tokenizer_config.json and generation_config.json, as transformers
// writes them, so that both our loader and transformers' from_pretrained accept the folder.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import { Rng } from '../util/random.js';
import { expectedShapes, parseModelConfig, type ModelSpec } from './architecture.js';
import { writeSafetensors, type TensorToWrite } from './safetensors.js';
import { buildTinyTokenizer, END_OF_TEXT_ID, IM_END_ID, tinyTokenizerConfig } from './tinyTokenizer.js';

export interface TinyModelOptions {
  arch: 'llama' | 'qwen2' | 'qwen3';
  layers: number;
  /** C: residual stream width; head width is hidden / heads. */
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  /** V: embedding rows; at least MIN_TINY_VOCAB so that every byte has a token. */
  vocab: number;
  dtype: 'f32' | 'bf16';
  /** lm_head shares model.embed_tokens.weight. */
  tie: boolean;
  /** Seeds the weight initialisation; the tokenizer does not depend on it. */
  seed: number;
}

export const DEFAULT_TINY_MODEL: Readonly<TinyModelOptions> = {
  arch: 'llama',
  layers: 2,
  hidden: 64,
  heads: 4, // head width 16
  kvHeads: 2, // grouped-query attention, as in every supported family
  intermediate: 128,
  vocab: 512, // every id is used by the tokenizer learned from the built-in corpus
  dtype: 'f32',
  tie: false,
  seed: 0,
};

/** The built-in demo model in resources/demo/model (about 1M parameters, 4 MB); test/tools/make-demo.mjs writes it. */
export const DEMO_TINY_MODEL: Readonly<TinyModelOptions> = {
  ...DEFAULT_TINY_MODEL,
  layers: 4,
  hidden: 128,
  heads: 4, // head width 32
  kvHeads: 2,
  intermediate: 384,
  vocab: 768, // the corpus yields 756 tokens: a larger table would only add rows no text ever uses
};

const INIT_STD = 0.02; // transformers' initializer_range for these families
const MAX_POSITIONS = 2048;

const ARCH_CONFIG: Record<TinyModelOptions['arch'], Record<string, unknown>> = {
  // Llama and Qwen3 read attention_bias; Qwen2 always has q/k/v biases and no such field.
  llama: {
    architectures: ['LlamaForCausalLM'],
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    attention_bias: false,
    mlp_bias: false,
    pretraining_tp: 1,
  },
  qwen2: {
    architectures: ['Qwen2ForCausalLM'],
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    use_sliding_window: false,
    sliding_window: null,
  },
  qwen3: {
    architectures: ['Qwen3ForCausalLM'],
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    attention_bias: false,
    use_sliding_window: false,
    sliding_window: null,
  },
};

function checkOptions(o: TinyModelOptions): void {
  for (const name of ['layers', 'hidden', 'heads', 'kvHeads', 'intermediate', 'vocab'] as const) {
    if (!Number.isInteger(o[name]) || o[name] <= 0)
      throw new UserError(`tiny model: ${name} must be a positive integer, found ${o[name]}`);
  }
  if (!Number.isInteger(o.seed)) throw new UserError(`tiny model: seed must be an integer, found ${o.seed}`);
  if (o.hidden % o.heads !== 0 || (o.hidden / o.heads) % 2 !== 0) {
    throw new UserError(`tiny model: hidden ${o.hidden} must split into ${o.heads} heads of even width`);
  }
  if (o.heads % o.kvHeads !== 0)
    throw new UserError(`tiny model: heads ${o.heads} must be a multiple of kvHeads ${o.kvHeads}`);
}

function modelConfig(o: TinyModelOptions): Record<string, unknown> {
  return {
    model_type: o.arch,
    ...ARCH_CONFIG[o.arch],
    hidden_size: o.hidden,
    intermediate_size: o.intermediate,
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    head_dim: o.hidden / o.heads,
    vocab_size: o.vocab,
    hidden_act: 'silu',
    max_position_embeddings: MAX_POSITIONS,
    rope_scaling: null,
    initializer_range: INIT_STD,
    attention_dropout: 0,
    tie_word_embeddings: o.tie,
    torch_dtype: o.dtype === 'bf16' ? 'bfloat16' : 'float32',
    use_cache: true,
    bos_token_id: END_OF_TEXT_ID,
    eos_token_id: END_OF_TEXT_ID,
    pad_token_id: END_OF_TEXT_ID,
  };
}

/**
 * Random weights as transformers initialises them (N(0, 0.02) matrices, RMSNorm scales of 1), except that biases are
 * small random numbers rather than zeros, so that a loader which drops them gives different outputs.
 */
function initialWeights(spec: ModelSpec, o: TinyModelOptions): Record<string, TensorToWrite> {
  const rng = new Rng(o.seed);
  const dtype = o.dtype === 'bf16' ? 'BF16' : 'F32';
  const tensors: Record<string, TensorToWrite> = {};
  // expectedShapes lists names in a fixed order, so the same seed always draws the same numbers for the same weight.
  for (const [name, shape] of expectedShapes(spec)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/norm\.weight$/.test(name)) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = INIT_STD * rng.normal();
    tensors[name] = { dtype, shape, data };
  }
  return tensors;
}

function writeJson(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Writes a tiny random model folder to `dir`, which must not exist or be empty. The files are written to a temp
 * folder beside it and moved into place at the end, so `dir` never holds half a model. Returns the model's spec.
 */
export function createTinyModel(dir: string, options: Partial<TinyModelOptions> = {}): ModelSpec {
  const o: TinyModelOptions = { ...DEFAULT_TINY_MODEL, ...options };
  checkOptions(o);
  const target = path.resolve(dir);
  if (fs.existsSync(target) && (!fs.statSync(target).isDirectory() || fs.readdirSync(target).length > 0)) {
    throw new UserError(`${target}: already exists and is not an empty folder; choose a new folder for the tiny model`);
  }
  const tokenizer = buildTinyTokenizer(o.vocab);
  const config = modelConfig(o);
  const spec = parseModelConfig(config, path.join(target, 'config.json'));

  fs.mkdirSync(path.dirname(target), { recursive: true });
  // mkdir, unlike mkdtemp, gives the folder the user's usual permissions rather than owner-only.
  const staging = path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}`);
  fs.mkdirSync(staging);
  try {
    writeJson(path.join(staging, 'config.json'), config);
    writeJson(path.join(staging, 'generation_config.json'), {
      bos_token_id: END_OF_TEXT_ID,
      // Stop at the end of a document or of a chat turn.
      eos_token_id: [END_OF_TEXT_ID, IM_END_ID],
      pad_token_id: END_OF_TEXT_ID,
    });
    writeJson(path.join(staging, 'tokenizer.json'), tokenizer.json);
    writeJson(path.join(staging, 'tokenizer_config.json'), tinyTokenizerConfig(MAX_POSITIONS));
    // transformers checks this field, which torch's save_file writes.
    writeSafetensors(path.join(staging, 'model.safetensors'), initialWeights(spec, o), { format: 'pt' });
    if (fs.existsSync(target)) fs.rmdirSync(target); // empty, checked above; Windows cannot rename over a folder
    fs.renameSync(staging, target);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return spec;
}
