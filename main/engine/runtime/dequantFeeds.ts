// The dequantization tables that the graphs of a 4-bit checkpoint read as inputs (see blocks/dequantize4bit.ts).
import type { ModelFolder } from '../../model/modelFolder.js';
import { dynamicMap8bit, quantMap4bit } from '../../model/quant/nf4.js';
import { dequantTableValues } from '../compile/blocks/dequantize4bit.js';
import { Tensor } from './runtime.js';

/** Feeds for `quant_pairs`, `quant_byte_map` and `quant_flat`; none for a full-precision checkpoint. */
export function dequantFeeds(folder: ModelFolder): Record<string, Tensor> {
  if (!folder.quantization) return {};
  const { pairs, byteMap } = dequantTableValues(quantMap4bit(folder.quantization.quantType), dynamicMap8bit(true));
  return {
    quant_pairs: new Tensor('float32', pairs, [256, 2]),
    quant_byte_map: new Tensor('float32', byteMap, [256]),
    quant_flat: new Tensor('int64', BigInt64Array.from([-1n]), [1]),
  };
}
