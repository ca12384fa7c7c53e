// ggml's F16, Q8_0 and Q4_0 tensor encodings, as llama.cpp's reference quantizers write them (ggml-quants.c), and the
// choice of which tensor of a model GGUF gets which. One row-major W [rows, cols] at a time, blocks of 32 consecutive
// elements of a row; a row width that is not a multiple of 32 cannot be blocked (see ggmlTypeFor).
//
// F16:  IEEE binary16, round to nearest even (ggml's GGML_FP32_TO_FP16, numpy's astype(float16)).
// Q8_0: block_q8_0 { fp16 d; int8 qs[32] } (34 bytes), quantize_row_q8_0_ref, float32 throughout:
//         amax = max |x| (C's MAX(a, b) = a > b ? a : b, so a NaN resets it), d = amax / 127, id = d ? 1 / d : 0,
//         qs[j] = roundf(x[j] * id) (half away from zero), d stored as fp16.
// Q4_0: block_q4_0 { fp16 d; uint8 qs[16] } (18 bytes), quantize_row_q4_0_ref: int4.ts's quantizeInt4 (bit-exact,
//         checked against gguf-py) repacked by int4ToQ4_0Blocks.
import { floatToF16Bits } from '../safetensors.js';
import { int4ToQ4_0Blocks, quantizeInt4 } from './int4.js';

/** ggml's tensor types that we write (ggml.h enum ggml_type). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
}

export const GGML_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + GGML_BLOCK;
const Q4_0_BLOCK_BYTES = 2 + GGML_BLOCK / 2;

import type { GgufModelQuant } from '../../../shared/runs.js';
export { GGUF_MODEL_QUANTS, type GgufModelQuant } from '../../../shared/runs.js';
/** general.file_type (llama.h enum llama_ftype). */
export const LLAMA_FILE_TYPE: Record<GgufModelQuant, number> = { f16: 1, q8_0: 7, q4_0: 2 };

/** Bytes of `count` elements of `type` (count a multiple of 32 for the block types). */
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
  }
}

/**
 * The type of one tensor of the model GGUF, by llama.cpp's rules:
 *  - 1-D tensors (norms, biases, rope factors) stay F32, as convert_hf_to_gguf.py keeps them and llama-quantize never
 *    quantizes them (it quantizes only 2-D tensors named *weight).
 *  - f16, q8_0: every 2-D tensor takes the type, token_embd and output included, as convert_hf_to_gguf.py --outtype
 *    f16 / q8_0 writes them (llama-quantize's Q8_0 mix agrees: it never lowers Q8_0).
 *  - q4_0: llama-quantize's Q4_0 mix (llama_tensor_get_type): every 2-D tensor Q4_0 except the output matrix
 *    (output.weight, or token_embd.weight when the embeddings are tied), which llama.cpp raises to Q6_K; having no
 *    k-quants yet, we raise it to Q8_0, what llama.cpp itself uses there when the width is not a multiple of 256.
 *  - A row width that is not a multiple of 32 falls back to F16, as convert_hf_to_gguf.py does on gguf-py's QuantError
 *    (llama-quantize refuses such a tensor for Q4_0 / Q8_0).
 */
export function ggmlTypeFor(
  name: string,
  shape: readonly number[],
  quant: GgufModelQuant,
  isOutput: boolean,
): GgmlType {
  if (shape.length < 2 || name.endsWith('_norm.weight')) return GgmlType.F32;
  if (quant === 'f16') return GgmlType.F16;
  if (shape[shape.length - 1] % GGML_BLOCK !== 0) return GgmlType.F16;
  if (quant === 'q8_0' || isOutput) return GgmlType.Q8_0;
  return GgmlType.Q4_0;
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
  }
}
