// 4-bit checkpoints. bitsandbytes' (nf4, fp4): the `*-bnb-4bit` repositories users download, and our own
// quantize-on-load cache, which is written as one. The tensor layout of a quantized weight is in nf4.ts's header;
// config.json carries `quantization_config` (quant_method "bitsandbytes", load_in_4bit, bnb_4bit_quant_type,
// bnb_4bit_use_double_quant). Only the decoder layers' linear weights are quantized (transformers keeps lm_head and the
// embedding as they are). The cache's int4 format is ours (int4Checkpoint.ts): llama.cpp's Q4_0 values in ONNX
// Runtime's MatMulNBits layout, which generation multiplies by without dequantizing.
import { UserError } from '../../../shared/errors.js';
import { layerWeightNames, type ModelSpec } from '../architecture.js';
import { readTensorBytes, type TensorEntry } from '../safetensors.js';
import { dequantizeInt4 } from './int4.js';
import { INT4_QUANT_METHOD, parseInt4Config, readInt4Weights } from './int4Checkpoint.js';
import { BLOCK_SIZES_4BIT, dequantize4bit, dynamicMap8bit, NESTED_BLOCK_SIZE, quantMap4bit } from './nf4.js';
import type { BnbQuantStateJson, NestedAbsmax, Quantized4bit, QuantType4bit } from './nf4.js';

/** The 4-bit formats: bitsandbytes' nf4 and fp4, and our int4 (Q4_0 values, MatMulNBits layout). */
export type Format4bit = QuantType4bit | 'int4';

export interface Quant4bitConfig {
  quantType: Format4bit;
  /** bitsandbytes' double quantization of the absmax values (never for int4). */
  doubleQuant: boolean;
}

/** One quantized weight W [out, in]: where its tensors lie, and its quant state. */
export interface Quantized4bitWeight {
  name: string;
  shape: [number, number];
  quantType: Format4bit;
  blockSize: number;
  /**
   * bitsandbytes: U8 [n / 2, 1], two codes per byte, the first in the high nibble. int4: U8 [out, in / 32, 16], two
   * codes per byte, the first in the low nibble.
   */
  packed: TensorEntry;
  /** F32 [B], or U8 [B] (the 8-bit codes) with double quantization; int4: F16 [out, in / 32], the blocks' scales. */
  absmax: TensorEntry;
  /** Double quantization: F32 [ceil(B / 256)] scales of the absmax codes, and the offset added back. */
  nested: { absmax: TensorEntry; offset: number } | null;
}

const LINEAR_KEYS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

/**
 * The weights quantize-on-load stores in 4 bits: every decoder layer's seven projections, and an untied lm_head
 * (bitsandbytes' own checkpoints keep theirs 16-bit; both load).
 */
export function quantizableWeightNames(spec: ModelSpec): string[] {
  const names: string[] = [];
  for (let i = 0; i < spec.numLayers; i++) {
    const layer = layerWeightNames(spec, i);
    for (const key of LINEAR_KEYS) names.push(layer[key]);
  }
  if (!spec.tieWordEmbeddings) names.push(LM_HEAD);
  return names;
}

const LM_HEAD = 'lm_head.weight';

/** The weights a 4-bit checkpoint holds quantized: the layers' projections, and the lm_head when it is stored U8. */
export function quantizedWeightNames(spec: ModelSpec, tensors: Map<string, TensorEntry>): string[] {
  return quantizableWeightNames(spec).filter((name) => name !== LM_HEAD || tensors.get(name)?.dtype === 'U8');
}

const SUPPORTED =
  "supported: bitsandbytes 4-bit (nf4, fp4), the studio's own int4 cache or an unquantized F32/F16/BF16 checkpoint";

/** config.json's quantization_config: null for an unquantized model; a one-line error for what we cannot load. */
export function parseQuantizationConfig(config: Record<string, unknown>, file: string): Quant4bitConfig | null {
  const raw = config.quantization_config;
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new UserError(`${file}: "quantization_config" is not an object`);
  const q = raw as Record<string, unknown>;
  const method = typeof q.quant_method === 'string' ? q.quant_method : 'bitsandbytes';
  if (method === INT4_QUANT_METHOD) return parseInt4Config(q, file);
  if (method !== 'bitsandbytes') {
    throw new UserError(
      `${file}: quantization_config.quant_method "${method.slice(0, 40)}" is not supported (${SUPPORTED})`,
    );
  }
  if (q.load_in_8bit === true || q._load_in_8bit === true)
    throw new UserError(`${file}: an LLM.int8 (bitsandbytes 8-bit) checkpoint is not supported (${SUPPORTED})`);
  if (q.load_in_4bit !== true && q._load_in_4bit !== true)
    throw new UserError(`${file}: quantization_config has neither load_in_4bit nor load_in_8bit set (${SUPPORTED})`);
  const quantType = q.bnb_4bit_quant_type ?? 'fp4'; // bitsandbytes' default
  if (quantType !== 'nf4' && quantType !== 'fp4') {
    throw new UserError(
      `${file}: bnb_4bit_quant_type ${JSON.stringify(quantType)?.slice(0, 40)} is not supported (${SUPPORTED})`,
    );
  }
  return { quantType, doubleQuant: q.bnb_4bit_use_double_quant === true };
}

/** The quantization_config transformers writes for a model it quantized with these settings (compute in fp32). */
export function quantizationConfigJson(
  config: { quantType: QuantType4bit; doubleQuant: boolean },
  quantizedLmHead: boolean,
): Record<string, unknown> {
  return {
    _load_in_4bit: true,
    _load_in_8bit: false,
    bnb_4bit_compute_dtype: 'float32',
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: config.quantType,
    bnb_4bit_use_double_quant: config.doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    // transformers skips the lm_head unless told which modules to skip: none, when ours is 4-bit too.
    llm_int8_skip_modules: quantizedLmHead ? [] : null,
    llm_int8_threshold: 6.0,
    load_in_4bit: true,
    load_in_8bit: false,
    quant_method: 'bitsandbytes',
  };
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]) || v === b[i]);
}

function readF32(entry: TensorEntry): Float32Array {
  const bytes = readTensorBytes(entry);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/**
 * Reads the quant state of every weight in `names` from a 4-bit checkpoint's tensors and checks it against the
 * shapes the config implies. Each error names the file and the tensor.
 */
export function readQuantized4bitWeights(
  tensors: Map<string, TensorEntry>,
  expected: Map<string, number[]>,
  names: readonly string[],
  config: Quant4bitConfig,
): Map<string, Quantized4bitWeight> {
  if (config.quantType === 'int4') return readInt4Weights(tensors, expected, names);
  const bnbType = config.quantType;
  const out = new Map<string, Quantized4bitWeight>();
  const standardMap = quantMap4bit(bnbType);
  const nestedMap = dynamicMap8bit(true);
  for (const name of names) {
    const packed = tensors.get(name);
    if (!packed) throw new UserError(`weight "${name}" is missing from the 4-bit checkpoint`);
    const where = `${packed.file}: weight "${name}"`;
    const part = (suffix: string, dtype: TensorEntry['dtype'] | null): TensorEntry => {
      const entry = tensors.get(`${name}.${suffix}`);
      if (!entry) throw new UserError(`${where} has no "${suffix}" tensor, which a bitsandbytes 4-bit weight needs`);
      if (dtype && entry.dtype !== dtype)
        throw new UserError(`${where}.${suffix} is ${entry.dtype}, a bitsandbytes 4-bit checkpoint stores ${dtype}`);
      return entry;
    };
    if (packed.dtype !== 'U8') throw new UserError(`${where} is ${packed.dtype}, a 4-bit checkpoint stores it as U8`);
    const stateEntry = part(`quant_state.bitsandbytes__${bnbType}`, 'U8');
    let state: BnbQuantStateJson;
    try {
      state = JSON.parse(readTensorBytes(stateEntry).toString('utf8')) as BnbQuantStateJson;
    } catch {
      throw new UserError(`${where}: its quant_state is not JSON`);
    }
    if (state.quant_type !== bnbType)
      throw new UserError(`${where}: quant_type ${String(state.quant_type)}, config.json says ${bnbType}`);
    const shape = expected.get(name)!;
    if (!Array.isArray(state.shape) || state.shape.join(',') !== shape.join(','))
      throw new UserError(`${where}: quant_state shape [${String(state.shape)}], config.json implies [${shape}]`);
    const n = shape[0] * shape[1];
    if (!BLOCK_SIZES_4BIT.includes(state.blocksize) || n % state.blocksize !== 0)
      throw new UserError(`${where}: block size ${state.blocksize} is not supported for ${n} elements`);
    if (packed.byteLength !== n / 2)
      throw new UserError(`${where}: ${packed.byteLength} bytes, [${shape}] needs ${n / 2}`);
    if (!sameValues(readF32(part('quant_map', 'F32')), standardMap))
      throw new UserError(`${where}: quant_map is not bitsandbytes' ${bnbType} map`);
    const blocks = n / state.blocksize;
    let nested: Quantized4bitWeight['nested'] = null;
    const absmax = part('absmax', null);
    if (absmax.dtype === 'U8') {
      if (state.nested_offset === undefined || state.nested_blocksize !== 256)
        throw new UserError(`${where}: 8-bit absmax without the nested quant state of double quantization`);
      const nestedAbsmax = part('nested_absmax', 'F32');
      if (!sameValues(readF32(part('nested_quant_map', 'F32')), nestedMap))
        throw new UserError(`${where}: nested_quant_map is not bitsandbytes' dynamic 8-bit map`);
      if (nestedAbsmax.byteLength !== 4 * Math.ceil(blocks / 256))
        throw new UserError(
          `${where}.nested_absmax: ${nestedAbsmax.byteLength / 4} values, ${blocks} blocks need ${Math.ceil(blocks / 256)}`,
        );
      nested = { absmax: nestedAbsmax, offset: Math.fround(state.nested_offset) };
    } else if (absmax.dtype !== 'F32') {
      throw new UserError(`${where}.absmax is ${absmax.dtype}, expected F32 (or U8 with double quantization)`);
    }
    if (absmax.byteLength !== blocks * (absmax.dtype === 'U8' ? 1 : 4))
      throw new UserError(
        `${where}.absmax: ${absmax.shape} values, ${n} elements in blocks of ${state.blocksize} need ${blocks}`,
      );
    out.set(name, {
      name,
      shape: [shape[0], shape[1]],
      quantType: bnbType,
      blockSize: state.blocksize,
      packed,
      absmax,
      nested,
    });
  }
  return out;
}

/** A bitsandbytes weight's tensors read into memory, for the codec (dequantize4bit) to decode on the host. */
export function loadQuantized4bit(weight: Quantized4bitWeight): Quantized4bit {
  if (weight.quantType === 'int4') throw new Error(`${weight.name}: an int4 weight is not a bitsandbytes one`);
  const n = weight.shape[0] * weight.shape[1];
  const packed = new Uint8Array(readTensorBytes(weight.packed));
  const base = { quantType: weight.quantType, blockSize: weight.blockSize, length: n, packed };
  if (!weight.nested) return { ...base, absmax: readF32(weight.absmax), nested: null };
  const nested: NestedAbsmax = {
    codes: new Uint8Array(readTensorBytes(weight.absmax)),
    absmax: readF32(weight.nested.absmax),
    offset: weight.nested.offset,
    map: dynamicMap8bit(true),
    blockSize: NESTED_BLOCK_SIZE,
  };
  return { ...base, absmax: null, nested };
}

/** A quantized weight decoded on the host into W [out, in] fp32, whichever its format. */
export function dequantizeOnHost(weight: Quantized4bitWeight): Float32Array {
  if (weight.quantType !== 'int4') return dequantize4bit(loadQuantized4bit(weight));
  const scales = readTensorBytes(weight.absmax);
  const halves = new Uint16Array(scales.buffer.slice(scales.byteOffset, scales.byteOffset + scales.byteLength));
  return dequantizeInt4(new Uint8Array(readTensorBytes(weight.packed)), halves, weight.shape[0] * weight.shape[1]);
}
