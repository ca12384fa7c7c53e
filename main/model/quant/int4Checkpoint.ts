// The studio's int4 checkpoint: the quantize-on-load cache for `--quantize int4`, a safetensors folder like any other.
// Each quantized weight W [out, in] is two tensors (int4.ts has the codec):
//   <name>         U8  [out, in / 32, 16]  codes, two per byte, the first in the low nibble (MatMulNBits' B)
//   <name>.scales  F16 [out, in / 32]      each block's scale d: W = (code - 8) * d, as llama.cpp's Q4_0
// and config.json's quantization_config says {"quant_method": "peft-studio-int4", "bits": 4, "block_size": 32}.
// No other tool reads it: it is a cache, rebuilt from the full-precision checkpoint whenever it is missing.
import { UserError } from '../../../shared/errors.js';
import type { TensorEntry } from '../safetensors.js';
import type { Quant4bitConfig, Quantized4bitWeight } from './bnb4bit.js';
import { INT4_BLOCK_SIZE } from './int4.js';

export const INT4_QUANT_METHOD = 'peft-studio-int4';

/** config.json's quantization_config for an int4 folder. */
export function int4QuantizationConfigJson(): Record<string, unknown> {
  return { quant_method: INT4_QUANT_METHOD, bits: 4, block_size: INT4_BLOCK_SIZE, values: 'ggml Q4_0' };
}

export function parseInt4Config(q: Record<string, unknown>, file: string): Quant4bitConfig {
  if (q.bits !== 4 || q.block_size !== INT4_BLOCK_SIZE)
    throw new UserError(
      `${file}: an int4 quantization_config with bits ${String(q.bits)} and block_size ${String(q.block_size)} is not supported (4 and ${INT4_BLOCK_SIZE} are)`,
    );
  return { quantType: 'int4', doubleQuant: false };
}

/** Finds and checks every int4 weight in `names` against the shapes config.json implies. */
export function readInt4Weights(
  tensors: Map<string, TensorEntry>,
  expected: Map<string, number[]>,
  names: readonly string[],
): Map<string, Quantized4bitWeight> {
  const out = new Map<string, Quantized4bitWeight>();
  for (const name of names) {
    const packed = tensors.get(name);
    if (!packed) throw new UserError(`weight "${name}" is missing from the int4 checkpoint`);
    const where = `${packed.file}: weight "${name}"`;
    const [rows, cols] = expected.get(name)!;
    const blocks = cols / INT4_BLOCK_SIZE;
    const expect = (entry: TensorEntry, dtype: string, shape: number[]) => {
      if (entry.dtype !== dtype || entry.shape.join(',') !== shape.join(','))
        throw new UserError(
          `${entry.file}: tensor "${entry.name}" is ${entry.dtype} [${entry.shape}], int4 stores ${dtype} [${shape}]`,
        );
    };
    expect(packed, 'U8', [rows, blocks, INT4_BLOCK_SIZE / 2]);
    const scales = tensors.get(`${name}.scales`);
    if (!scales) throw new UserError(`${where} has no "scales" tensor, which an int4 weight needs`);
    expect(scales, 'F16', [rows, blocks]);
    out.set(name, {
      name,
      shape: [rows, cols],
      quantType: 'int4',
      blockSize: INT4_BLOCK_SIZE,
      packed,
      absmax: scales,
      nested: null,
    });
  }
  return out;
}
