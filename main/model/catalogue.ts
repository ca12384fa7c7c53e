// A catalogue of real models the studio trains, each as its Hugging Face repository publishes it: the config.json
// fields parseModelConfig reads (the rest of each file is left out), so a memory plan can be made for any of them
// before a byte is downloaded. Values from each repository's config.json (main branch); the stored dtype is bf16.
import { parseModelConfig, type ModelSpec } from './architecture.js';

export interface CatalogueModel {
  /** The Hugging Face repository, org/name. */
  repoId: string;
  /** A short name for tables ("Qwen2.5 7B"). */
  name: string;
  /** The license id on the repository's card (apache-2.0, llama3.2, qwen-research...). */
  license: string;
  /** The Hub asks for access before the weights can be downloaded: a token of an account it was granted to. */
  gated: boolean;
  /** The config.json fields parseModelConfig reads, as the repository has them. */
  config: Record<string, unknown>;
}

/** Llama 3.1 and 3.2 extend their 8k context with this frequency scaling (only the factor differs). */
const llama3Scaling = (factor: number) => ({
  factor,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  original_max_position_embeddings: 8192,
  rope_type: 'llama3',
});

export const MODEL_CATALOGUE: readonly CatalogueModel[] = [
  {
    repoId: 'HuggingFaceTB/SmolLM2-135M-Instruct',
    name: 'SmolLM2 135M',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'llama',
      hidden_size: 576,
      intermediate_size: 1536,
      num_hidden_layers: 30,
      num_attention_heads: 9,
      num_key_value_heads: 3,
      vocab_size: 49152,
      tie_word_embeddings: true,
      max_position_embeddings: 8192,
      rope_theta: 100000,
      rope_scaling: null,
      rms_norm_eps: 1e-5,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'HuggingFaceTB/SmolLM2-360M-Instruct',
    name: 'SmolLM2 360M',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'llama',
      hidden_size: 960,
      intermediate_size: 2560,
      num_hidden_layers: 32,
      num_attention_heads: 15,
      num_key_value_heads: 5,
      vocab_size: 49152,
      tie_word_embeddings: true,
      max_position_embeddings: 8192,
      rope_theta: 100000,
      rope_scaling: null,
      rms_norm_eps: 1e-5,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'HuggingFaceTB/SmolLM2-1.7B-Instruct',
    name: 'SmolLM2 1.7B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'llama',
      hidden_size: 2048,
      intermediate_size: 8192,
      num_hidden_layers: 24,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      vocab_size: 49152,
      tie_word_embeddings: true,
      max_position_embeddings: 8192,
      rope_theta: 130000,
      rope_scaling: null,
      rms_norm_eps: 1e-5,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen2.5-0.5B-Instruct',
    name: 'Qwen2.5 0.5B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'qwen2',
      hidden_size: 896,
      intermediate_size: 4864,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      vocab_size: 151936,
      tie_word_embeddings: true,
      max_position_embeddings: 32768,
      rope_theta: 1000000.0,
      rms_norm_eps: 1e-6,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen2.5-1.5B-Instruct',
    name: 'Qwen2.5 1.5B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'qwen2',
      hidden_size: 1536,
      intermediate_size: 8960,
      num_hidden_layers: 28,
      num_attention_heads: 12,
      num_key_value_heads: 2,
      vocab_size: 151936,
      tie_word_embeddings: true,
      max_position_embeddings: 32768,
      rope_theta: 1000000.0,
      rms_norm_eps: 1e-6,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen2.5-3B-Instruct',
    name: 'Qwen2.5 3B',
    license: 'qwen-research',
    gated: false,
    config: {
      model_type: 'qwen2',
      hidden_size: 2048,
      intermediate_size: 11008,
      num_hidden_layers: 36,
      num_attention_heads: 16,
      num_key_value_heads: 2,
      vocab_size: 151936,
      tie_word_embeddings: true,
      max_position_embeddings: 32768,
      rope_theta: 1000000.0,
      rms_norm_eps: 1e-6,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen2.5-7B-Instruct',
    name: 'Qwen2.5 7B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'qwen2',
      hidden_size: 3584,
      intermediate_size: 18944,
      num_hidden_layers: 28,
      num_attention_heads: 28,
      num_key_value_heads: 4,
      // Larger than the tokenizer's 151,665 entries (padded for the GPUs), and untied: two [152064, 3584] tables.
      vocab_size: 152064,
      tie_word_embeddings: false,
      max_position_embeddings: 32768,
      rope_theta: 1000000.0,
      rms_norm_eps: 1e-6,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen3-0.6B',
    name: 'Qwen3 0.6B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'qwen3',
      hidden_size: 1024,
      intermediate_size: 3072,
      num_hidden_layers: 28,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      // Qwen3's heads are 128 wide whatever the hidden size: H * D is 2 C here.
      head_dim: 128,
      vocab_size: 151936,
      tie_word_embeddings: true,
      max_position_embeddings: 40960,
      rope_theta: 1000000,
      rope_scaling: null,
      rms_norm_eps: 1e-6,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen3-1.7B',
    name: 'Qwen3 1.7B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'qwen3',
      hidden_size: 2048,
      intermediate_size: 6144,
      num_hidden_layers: 28,
      num_attention_heads: 16,
      num_key_value_heads: 8,
      head_dim: 128,
      vocab_size: 151936,
      tie_word_embeddings: true,
      max_position_embeddings: 40960,
      rope_theta: 1000000,
      rope_scaling: null,
      rms_norm_eps: 1e-6,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen3-4B',
    name: 'Qwen3 4B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'qwen3',
      hidden_size: 2560,
      intermediate_size: 9728,
      num_hidden_layers: 36,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 128,
      vocab_size: 151936,
      tie_word_embeddings: true,
      max_position_embeddings: 40960,
      rope_theta: 1000000,
      rope_scaling: null,
      rms_norm_eps: 1e-6,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'Qwen/Qwen3-8B',
    name: 'Qwen3 8B',
    license: 'apache-2.0',
    gated: false,
    config: {
      model_type: 'qwen3',
      hidden_size: 4096,
      intermediate_size: 12288,
      num_hidden_layers: 36,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 128,
      vocab_size: 151936,
      tie_word_embeddings: false,
      max_position_embeddings: 40960,
      rope_theta: 1000000,
      rope_scaling: null,
      rms_norm_eps: 1e-6,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'meta-llama/Llama-3.2-1B-Instruct',
    name: 'Llama 3.2 1B',
    license: 'llama3.2',
    gated: true,
    config: {
      model_type: 'llama',
      hidden_size: 2048,
      intermediate_size: 8192,
      num_hidden_layers: 16,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 64,
      vocab_size: 128256,
      tie_word_embeddings: true,
      max_position_embeddings: 131072,
      rope_theta: 500000.0,
      rope_scaling: llama3Scaling(32.0),
      rms_norm_eps: 1e-5,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'meta-llama/Llama-3.2-3B-Instruct',
    name: 'Llama 3.2 3B',
    license: 'llama3.2',
    gated: true,
    config: {
      model_type: 'llama',
      hidden_size: 3072,
      intermediate_size: 8192,
      num_hidden_layers: 28,
      num_attention_heads: 24,
      num_key_value_heads: 8,
      head_dim: 128,
      vocab_size: 128256,
      tie_word_embeddings: true,
      max_position_embeddings: 131072,
      rope_theta: 500000.0,
      rope_scaling: llama3Scaling(32.0),
      rms_norm_eps: 1e-5,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'meta-llama/Llama-3.1-8B-Instruct',
    name: 'Llama 3.1 8B',
    license: 'llama3.1',
    gated: true,
    config: {
      model_type: 'llama',
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      vocab_size: 128256,
      tie_word_embeddings: false,
      max_position_embeddings: 131072,
      rope_theta: 500000.0,
      rope_scaling: llama3Scaling(8.0),
      rms_norm_eps: 1e-5,
      attention_bias: false,
      torch_dtype: 'bfloat16',
    },
  },
  {
    repoId: 'mistralai/Mistral-7B-Instruct-v0.3',
    name: 'Mistral 7B',
    license: 'apache-2.0',
    gated: true,
    config: {
      model_type: 'mistral',
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      vocab_size: 32768,
      tie_word_embeddings: false,
      max_position_embeddings: 32768,
      rope_theta: 1000000.0,
      rms_norm_eps: 1e-5,
      torch_dtype: 'bfloat16',
    },
  },
];

/** Bytes per stored weight element of each config.json `torch_dtype`. */
const DTYPE_BYTES: Readonly<Record<string, number>> = { float32: 4, bfloat16: 2, float16: 2 };

export interface CatalogueSpec {
  repoId: string;
  name: string;
  license: string;
  gated: boolean;
  /** The config read by the same parser as a downloaded model's config.json. */
  spec: ModelSpec;
  /** Bytes per stored weight element (2 for bf16). */
  weightBytesPerElement: number;
}

/** Every catalogue model's ModelSpec, parsed as a model folder's config.json is (a bad entry throws, naming it). */
export function catalogueSpecs(): CatalogueSpec[] {
  return MODEL_CATALOGUE.map(({ repoId, name, license, gated, config }) => {
    const file = `catalogue ${repoId} config.json`;
    const bytes = DTYPE_BYTES[String(config.torch_dtype)];
    if (bytes === undefined) throw new Error(`${file}: torch_dtype ${String(config.torch_dtype)} is not known`);
    return { repoId, name, license, gated, spec: parseModelConfig(config, file), weightBytesPerElement: bytes };
  });
}
