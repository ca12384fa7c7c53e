// ggml's tensor encodings as llama.cpp's reference quantizers write them (ggml-quants.c), and the choice of which
// tensor of a model GGUF gets which (llama-quantize's mixes). One row-major W [rows, cols] at a time, blocks of 32
// consecutive elements of a row (the k-quants, kQuants.ts: super-blocks of 256); a row width that is not a multiple
// of the block cannot be blocked (see ggmlTypeFor).
//
// F16:  IEEE binary16, round to nearest even (ggml's GGML_FP32_TO_FP16, numpy's astype(float16)).
// Q8_0: block_q8_0 { fp16 d; int8 qs[32] } (34 bytes), quantize_row_q8_0_ref, float32 throughout:
//         amax = max |x| (C's MAX(a, b) = a > b ? a : b, so a NaN resets it), d = amax / 127, id = d ? 1 / d : 0,
//         qs[j] = roundf(x[j] * id) (half away from zero), d stored as fp16.
// Q4_0: block_q4_0 { fp16 d; uint8 qs[16] } (18 bytes), quantize_row_q4_0_ref: int4.ts's quantizeInt4 (bit-exact,
//         checked against gguf-py) repacked by int4ToQ4_0Blocks.
// Q5_0: block_q5_0 { fp16 d; uint8 qh[4]; uint8 qs[16] } (22 bytes), quantize_row_q5_0_ref: d = max / -16 (max the
//         x of largest |x|), code = min(31, (int8)(x / d + 16.5)), low nibbles paired j with j + 16, fifth bits in qh.
// Q5_1: block_q5_1 { fp16 d; fp16 m; uint8 qh[4]; uint8 qs[16] } (24 bytes), quantize_row_q5_1_ref: m = min x,
//         d = (max - min) / 31, code = (uint8)((x - m) / d + 0.5).
// Q5_0 and Q5_1 are only llama-quantize's fallbacks for Q4_K and Q5_K on rows not a multiple of 256 wide.
import { floatToF16Bits } from '../safetensors.js';
import { int4ToQ4_0Blocks, quantizeInt4 } from './int4.js';
import {
  Q4_K_BLOCK_BYTES,
  Q5_K_BLOCK_BYTES,
  Q6_K_BLOCK_BYTES,
  QK_K,
  quantizeQ4_K,
  quantizeQ5_K,
  quantizeQ6_K,
} from './kQuants.js';

/** ggml's tensor types that we write (ggml.h enum ggml_type). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
}

export const GGML_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + GGML_BLOCK;
const Q4_0_BLOCK_BYTES = 2 + GGML_BLOCK / 2;
const Q5_0_BLOCK_BYTES = 2 + 4 + GGML_BLOCK / 2;
const Q5_1_BLOCK_BYTES = 2 + 2 + 4 + GGML_BLOCK / 2;

import type { GgufModelQuant } from '../../../shared/runs.js';
export { GGUF_MODEL_QUANTS, type GgufModelQuant } from '../../../shared/runs.js';
/** general.file_type (llama.h enum llama_ftype). */
export const LLAMA_FILE_TYPE: Record<GgufModelQuant, number> = {
  f16: 1,
  q8_0: 7,
  q4_0: 2,
  q4_k_m: 15,
  q5_k_m: 17,
  q6_k: 18,
};

/** Bytes of `count` elements of `type` (count a multiple of the type's block). */
export function ggmlBytes(type: GgmlType, count: number): number {
  switch (type) {
    case GgmlType.F32:
      return count * 4;
    case GgmlType.F16:
      return count * 2;
    case GgmlType.Q8_0:
      return (count / GGML_BLOCK) * Q8_0_BLOCK_BYTES;
    case GgmlType.Q4_0:
      return (count / GGML_BLOCK) * Q4_0_BLOCK_BYTES;
    case GgmlType.Q5_0:
      return (count / GGML_BLOCK) * Q5_0_BLOCK_BYTES;
    case GgmlType.Q5_1:
      return (count / GGML_BLOCK) * Q5_1_BLOCK_BYTES;
    case GgmlType.Q4_K:
      return (count / QK_K) * Q4_K_BLOCK_BYTES;
    case GgmlType.Q5_K:
      return (count / QK_K) * Q5_K_BLOCK_BYTES;
    case GgmlType.Q6_K:
      return (count / QK_K) * Q6_K_BLOCK_BYTES;
  }
}

/** What llama-quantize's type rules read of the model besides the tensor itself. */
export interface QuantMixModel {
  /** The tensor is the output matrix: output.weight, or token_embd.weight when the embeddings are tied. */
  isOutput: boolean;
  /** Transformer layers (the count of attn_v and of ffn_down tensors). */
  layers: number;
  /** llama.cpp types the model LLM_TYPE_70B: 80 layers of llama with grouped KV heads, or of qwen2. */
  is70B: boolean;
}

/** llama-quantize's use_more_bits: the first and last eighth of the layers and every third one between. */
function useMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.trunc(layers / 8);
  return layer < eighth || layer >= Math.trunc((7 * layers) / 8) || (layer - eighth) % 3 === 2;
}

const GGML_BLOCK_SIZE: Partial<Record<GgmlType, number>> = {
  [GgmlType.Q4_K]: QK_K,
  [GgmlType.Q5_K]: QK_K,
  [GgmlType.Q6_K]: QK_K,
};
/** llama-quantize's fallback for a k-quant on a row width that is not a multiple of 256. */
const K_QUANT_FALLBACK: Partial<Record<GgmlType, GgmlType>> = {
  [GgmlType.Q4_K]: GgmlType.Q5_0,
  [GgmlType.Q5_K]: GgmlType.Q5_1,
  [GgmlType.Q6_K]: GgmlType.Q8_0,
};

/**
 * The type of one tensor of the model GGUF, by llama.cpp's rules:
 *  - 1-D tensors (norms, biases, rope factors) stay F32, as convert_hf_to_gguf.py keeps them and llama-quantize never
 *    quantizes them (it quantizes only 2-D tensors named *weight).
 *  - f16, q8_0: every 2-D tensor takes the type, token_embd and output included, as convert_hf_to_gguf.py --outtype
 *    f16 / q8_0 writes them (llama-quantize's Q8_0 mix agrees: it never lowers Q8_0).
 *  - q4_0, q4_k_m, q5_k_m, q6_k: llama-quantize's mixes (llama-quant.cpp llama_tensor_get_type, no importance
 *    matrix, no --pure or type overrides), the rules that reach llama, qwen2 and qwen3:
 *      default Q4_0, Q4_K, Q5_K, Q6_K;
 *      the output matrix: Q8_0 if its width is not a multiple of the default's block, else Q6_K (Q8_0 mixes keep Q8_0);
 *      q4_k_m, q5_k_m: attn_v and ffn_down Q6_K in the layers use_more_bits picks; in a 70B-type model, attn_v left
 *      at Q4_K goes to Q5_K;
 *      then a k-quant on a width that is not a multiple of 256 falls back to Q5_0 (for Q4_K), Q5_1 (Q5_K) or Q8_0
 *      (Q6_K), and to F16 if the width is not a multiple of 32 either.
 *    token_embd (untied) has no rule of its own in these mixes: it takes the default.
 *  - q4_0 on a width that is not a multiple of 32 falls back to F16, as convert_hf_to_gguf.py does on gguf-py's
 *    QuantError (llama-quantize refuses such a tensor for Q4_0 / Q8_0).
 */
export function ggmlTypeFor(
  name: string,
  shape: readonly number[],
  quant: GgufModelQuant,
  model: QuantMixModel,
): GgmlType {
  if (shape.length < 2 || name.endsWith('_norm.weight')) return GgmlType.F32;
  if (quant === 'f16') return GgmlType.F16;
  const cols = shape[shape.length - 1];
  if (quant === 'q8_0') return cols % GGML_BLOCK ? GgmlType.F16 : GgmlType.Q8_0;
  const defaults = { q4_0: GgmlType.Q4_0, q4_k_m: GgmlType.Q4_K, q5_k_m: GgmlType.Q5_K, q6_k: GgmlType.Q6_K };
  let type = defaults[quant];
  const layer = /^blk\.(\d+)\./.exec(name);
  const moreBits = layer !== null && useMoreBits(Number(layer[1]), model.layers);
  if (model.isOutput) {
    type = cols % (GGML_BLOCK_SIZE[type] ?? GGML_BLOCK) ? GgmlType.Q8_0 : GgmlType.Q6_K;
  } else if (name.endsWith('attn_v.weight')) {
    if ((quant === 'q4_k_m' || quant === 'q5_k_m') && moreBits) type = GgmlType.Q6_K;
    if (model.is70B && type === GgmlType.Q4_K) type = GgmlType.Q5_K;
  } else if (name.endsWith('ffn_down.weight')) {
    if ((quant === 'q4_k_m' || quant === 'q5_k_m') && moreBits) type = GgmlType.Q6_K;
  }
  const fallback = K_QUANT_FALLBACK[type];
  if (fallback !== undefined && cols % QK_K) type = fallback;
  return cols % GGML_BLOCK ? GgmlType.F16 : type;
}

/** block_q8_0 bytes of W [rows, cols] (cols a multiple of 32), as quantize_row_q8_0_ref writes them. */
export function quantizeQ8_0(values: Float32Array, cols: number): Uint8Array {
  if (cols % GGML_BLOCK || values.length % cols)
    throw new RangeError(`quantizeQ8_0: ${values.length} values in rows of ${cols}: rows must be whole blocks of 32`);
  const blocks = values.length / GGML_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const d = new Float32Array(1);
  for (let block = 0; block < blocks; block++) {
    const start = block * GGML_BLOCK;
    let amax = 0;
    for (let j = start; j < start + GGML_BLOCK; j++) {
      const magnitude = Math.abs(values[j]);
      amax = amax > magnitude ? amax : magnitude;
    }
    d[0] = Math.fround(amax / 127);
    const id = d[0] ? Math.fround(1 / d[0]) : 0;
    const o = block * Q8_0_BLOCK_BYTES;
    const scale = floatToF16Bits(d)[0];
    out[o] = scale & 0xff;
    out[o + 1] = scale >> 8;
    for (let j = 0; j < GGML_BLOCK; j++) {
      const x = Math.fround(values[start + j] * id);
      // roundf: half away from zero; |x| <= 127 by construction, the int8 byte is its two's complement.
      const q = x < 0 ? -Math.round(-x) : Math.round(x);
      out[o + 2 + j] = Number.isNaN(q) ? 0 : q & 0xff;
    }
  }
  return out;
}

/** block_q4_0 bytes of W [rows, cols] (cols a multiple of 32), as quantize_row_q4_0_ref writes them. */
export function quantizeQ4_0(values: Float32Array, cols: number): Uint8Array {
  const { packed, scales } = quantizeInt4(values, values.length / cols, cols);
  return int4ToQ4_0Blocks(packed, scales);
}

/** C's (int8_t) / (uint8_t) of a float as x86 compiles it: truncated to int32 (NaN and out of range give INT_MIN,
 * whose low byte is 0), then the low byte. */
function truncToByte(v: number): number {
  return Number.isFinite(v) && Math.abs(v) < 2 ** 31 ? Math.trunc(v) & 0xff : 0;
}

/** block_q5_0 bytes of W [rows, cols] (cols a multiple of 32), as quantize_row_q5_0_ref writes them. */
export function quantizeQ5_0(values: Float32Array, cols: number): Uint8Array {
  const blocks = wholeBlocks('quantizeQ5_0', values, cols);
  const out = new Uint8Array(blocks * Q5_0_BLOCK_BYTES);
  const d = new Float32Array(1);
  for (let block = 0; block < blocks; block++) {
    const start = block * GGML_BLOCK;
    let amax = 0;
    let max = 0;
    for (let j = start; j < start + GGML_BLOCK; j++) {
      if (amax < Math.abs(values[j])) {
        amax = Math.abs(values[j]);
        max = values[j];
      }
    }
    d[0] = Math.fround(max / -16);
    const id = d[0] !== 0 ? Math.fround(1 / d[0]) : 0;
    const o = block * Q5_0_BLOCK_BYTES;
    const scale = floatToF16Bits(d)[0];
    out[o] = scale & 0xff;
    out[o + 1] = scale >> 8;
    // MIN(31, (int8_t)(x * id + 16.5f)), stored as uint8_t.
    const code = (x: number) => Math.min(31, (truncToByte(Math.fround(Math.fround(x * id) + 16.5)) << 24) >> 24) & 0xff;
    let qh = 0;
    for (let j = 0; j < GGML_BLOCK / 2; j++) {
      const xi0 = code(values[start + j]);
      const xi1 = code(values[start + j + 16]);
      out[o + 6 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
      qh |= ((xi0 & 0x10) >> 4) << j;
      qh |= ((xi1 & 0x10) >> 4) << (j + 16);
    }
    new DataView(out.buffer, out.byteOffset).setUint32(o + 2, qh >>> 0, true);
  }
  return out;
}

/** block_q5_1 bytes of W [rows, cols] (cols a multiple of 32), as quantize_row_q5_1_ref writes them. */
export function quantizeQ5_1(values: Float32Array, cols: number): Uint8Array {
  const blocks = wholeBlocks('quantizeQ5_1', values, cols);
  const out = new Uint8Array(blocks * Q5_1_BLOCK_BYTES);
  const dm = new Float32Array(2);
  for (let block = 0; block < blocks; block++) {
    const start = block * GGML_BLOCK;
    let min = 3.4028234663852886e38; // FLT_MAX
    let max = -3.4028234663852886e38;
    for (let j = start; j < start + GGML_BLOCK; j++) {
      if (values[j] < min) min = values[j];
      if (values[j] > max) max = values[j];
    }
    dm[0] = Math.fround(Math.fround(max - min) / 31);
    dm[1] = min;
    const id = dm[0] !== 0 ? Math.fround(1 / dm[0]) : 0;
    const o = block * Q5_1_BLOCK_BYTES;
    const [d, m] = floatToF16Bits(dm);
    out[o] = d & 0xff;
    out[o + 1] = d >> 8;
    out[o + 2] = m & 0xff;
    out[o + 3] = m >> 8;
    const code = (x: number) => truncToByte(Math.fround(Math.fround(Math.fround(x - min) * id) + 0.5));
    let qh = 0;
    for (let j = 0; j < GGML_BLOCK / 2; j++) {
      const xi0 = code(values[start + j]);
      const xi1 = code(values[start + j + 16]);
      out[o + 8 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
      qh |= ((xi0 & 0x10) >> 4) << j;
      qh |= ((xi1 & 0x10) >> 4) << (j + 16);
    }
    new DataView(out.buffer, out.byteOffset).setUint32(o + 4, qh >>> 0, true);
  }
  return out;
}

function wholeBlocks(name: string, values: Float32Array, cols: number): number {
  if (cols % GGML_BLOCK || values.length % cols)
    throw new RangeError(`${name}: ${values.length} values in rows of ${cols}: rows must be whole blocks of 32`);
  return values.length / GGML_BLOCK;
}

/** The bytes of W [.., cols] (row-major fp32) as `type`. */
export function encodeGgml(type: GgmlType, values: Float32Array, cols: number): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case GgmlType.F16: {
      const bits = floatToF16Bits(values);
      return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    }
    case GgmlType.Q8_0:
      return quantizeQ8_0(values, cols);
    case GgmlType.Q4_0:
      return quantizeQ4_0(values, cols);
    case GgmlType.Q5_0:
      return quantizeQ5_0(values, cols);
    case GgmlType.Q5_1:
      return quantizeQ5_1(values, cols);
    case GgmlType.Q4_K:
      return quantizeQ4_K(values, cols);
    case GgmlType.Q5_K:
      return quantizeQ5_K(values, cols);
    case GgmlType.Q6_K:
      return quantizeQ6_K(values, cols);
  }
}
