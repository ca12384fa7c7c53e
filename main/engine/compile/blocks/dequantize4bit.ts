// 4-bit weights dequantized inside the graph with standard ops every provider has: bitsandbytes' NF4 and FP4, and
// int4. The codes stay 4-bit in memory; the fp32 weight exists only while the session runs, one layer's weights at a
// time. Legend: W [out, in], n = out * in, bs = block size, B = n / bs blocks, B2 = ceil(B / 256).
//   packed  uint8 [n / 2, 1]: two codes per byte, the first in the high nibble (nf4.ts);
//           int4: uint8 [out, in / 32, 16], the first in the low nibble (int4.ts)
//   absmax  float [B]; with double quantization uint8 codes [B], nested float [B2] and a float offset:
//           absmax[b] = byteMap[codes[b]] * nested[b / 256] + offset; int4: float16 scales [out, in / 32]
//   W[i] = code value[i] * absmax[i / bs], each product rounded to float32 as bitsandbytes' kernels do (int4's code
//   values are code - 8, and its products exact).
// When generating, an int4 weight is not dequantized at all: MatMulNBits multiplies by its codes as stored.
// The two lookup tables and the codes' flat shape are graph inputs, fed with every run, not initializers: ORT folds
// whatever reads only initializers when it loads the session, into a full-precision copy of the weight (or, from the
// shape alone, into int32 codes: 2 bytes per weight instead of half a byte).
//   pairs    float [256, 2]: for each byte value, the code values of its first and its second code
//   byteMap  float [256]: bitsandbytes' signed dynamic 8-bit map (double quantization)
//   flat_shape (GraphBuilder.flatShape) int64 [1]: -1, the target shape that flattens the stored codes
// A range of rows [r0, r1) dequantizes alone (the lm_head, a vocabulary chunk at a time): its codes, absmax values
// and nested scales are contiguous slices when r0 * in is a multiple of a nested block (256 * bs elements).
// Frozen weights have no backward.
import type { Quantized4bitWeight } from '../../../model/quant/bnb4bit.js';
import type { GraphBuilder } from '../onnx/graph.js';

/**
 * MatMulNBits' arithmetic: 0 dequantizes each block and multiplies in fp32, as the training graphs do; 4 rounds the
 * activations to int8 per block first, as llama.cpp's Q4_0 dot products do (Q8_0 activations).
 */
const INT4_ACCURACY_LEVEL = 0;

export interface DequantTables {
  pairs: string;
  byteMap: string;
}

/** The table inputs, declared once per graph. */
export function declareDequantTables(g: GraphBuilder): DequantTables {
  return {
    pairs: g.input('quant_pairs', 'float', [256, 2]),
    byteMap: g.input('quant_byte_map', 'float', [256]),
  };
}

/**
 * Host values of the table inputs for one code book (16 values, indexed by the 4-bit code), whose first code of each
 * byte is in the high nibble (bitsandbytes) or the low one (int4).
 */
export function dequantTableValues(
  code: Float32Array,
  byteMap: Float32Array,
  firstNibble: 'high' | 'low',
): { pairs: Float32Array; byteMap: Float32Array } {
  const pairs = new Float32Array(512);
  for (let byte = 0; byte < 256; byte++) {
    const [high, low] = [code[byte >> 4], code[byte & 0x0f]];
    pairs[2 * byte] = firstNibble === 'high' ? high : low;
    pairs[2 * byte + 1] = firstNibble === 'high' ? low : high;
  }
  return { pairs, byteMap };
}

/**
 * Rows [start, end) of a weight, and whether its Slices name their step: a second dequantization of the same rows in
 * one graph (the backward's) is then a different node, which ORT's common-subexpression elimination cannot merge
 * with the first and so keep the fp32 copy alive from one use to the other.
 */
export interface RowRange {
  start: number;
  end: number;
  distinct: boolean;
}

/** Rows per chunk must be a multiple of this for a chunk to start on a nested absmax block. */
export function rowAlignment4bit(weight: Quantized4bitWeight): number {
  const span = weight.blockSize * (weight.nested ? 256 : 1);
  const inWidth = weight.shape[1];
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  return span / gcd(span, inWidth);
}

/**
 * Emits the dequantization of `weight` (its tensors already declared as initializers), or of its rows `rows`;
 * returns W [out, in] (or [r1 - r0, in]).
 */
export function dequantize4bit(
  g: GraphBuilder,
  weight: Quantized4bitWeight,
  initializers: { packed: string; absmax: string; nestedAbsmax?: string },
  tables: DequantTables,
  rows?: RowRange,
): string {
  const [out, inWidth] = weight.shape;
  const bs = weight.blockSize;
  const [r0, r1] = rows ? [rows.start, rows.end] : [0, out];
  if ((r0 * inWidth) % (bs * (weight.nested ? 256 : 1)) !== 0)
    throw new Error(`${weight.name}: rows from ${r0} do not start on a quantization block`);
  const [e0, e1] = [r0 * inWidth, r1 * inWidth];
  const n = e1 - e0;
  const [b0, b1] = [e0 / bs, Math.ceil(e1 / bs)];
  const blocks = b1 - b0;
  const flat = g.flatShape();
  // Flattened (a graph input, so nothing folds at load), then the range's part.
  const range = (stored: string, from: number, to: number, whole: number) => {
    const flatValue = g.reshape(stored, flat);
    if (from === 0 && to === whole && !rows?.distinct) return flatValue;
    const inputs = [flatValue, g.constantInt64([from]), g.constantInt64([to]), g.constantInt64([0])];
    if (rows?.distinct) inputs.push(g.constantInt64([1]));
    return g.op('Slice', inputs, {}, 'rows');
  };
  const codes = g.cast(range(initializers.packed, e0 / 2, e1 / 2, (out * inWidth) / 2), 'int32', 'codes'); // [n/2]
  const values = g.op('Gather', [tables.pairs, codes], { axis: 0 }, 'code_values'); // [n/2, 2]
  const allBlocks = (out * inWidth) / bs;
  let absmax = range(initializers.absmax, b0, b1, allBlocks); // [B]
  if (weight.absmax.dtype === 'F16') absmax = g.cast(absmax, 'float', 'scales');
  if (weight.nested) {
    const [n0, n1] = [b0 / 256, Math.ceil(b1 / 256)];
    const nestedBlocks = n1 - n0;
    const absmaxCodes = g.cast(absmax, 'int32'); // [B]
    let centered = g.op('Gather', [tables.byteMap, absmaxCodes], { axis: 0 }, 'absmax_codes'); // [B]
    const padding = nestedBlocks * 256 - blocks;
    if (padding) centered = g.op('Pad', [centered, g.constantInt64([0, padding])], {}, 'absmax_padded'); // [B2*256]
    const nested = range(initializers.nestedAbsmax!, n0, n1, Math.ceil(allBlocks / 256));
    const scaled = g.mul(g.reshape(centered, [nestedBlocks, 256]), g.reshape(nested, [nestedBlocks, 1]));
    let flatAbsmax = g.reshape(scaled, [nestedBlocks * 256]);
    if (padding)
      flatAbsmax = g.op(
        'Slice',
        [flatAbsmax, g.constantInt64([0]), g.constantInt64([blocks]), g.constantInt64([0])],
        {},
        'absmax',
      );
    absmax = g.add(flatAbsmax, g.scalar(weight.nested.offset, 'absmax_offset'), 'absmax'); // [B]
  }
  const blocked = g.mul(g.reshape(values, [blocks, bs]), g.reshape(absmax, [blocks, 1]), 'dequantized');
  return g.reshape(blocked, [n / inWidth, inWidth], 'weight'); // [out, in]
}

/**
 * x W^T for an int4 weight (its tensors already declared as initializers), multiplied by its codes as stored:
 * ONNX Runtime's MatMulNBits, whose CPU kernel decodes one block at a time, so a decoding step reads 4.5 bits per
 * weight instead of 32. Its scales must be fp32: the Cast of the fp16 initializer is folded once at load (small: one
 * value per 32 weights). x [N, in] -> [N, out].
 */
export function matmulInt4(g: GraphBuilder, x: string, weight: Quantized4bitWeight, packed: string, scales: string) {
  const [out, inWidth] = weight.shape;
  const attributes = { K: inWidth, N: out, bits: 4, block_size: weight.blockSize, accuracy_level: INT4_ACCURACY_LEVEL };
  return g.contribOp('MatMulNBits', [x, packed, g.cast(scales, 'float', 'scales')], attributes, 'proj');
}
