// The constant inputs the compiled graphs read instead of initializers, so that ORT cannot fold them at load: the
// 4-bit dequantization tables (see blocks/dequantize4bit.ts) and `flat_shape` (GraphBuilder.flatShape).
import type { ModelFolder } from '../../model/modelFolder.js';
import { INT4_CODE_VALUES } from '../../model/quant/int4.js';
import { dynamicMap8bit, quantMap4bit } from '../../model/quant/nf4.js';
import { dequantTableValues } from '../compile/blocks/dequantize4bit.js';
import { Tensor, type Session } from './runtime.js';

/** Every table input a graph of `folder` may declare. */
export function graphTableFeeds(folder: ModelFolder): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = { flat_shape: new Tensor('int64', BigInt64Array.from([-1n]), [1]) };
  if (!folder.quantization) return feeds;
  const { quantType } = folder.quantization;
  const { pairs, byteMap } =
    quantType === 'int4'
      ? dequantTableValues(INT4_CODE_VALUES, dynamicMap8bit(true), 'low')
      : dequantTableValues(quantMap4bit(quantType), dynamicMap8bit(true), 'high');
  feeds.quant_pairs = new Tensor('float32', pairs, [256, 2]);
  feeds.quant_byte_map = new Tensor('float32', byteMap, [256]);
  return feeds;
}

/** The table feeds `session` declares. */
export function tableFeedsFor(session: Session, tables: Record<string, Tensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(tables).filter(([name]) => session.inputNames.includes(name)));
}
