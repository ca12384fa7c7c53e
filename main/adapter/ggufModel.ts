// A merged model as one GGUF v3 file that llama.cpp (and so Ollama, LM Studio) loads on its own: the LoRA adapter
// merged into its base (W' = W + scale * B A, merge.ts), each tensor named, permuted and typed as llama.cpp's
// convert_hf_to_gguf.py gives it for llama (mistral as llama), qwen2 and qwen3, quantized by ggmlQuants.ts, with the
// hyperparameters, the byte-level BPE tokenizer, the chat template and where the weights came from.
// Streamed: the header is planned from shapes and types, then one merged fp32 tensor at a time is encoded and
// written into a temp file that is fsynced and renamed; a failure (a full disk) leaves nothing behind.
// Legend: V = vocabulary, C = hidden width, D = head width; HF weights are W [rows, cols], GGUF ne = (cols, rows).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../shared/errors.js';
import { ropeInverseFrequencies, type ModelSpec } from '../model/architecture.js';
import { chatTemplateFor } from '../model/chatTemplate.js';
import {
  encodeGgml,
  ggmlBytes,
  GgmlType,
  ggmlTypeFor,
  LLAMA_FILE_TYPE,
  type GgufModelQuant,
} from '../model/quant/ggmlQuants.js';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.js';
import { explainFileError } from '../util/fileErrors.js';
import {
  ALIGNMENT,
  bool,
  f32,
  GgufStreamWriter,
  permuteRopeRows,
  str,
  u32,
  ValueType,
  type MetadataValue,
  type TensorInfo,
} from './ggufFile.js';
import { ggufArchitecture } from './gguf.js';
import { openMergeSource } from './merge.js';

export interface GgufModelOptions {
  modelDir: string;
  adapterDir: string;
  outFile: string;
  quant: GgufModelQuant;
  /** After each tensor: how many of how many are written, and which. */
  onProgress?: (done: number, total: number, name: string) => void;
}

export interface GgufModelResult {
  gguf: string;
  bytes: number;
  tensors: number;
  mergedWeights: number;
  /** The base was a 4-bit checkpoint: merged into its dequantized weights. */
  fromQuantizedBase: boolean;
}

/** HF name after `model.layers.{i}.` → llama.cpp name after `blk.{i}.` (llama.cpp's tensor_mapping.py). */
const LAYER_NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.bias': 'attn_output.bias',
  'self_attn.q_norm.weight': 'attn_q_norm.weight',
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};
const GLOBAL_NAMES: Record<string, string> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight', // absent when tied: llama.cpp then reads token_embd for the logits
};

function ggufTensorName(hfName: string): string {
  const global = GLOBAL_NAMES[hfName];
  if (global) return global;
  const match = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const local = match && LAYER_NAMES[match[2]];
  if (!local) throw new Error(`ggufTensorName: no llama.cpp name for ${hfName}`);
  return `blk.${match[1]}.${local}`;
}

/** For llama, convert_hf_to_gguf permutes q_proj/k_proj weights and biases to llama.cpp's RoPE pairing. */
function ropeHeads(spec: ModelSpec, hfName: string): number | null {
  if (ggufArchitecture(spec) !== 'llama') return null;
  if (/\.q_proj\.(weight|bias)$/.test(hfName)) return spec.numHeads;
  if (/\.k_proj\.(weight|bias)$/.test(hfName)) return spec.numKvHeads;
  return null;
}

/**
 * Llama 3 rope scaling as convert_hf_to_gguf writes it: no metadata, a tensor rope_freqs.weight [D/2] of factors that
 * llama.cpp divides each frequency by (our scaled frequencies are the plain ones over these).
 */
function ropeFreqFactors(spec: ModelSpec): Float32Array {
  const scaled = ropeInverseFrequencies(spec);
  return Float32Array.from(scaled, (inv, i) => 1 / spec.ropeTheta ** ((2 * i) / spec.headDim) / inv);
}

interface PlannedTensor extends TensorInfo {
  /** Produces the tensor's fp32 values (merged, permuted), [rows, cols] row-major. */
  values: () => Float32Array;
  cols: number;
}

// Token types of llama.cpp (llama.h enum llama_token_type / gguf-py TokenType).
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;

/**
 * tokenizer.ggml.pre by the pre-tokenizer's split pattern, as convert_hf_to_gguf.py's get_vocab_base_pre names them
 * (it hashes the tokenization of a test text; the pattern is what that hash tells apart for these families).
 */
const PRE_TOKENIZERS: Record<string, string> = {
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    'llama-bpe',
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    'qwen2',
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The pre-tokenizer steps of tokenizer.json, a Sequence flattened. */
function preTokenizerSteps(tokenizerJson: Json): Json[] {
  const pre = tokenizerJson.pre_tokenizer;
  if (!isObject(pre)) return [];
  return pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers.filter(isObject) : [pre];
}

function specialTokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  return isObject(value) && typeof value.content === 'string' ? value.content : null;
}

/**
 * The tokenizer keys of a byte-level BPE tokenizer.json ("gpt2" in llama.cpp): tokens padded to V, token types,
 * merges, special ids, whether BOS/EOS are added (as the tokenizer itself adds them), and the chat template.
 */
function tokenizerMetadata(
  dir: string,
  adapterDir: string,
  spec: ModelSpec,
  tokenizer: ModelTokenizer,
): Map<string, MetadataValue> {
  const where = tokenizer.tokenizerFile;
  const json = tokenizer.tokenizerJson;
  const model = isObject(json.model) ? json.model : {};
  const steps = preTokenizerSteps(json);
  if (model.type !== 'BPE' || !steps.some((s) => s.type === 'ByteLevel')) {
    throw new UserError(
      `${where}: not a byte-level BPE tokenizer (as Llama 3, Qwen and SmolLM have); the GGUF model export does not support this tokenizer yet`,
    );
  }
  const split = steps.find((s) => s.type === 'Split');
  const pattern = split && isObject(split.pattern) ? split.pattern.Regex : undefined;
  const pre = typeof pattern === 'string' ? PRE_TOKENIZERS[pattern] : undefined;
  if (!pre) {
    const found = typeof pattern === 'string' ? `split pattern ${JSON.stringify(pattern).slice(0, 80)}…` : 'no split';
    throw new UserError(
      `${where}: its pre-tokenizer (${found}) is not one llama.cpp knows as Llama 3's or Qwen's; the GGUF model export supports those`,
    );
  }

  const V = spec.vocabSize;
  const tokens: string[] = Array.from({ length: V }, (_, i) => `[PAD${i}]`);
  const types = new Int32Array(V).fill(UNUSED);
  const place = (id: number, token: string, type: number) => {
    if (!Number.isInteger(id) || id < 0 || id >= V)
      throw new UserError(
        `${where}: token ${JSON.stringify(token)} has id ${id}, outside config.json's vocab_size ${V}`,
      );
    tokens[id] = token;
    types[id] = type;
  };
  const vocab = isObject(model.vocab) ? model.vocab : {};
  for (const [token, id] of Object.entries(vocab)) place(Number(id), token, NORMAL);
  for (const added of Array.isArray(json.added_tokens) ? json.added_tokens.filter(isObject) : []) {
    place(Number(added.id), String(added.content), added.special === true ? CONTROL : USER_DEFINED);
  }
  const merges = (Array.isArray(model.merges) ? model.merges : []).map((m) =>
    Array.isArray(m) ? m.join(' ') : String(m),
  );

  const metadata = new Map<string, MetadataValue>([
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str(pre)],
    ['tokenizer.ggml.tokens', { type: ValueType.ARRAY, items: ValueType.STRING, value: tokens }],
    ['tokenizer.ggml.token_type', { type: ValueType.ARRAY, items: ValueType.INT32, value: types }],
    ['tokenizer.ggml.merges', { type: ValueType.ARRAY, items: ValueType.STRING, value: merges }],
  ]);

  // Special ids from tokenizer_config.json, else config.json's (as gguf-py's SpecialVocab falls back).
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Json;
  const specialId = (kind: 'bos' | 'eos' | 'pad'): number | undefined => {
    const text = specialTokenText(tokenizer.config[`${kind}_token`]);
    const id = text === null ? undefined : tokenizer.tokenToId(text);
    if (id !== undefined) return id;
    const fromConfig = config[`${kind}_token_id`];
    return typeof fromConfig === 'number' && Number.isInteger(fromConfig) && fromConfig < V ? fromConfig : undefined;
  };
  // Whether BOS / EOS are added: what the tokenizer's post-processor does to a plain text.
  const bare = tokenizer.encode('a', { addSpecialTokens: false });
  const full = tokenizer.encode('a', { addSpecialTokens: true });
  const addsBos = full.length > bare.length && full[0] !== bare[0];
  const addsEos = full.length > bare.length && full[full.length - 1] !== bare[bare.length - 1];
  const bos = addsBos ? full[0] : specialId('bos');
  const eos = specialId('eos') ?? (addsEos ? full[full.length - 1] : undefined);
  const pad = specialId('pad');
  if (bos !== undefined) metadata.set('tokenizer.ggml.bos_token_id', u32(bos));
  if (eos !== undefined) metadata.set('tokenizer.ggml.eos_token_id', u32(eos));
  if (pad !== undefined) metadata.set('tokenizer.ggml.padding_token_id', u32(pad));
  metadata.set('tokenizer.ggml.add_bos_token', bool(addsBos));
  metadata.set('tokenizer.ggml.add_eos_token', bool(addsEos));
  const template = chatTemplateFor(dir, tokenizer.config, adapterDir)?.text;
  if (template) metadata.set('tokenizer.chat_template', str(template));
  return metadata;
}

/** This package's version, from the nearest package.json named peft-studio above this file (source or dist). */
function studioVersion(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!fs.existsSync(file)) continue;
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'peft-studio' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

/** Merges the adapter into its base and writes one llama.cpp model GGUF of type `quant`. */
export function writeGgufModel(options: GgufModelOptions): GgufModelResult {
  const outFile = path.resolve(options.outFile);
  if (fs.existsSync(outFile) && fs.statSync(outFile).isDirectory())
    throw new UserError(`${outFile}: is a folder; give the path of the .gguf file to write`);
  const source = openMergeSource(options.modelDir, options.adapterDir);
  const { folder } = source;
  const { spec } = folder;
  const arch = ggufArchitecture(spec);
  if (spec.ropeScaling && arch !== 'llama')
    throw new UserError(
      `${folder.dir}/config.json: llama3 rope_scaling on ${spec.modelType}: llama.cpp reads it only for llama`,
    );
  const tokenizer = loadTokenizer(folder.dir);
  const tokenizerKeys = tokenizerMetadata(folder.dir, path.resolve(options.adapterDir), spec, tokenizer);

  // The tensors: token_embd, output_norm, output, then each layer's, as convert_hf_to_gguf orders a llama checkpoint.
  const order = (name: string) => {
    const layer = /^model\.layers\.(\d+)\./.exec(name);
    return layer ? Number(layer[1]) + 1 : 0;
  };
  const entries = [...source.entries].sort((a, b) => order(a.name) - order(b.name) || a.name.localeCompare(b.name));
  const outputName = spec.tieWordEmbeddings ? 'token_embd.weight' : 'output.weight';
  // llama.cpp's LLM_TYPE_70B (llama-model.cpp): 80 layers of llama with fewer KV heads than heads, or of qwen2.
  const is70B = spec.numLayers === 80 && (arch === 'qwen2' || (arch === 'llama' && spec.numKvHeads !== spec.numHeads));
  const planned: PlannedTensor[] = entries.map(({ name, shape }) => {
    const ggufName = ggufTensorName(name);
    const type = ggmlTypeFor(ggufName, shape, options.quant, {
      isOutput: ggufName === outputName,
      layers: spec.numLayers,
      is70B,
    });
    const count = shape.reduce((a, b) => a * b, 1);
    const cols = shape[shape.length - 1];
    const heads = ropeHeads(spec, name);
    return {
      name: ggufName,
      ne: [...shape].reverse(),
      type,
      bytes: ggmlBytes(type, count),
      cols,
      values: () => {
        const merged = source.mergedWeight(name);
        return heads ? permuteRopeRows(merged, shape.length > 1 ? cols : 1, heads, false) : merged;
      },
    };
  });
  if (spec.ropeScaling) {
    const factors = ropeFreqFactors(spec);
    planned.push({
      name: 'rope_freqs.weight',
      ne: [factors.length],
      type: GgmlType.F32,
      bytes: factors.byteLength,
      cols: factors.length,
      values: () => factors,
    });
  }

  const base = path.basename(folder.dir);
  const adapterName = path.basename(path.resolve(options.adapterDir));
  const key = (k: string) => `${arch}.${k}`;
  const metadata = new Map<string, MetadataValue>([
    ['general.architecture', str(arch)],
    ['general.type', str('model')],
    ['general.name', str(`${base} + ${adapterName}`)],
    ['general.description', str(`${base} with the LoRA adapter ${adapterName} merged in, by PEFT Studio`)],
    ['general.file_type', u32(LLAMA_FILE_TYPE[options.quant])],
    ['general.quantization_version', u32(2)], // GGML_QNT_VERSION
    ['general.alignment', u32(ALIGNMENT)],
    ['general.base_model.count', u32(1)],
    ['general.base_model.0.name', str(base)],
    ['peft_studio.version', str(studioVersion())],
    ['peft_studio.adapter', str(adapterName)],
    ['peft_studio.from_quantized_base', bool(source.fromQuantizedBase)],
    [key('context_length'), u32(spec.maxPositionEmbeddings)],
    [key('embedding_length'), u32(spec.hiddenSize)],
    [key('block_count'), u32(spec.numLayers)],
    [key('feed_forward_length'), u32(spec.intermediateSize)],
    [key('attention.head_count'), u32(spec.numHeads)],
    [key('attention.head_count_kv'), u32(spec.numKvHeads)],
    [key('attention.layer_norm_rms_epsilon'), f32(spec.rmsNormEps)],
    [key('attention.key_length'), u32(spec.headDim)],
    [key('attention.value_length'), u32(spec.headDim)],
    [key('rope.freq_base'), f32(spec.ropeTheta)],
    [key('rope.dimension_count'), u32(spec.headDim)],
    [key('vocab_size'), u32(spec.vocabSize)],
    ...tokenizerKeys,
  ]);

  const writer = new GgufStreamWriter(outFile, metadata, planned);
  try {
    planned.forEach((t, i) => {
      writer.write(encodeGgml(t.type, t.values(), t.cols));
      options.onProgress?.(i + 1, planned.length, t.name);
    });
    writer.close();
  } catch (err) {
    writer.abort();
    throw explainFileError(err, outFile) ?? err;
  }
  return {
    gguf: outFile,
    bytes: fs.statSync(outFile).size,
    tensors: planned.length,
    mergedWeights: source.mergedWeights,
    fromQuantizedBase: source.fromQuantizedBase,
  };
}
