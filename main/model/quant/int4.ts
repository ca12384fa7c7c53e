// Symmetric int4 weights: llama.cpp's Q4_0 quantization, bit for bit, stored the way ONNX Runtime's MatMulNBits
// (com.microsoft, bits 4, block_size 32, no zero_points) reads them. One tensor at a time, no state between calls.
//
// Quantization (ggml-quants.c quantize_row_q4_0_ref; gguf-py's Q4_0.quantize_blocks does the same in numpy), float32
// throughout, per block of 32 consecutive elements of a row:
//   max  = the x of largest |x| (the first on ties; NaN never wins)
//   d    = max / -8,  id = d ? 1 / d : 0
//   code = min(15, uint8(trunc(x * id + 8.5)))   (x = max gives 0.5 → 0; x = -max gives 16.5 → 15)
//   scale = d rounded to fp16 (nearest even); x decodes to (code - 8) * scale.
// Where C and gguf-py part ways we follow C: a zero block led by -0.0 stores d = -0.0 (C's max starts at +0.0), and a
// NaN is skipped when looking for max. The uint8 cast is numpy's on x86 (C's int8_t cast gives the same codes): the
// low byte of the truncated value, 0 for inf and NaN, as when |max| < 2^-125 makes 1 / d overflow.
//
// Layout for a weight W [rows, cols], cols a multiple of 32 (MatMulNBits' B [N, K] with N = rows = out features):
//   packed  uint8  [rows, cols / 32, 16]  byte i of a block: element 2i in the LOW nibble, element 2i + 1 in the high
//   scales  fp16   [rows * cols / 32]     bits of each block's scale, blocks in row-major order
// With no zero_points MatMulNBits takes 8 as every block's zero point, so it decodes exactly as Q4_0 does. GGUF's Q4_0
// keeps the same codes and scales but pairs element j with j + 16 in a byte (int4ToQ4_0Blocks converts).
// Checked against test/reference/make_int4_fixtures.py (fixtures in test/fixtures/numerics/int4/).
import { floatToF16Bits, halfToFloat } from '../safetensors.js';

export const INT4_BLOCK_SIZE = 32;
/** Packed bytes per block: two codes a byte. */
const BLOCK_BYTES = INT4_BLOCK_SIZE / 2;
/** GGUF's block_q4_0: fp16 d, then the 16 code bytes. */
const Q4_0_BLOCK_BYTES = 2 + BLOCK_BYTES;

/** The value of each 4-bit code at scale 1: code - 8 (MatMulNBits' implicit zero point, Q4_0's offset). */
export const INT4_CODE_VALUES: Float32Array = Float32Array.from({ length: 16 }, (_, code) => code - 8);

export interface Int4Weight {
  /** uint8 [rows, cols / 32, 16], MatMulNBits' B. */
  packed: Uint8Array;
  /** fp16 bits [rows * cols / 32], MatMulNBits' scales. */
  scales: Uint16Array;
}

/** The code of x for a block with reciprocal scale id: min(15, uint8(trunc(fround(fround(x * id) + 8.5)))). */
function code(x: number, id: number): number {
  // `& 0xff` is numpy's float-to-uint8 cast: ToInt32 truncates, wraps, and maps inf and NaN to 0.
  return Math.min(15, Math.fround(Math.fround(x * id) + 8.5) & 0xff);
}

/** Q4_0-quantizes W [rows, cols] (row-major) into MatMulNBits' packed codes and fp16 scales. */
export function quantizeInt4(values: Float32Array, rows: number, cols: number): Int4Weight {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols <= 0 || cols % INT4_BLOCK_SIZE) {
    throw new RangeError(`quantizeInt4: weight [${rows}, ${cols}]: columns must be a positive multiple of 32`);
  }
  if (values.length !== rows * cols) {
    throw new RangeError(`quantizeInt4: weight [${rows}, ${cols}] needs ${rows * cols} values, found ${values.length}`);
  }
  // cols is a multiple of 32, so the blocks of the flattened weight never straddle two rows.
  const blocks = values.length / INT4_BLOCK_SIZE;
  const packed = new Uint8Array(blocks * BLOCK_BYTES);
  const d = new Float32Array(blocks);
  for (let block = 0; block < blocks; block++) {
    const start = block * INT4_BLOCK_SIZE;
    let amax = 0;
    let max = 0;
    for (let i = start; i < start + INT4_BLOCK_SIZE; i++) {
      const magnitude = Math.abs(values[i]);
      if (amax < magnitude) {
        amax = magnitude;
        max = values[i];
      }
    }
    // Each operation on float32 operands, rounded once to float32, is the float32 operation itself.
    d[block] = Math.fround(max / -8);
    const id = d[block] ? Math.fround(1 / d[block]) : 0;
    const out = block * BLOCK_BYTES;
    for (let i = 0; i < BLOCK_BYTES; i++) {
      packed[out + i] = code(values[start + 2 * i], id) | (code(values[start + 2 * i + 1], id) << 4);
    }
  }
  return { packed, scales: floatToF16Bits(d) };
}

function checkBlocks(what: string, packed: Uint8Array, scales: Uint16Array, count: number): void {
  if (count % INT4_BLOCK_SIZE || packed.length * 2 !== count || scales.length * INT4_BLOCK_SIZE !== count) {
    const need = `${count / 2} packed bytes and ${count / INT4_BLOCK_SIZE} scales (whole blocks of 32)`;
    throw new RangeError(`${what}: ${count} elements need ${need}, found ${packed.length} and ${scales.length}`);
  }
}

/** The float32 values [count] (count = rows * cols) that MatMulNBits and Q4_0 decode: (code - 8) * scale. */
export function dequantizeInt4(packed: Uint8Array, scales: Uint16Array, count: number): Float32Array {
  checkBlocks('dequantizeInt4', packed, scales, count);
  const out = new Float32Array(count);
  for (let block = 0; block < scales.length; block++) {
    // An fp16 scale times a code in [-8, 7] is exact in float32.
    const scale = halfToFloat(scales[block]);
    for (let i = block * BLOCK_BYTES; i < (block + 1) * BLOCK_BYTES; i++) {
      out[2 * i] = INT4_CODE_VALUES[packed[i] & 0x0f] * scale;
      out[2 * i + 1] = INT4_CODE_VALUES[packed[i] >> 4] * scale;
    }
  }
  return out;
}

/**
 * The same blocks as GGUF's Q4_0 bytes: per block fp16 d (little-endian), then 16 bytes, byte j holding the code of
 * element j in its low nibble and that of element j + 16 in its high one.
 */
export function int4ToQ4_0Blocks(packed: Uint8Array, scales: Uint16Array): Uint8Array {
  checkBlocks('int4ToQ4_0Blocks', packed, scales, scales.length * INT4_BLOCK_SIZE);
  const out = new Uint8Array(scales.length * Q4_0_BLOCK_BYTES);
  for (let block = 0; block < scales.length; block++) {
    const o = block * Q4_0_BLOCK_BYTES;
    out[o] = scales[block] & 0xff;
    out[o + 1] = scales[block] >> 8;
    const p = block * BLOCK_BYTES;
    for (let j = 0; j < BLOCK_BYTES; j += 2) {
      // Elements j, j + 1 share packed byte j / 2, and so do elements j + 16, j + 17 (byte 8 + j / 2).
      const first = packed[p + j / 2];
      const second = packed[p + 8 + j / 2];
      out[o + 2 + j] = (first & 0x0f) | ((second & 0x0f) << 4);
      out[o + 3 + j] = (first >> 4) | (second & 0xf0);
    }
  }
  return out;
}
