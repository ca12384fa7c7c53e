// bitsandbytes 4-bit weights (NF4, FP4) dequantized inside the graph with standard ops every provider has. The codes
// stay 4-bit in memory; the fp32 weight exists only while the session runs, one layer's weights at a time.
// Legend: W [out, in], n = out * in, bs = block size, B = n / bs blocks, B2 = ceil(B / 256).
//   packed  uint8 [n / 2, 1]: two codes per byte, the first in the high nibble (nf4.ts)
//   absmax  float [B]; with double quantization uint8 codes [B], nested float [B2] and a float offset:
//           absmax[b] = byteMap[codes[b]] * nested[b / 256] + offset
//   W[i] = code value[i] * absmax[i / bs], each product rounded to float32 as bitsandbytes' kernels do.
// The two lookup tables and the codes' flat shape are graph inputs, fed with every run, not initializers: ORT folds
// whatever reads only initializers when it loads the session, into a full-precision copy of the weight (or, from the
// shape alone, into int32 codes: 2 bytes per weight instead of half a byte).
//   pairs    float [256, 2]: for each byte value, the code values of its high and its low nibble
//   byteMap  float [256]: bitsandbytes' signed dynamic 8-bit map (double quantization)
//   flat     int64 [1]: -1, the target shape that flattens the stored codes
// Frozen weights have no backward.
import type { Quantized4bitWeight } from '../../../model/quant/bnb4bit.js';
import type { GraphBuilder } from '../onnx/graph.js';

export interface DequantTables {
  pairs: string;
  byteMap: string;
  flat: string;
}

/** The table inputs, declared once per graph. */
export function declareDequantTables(g: GraphBuilder): DequantTables {
  return {
    pairs: g.input('quant_pairs', 'float', [256, 2]),
    byteMap: g.input('quant_byte_map', 'float', [256]),
    flat: g.input('quant_flat', 'int64', [1]),
  };
}

/** Host values of the table inputs for one code book (16 values, indexed by the 4-bit code). */
export function dequantTableValues(
  code: Float32Array,
  byteMap: Float32Array,
): { pairs: Float32Array; byteMap: Float32Array } {
  const pairs = new Float32Array(512);
  for (let byte = 0; byte < 256; byte++) {
    pairs[2 * byte] = code[byte >> 4];
    pairs[2 * byte + 1] = code[byte & 0x0f];
  }
  return { pairs, byteMap };
}

/** Emits the dequantization of `weight` (its tensors already declared as initializers); returns W [out, in]. */
export function dequantize4bit(
  g: GraphBuilder,
  weight: Quantized4bitWeight,
  initializers: { packed: string; absmax: string; nestedAbsmax?: string },
  tables: DequantTables,
): string {
  const [out, inWidth] = weight.shape;
  const n = out * inWidth;
  const blocks = n / weight.blockSize;
  const codes = g.cast(g.reshape(initializers.packed, tables.flat), 'int32', 'codes'); // [n/2]
  const values = g.op('Gather', [tables.pairs, codes], { axis: 0 }, 'code_values'); // [n/2, 2]
  let absmax = initializers.absmax; // [B]
  if (weight.nested) {
    const nestedBlocks = Math.ceil(blocks / 256);
    const absmaxCodes = g.cast(g.reshape(absmax, tables.flat), 'int32'); // [B]
    let centered = g.op('Gather', [tables.byteMap, absmaxCodes], { axis: 0 }, 'absmax_codes'); // [B]
    const padding = nestedBlocks * 256 - blocks;
    if (padding) centered = g.op('Pad', [centered, g.constantInt64([0, padding])], {}, 'absmax_padded'); // [B2*256]
    const scaled = g.mul(
      g.reshape(centered, [nestedBlocks, 256]),
      g.reshape(initializers.nestedAbsmax!, [nestedBlocks, 1]),
    );
    let flat = g.reshape(scaled, [nestedBlocks * 256]);
    if (padding)
      flat = g.op('Slice', [flat, g.constantInt64([0]), g.constantInt64([blocks]), g.constantInt64([0])], {}, 'absmax');
    absmax = g.add(flat, g.scalar(weight.nested.offset, 'absmax_offset'), 'absmax'); // [B]
  }
  const blocked = g.mul(g.reshape(values, [blocks, weight.blockSize]), g.reshape(absmax, [blocks, 1]), 'dequantized');
  return g.reshape(blocked, [out, inWidth], 'weight'); // [out, in]
}
