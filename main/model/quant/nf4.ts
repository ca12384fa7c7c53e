// bitsandbytes' 4-bit weight formats (NF4 and FP4, as QLoRA stores frozen base weights), bit for bit: quantize a
// tensor, dequantize one, and the double quantization of the per-block scales. Pure TypeScript, one tensor at a time,
// no state between calls, so a loader can stream a checkpoint tensor by tensor.
//
// Layout (n = element count of the weight, flattened row-major; bs = block size, 64 by default):
//   packed   uint8 [ceil(n / 2)]    element 2i in the HIGH nibble of byte i, 2i+1 in the low one; for odd n the
//                                   last low nibble holds the code of a padding zero. bitsandbytes' tensor is
//                                   [(n + 1) / 2, 1] (packedShape4bit).
//   absmax   float32 [ceil(n / bs)] max |x| of each block; code c of element i decodes to CODE[c] * absmax[i / bs].
//   double quantization (bitsandbytes' compress_statistics=True; B = ceil(n / bs) blocks):
//     offset         float32         mean of the absmax values
//     codes          uint8 [B]       absmax - offset, quantized in blocks of 256 with the signed dynamic 8-bit map
//     nested absmax  float32 [ceil(B / 256)]
//     map            float32 [256]   dynamicMap8bit(true)
//     absmax[b] = fround(map[codes[b]] * nestedAbsmax[b / 256]) + offset, in float32.
//
// In a checkpoint saved by transformers (Linear4bit._save_to_state_dict → QuantState.as_dict(packed=True)), for
// a weight W of original dtype D and shape S:
//   W.weight                                   U8  [(n + 1) / 2, 1]  packed
//   W.weight.absmax                            F32 [B], or U8 [B] (the codes) with double quantization
//   W.weight.quant_map                         F32 [16]   quantMap4bit(quant_type)
//   W.weight.nested_absmax                     F32 [ceil(B / 256)]          (double quantization only)
//   W.weight.nested_quant_map                  F32 [256]                    (double quantization only)
//   W.weight.quant_state.bitsandbytes__<type>  U8  [bytes]  UTF-8 of json.dumps(...) (separators ", " and ": ")
//                                                           of a BnbQuantStateJson, keys in that order.
//
// Where each rule comes from in bitsandbytes (csrc/kernels.cu, since moved to csrc/cuda/blockwise_quantization.cu;
// bitsandbytes/functional.py; bitsandbytes/backends/cuda/ops.py):
//   - kQuantizeBlockwise: absmax = fmaxf over |x| of the block (NaN skipped; the partial last block is padded with
//     zeros), x scaled by the float32 reciprocal 1 / absmax (a zero block gives 0 * inf = NaN), two codes per byte
//     with `code(x[2j]) << 4 | code(x[2j + 1])`.
//   - dQuantizeNF4 / dQuantizeFP4: decision trees with strict `x > threshold`, so a value exactly on a threshold
//     takes the lower code and NaN takes code 0; FP4's sign bit is `x < 0` (none for -0.0).
//   - dDequantizeNF4 / dDequantizeFP4Tree: code value * absmax (FP4: magnitude * absmax * sign, so code 8 is -0.0).
//   - dQuantize (8-bit): a 7-step binary search from index 127, then the nearer neighbour by the float32 midpoint.
//   - quantize_4bit: offset = absmax.mean(); quantize_blockwise(absmax - offset, blocksize=256).
//   - The CUDA library is built with --use_fast_math (CMakeLists.txt): flush-to-zero, which we model (flushToZero),
//     and an approximate 1 / absmax (1 ulp, says the CUDA guide), which we do not: we use the IEEE reciprocal, as
//     bitsandbytes' PyTorch backend does. A code can differ from a CUDA run only where x / absmax lies within about
//     an ulp of a threshold.
//   - The offset: bitsandbytes' float32 mean on the device, whose last bit depends on its reduction order. Ours is
//     the float64 sum of the absmax values in order, divided by B, rounded once to float32.
// Checked against test/reference/nf4_reference.py (fixtures in test/fixtures/numerics/nf4/).

export type QuantType4bit = 'nf4' | 'fp4';

/** bitsandbytes' block sizes (4096 .. 64; 32 exists only in newer CUDA builds, with a kernel of its own). */
export const BLOCK_SIZES_4BIT: readonly number[] = [64, 128, 256, 512, 1024, 2048, 4096];
/** Block size of the double quantization of the absmax values (fixed in bitsandbytes' quantize_4bit). */
export const NESTED_BLOCK_SIZE = 256;

const FLT_MIN = 2 ** -126;

/** Flush-to-zero of the --use_fast_math CUDA build: |x| < 2^-126 becomes a zero of x's sign. */
function flushToZero(x: number): number {
  return Math.abs(x) < FLT_MIN ? x * 0 : x;
}

const f32 = (values: number[]): Float32Array => Float32Array.from(values);

/**
 * The 16 NF4 values (QLoRA's normal-float quantiles, as dDequantizeNF4 and get_4bit_type('nf4') hard-code them),
 * indexed by the 4-bit code.
 */
export const NF4_CODE: Float32Array = f32([
  -1, -0.6961928, -0.52507305, -0.3949175, -0.28444138, -0.18477343, -0.091050036, 0, 0.0795803, 0.1609302, 0.2461123,
  0.33791524, 0.44070983, 0.562617, 0.72295684, 1,
]);

/**
 * dQuantizeNF4's 15 thresholds, the kernel's C literals rounded once to float32. Four of those literals
 * (-0.8480964004993439, 0.1202552504837513, 0.5016634166240692, 0.8614784181118011) lie so close to a float32 midpoint
 * that Math.fround(literal), which rounds to float64 first, would be one ulp off: hence the float32 values here.
 */
const NF4_THRESHOLDS: Float32Array = f32([
  -0.84809643, -0.6106329, -0.45999527, -0.33967942, -0.2346074, -0.13791174, -0.045525018, 0.03979015, 0.120255254,
  0.20352125, 0.29201376, 0.38931254, 0.5016634, 0.6427869, 0.8614784,
]);

/**
 * FP4 (bitsandbytes' e2m1 with bias 3, scaled so its largest value is 1) as dDequantizeFP4Tree decodes it, indexed by
 * the 4-bit code: bit 3 is the sign, so code 8 is -0.0.
 */
export const FP4_CODE: Float32Array = (() => {
  const magnitudes = [0, 0.0052083335, 0.6666667, 1, 0.33333334, 0.5, 0.16666667, 0.25];
  return f32([...magnitudes, ...magnitudes.map((m) => -m)]);
})();

/** dQuantizeFP4's thresholds on |x|, ascending, and the 3-bit code of each interval between them. */
const FP4_THRESHOLDS: Float32Array = f32([
  0.00260417, 0.0859375, 0.20833333, 0.29166666, 0.4166667, 0.583333, 0.8333333,
]);
const FP4_BITS_BY_RANK = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

/**
 * The `weight.quant_map` tensor bitsandbytes saves (get_4bit_type). For FP4 it is FP4_CODE with +0.0 at code 8
 * (bitsandbytes' list writes -0, which Python reads as the integer 0); dequantization does not read it.
 */
export function quantMap4bit(quantType: QuantType4bit): Float32Array {
  const map = Float32Array.from(quantType === 'nf4' ? NF4_CODE : FP4_CODE);
  if (quantType === 'fp4') map[8] = 0;
  return map;
}

/** dQuantizeNF4: x is value / absmax. */
function nf4Code(x: number): number {
  const t = NF4_THRESHOLDS;
  if (x > t[7]) {
    if (x > t[11]) return x > t[13] ? (x > t[14] ? 15 : 14) : x > t[12] ? 13 : 12;
    return x > t[9] ? (x > t[10] ? 11 : 10) : x > t[8] ? 9 : 8;
  }
  if (x > t[3]) return x > t[5] ? (x > t[6] ? 7 : 6) : x > t[4] ? 5 : 4;
  return x > t[1] ? (x > t[2] ? 3 : 2) : x > t[0] ? 1 : 0;
}

/** dQuantizeFP4: x is value / absmax. */
function fp4Code(x: number): number {
  const t = FP4_THRESHOLDS;
  const sign = x < 0 ? 0b1000 : 0;
  const a = Math.abs(x);
  let rank: number;
  if (a > t[3]) rank = a > t[5] ? (a > t[6] ? 7 : 6) : a > t[4] ? 5 : 4;
  else rank = a > t[1] ? (a > t[2] ? 3 : 2) : a > t[0] ? 1 : 0;
  return FP4_BITS_BY_RANK[rank] | sign;
}

function checkBlockSize(blockSize: number, allowed: readonly number[], what: string): void {
  if (!allowed.includes(blockSize)) {
    throw new RangeError(`${what}: block size ${blockSize} is not one of bitsandbytes' ${allowed.join(', ')}`);
  }
}

/** max |x| of values[start, end), flushed and skipping NaN as the kernel's fmaxf does. */
function blockAbsmax(values: Float32Array, start: number, end: number): number {
  let max = 0;
  for (let i = start; i < end; i++) {
    const a = Math.abs(flushToZero(values[i]));
    if (a > max) max = a;
  }
  return max;
}

/** value / absmax as the kernel forms it: value * (float32) (1 / absmax), flushed. */
function scaled(value: number, reciprocal: number): number {
  return flushToZero(Math.fround(flushToZero(value) * reciprocal));
}

// ---- 8-bit blockwise quantization (used for the absmax values) ----

/**
 * bitsandbytes' create_dynamic_map(signed) (8-bit: up to 7 exponent bits, the rest fraction): 256 sorted float32
 * values in [-1, 1] (signed) or [0, 1]. Built as bitsandbytes does, with float32 torch.linspace(0.1, 1, k) whose
 * multiply-add torch's AVX2 / AVX-512 CPU kernels fuse (its plain kernel does not, and 42 of the signed map's
 * values then differ in the last bit); the power of ten is rounded to float32 before it multiplies.
 */
export function dynamicMap8bit(signed = true): Float32Array {
  const powersOfTen = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1];
  const data: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const k = signed ? 2 ** i + 1 : 2 ** (i + 1) + 1;
    const start = Math.fround(0.1);
    const step = Math.fround(Math.fround(1 - start) / (k - 1));
    // One rounding of a product-and-sum that is exact in float64: the fused multiply-add.
    const points = Array.from({ length: k }, (_, j) =>
      j < k >> 1 ? Math.fround(step * j + start) : Math.fround(1 - step * (k - 1 - j)),
    );
    const scale = Math.fround(powersOfTen[i]);
    for (let j = 0; j < k - 1; j++) {
      const mean = Math.fround(Math.fround(points[j] + points[j + 1]) / 2);
      data.push(Math.fround(scale * mean));
      if (signed) data.push(-Math.fround(scale * mean));
    }
  }
  return Float32Array.from(data.sort((a, b) => a - b));
}

/** dQuantize<0>: the index of `map` (sorted, 256 values) nearest to x, by the kernel's search and midpoint rule. */
function code8bit(map: Float32Array, x: number): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1;
  let upper = 1;
  let value = map[pivot];
  for (let step = 64; step > 0; step >>= 1) {
    if (x > value) {
      lowerPivot = pivot;
      lower = value;
      pivot += step;
    } else {
      upperPivot = pivot;
      upper = value;
      pivot -= step;
    }
    value = map[pivot];
  }
  if (upperPivot === 255) upper = map[255];
  if (lowerPivot === 0) lower = map[0];
  // On the midpoint itself both comparisons fail and `pivot` stays.
  if (x > value) return x > Math.fround(Math.fround(upper + value) * 0.5) ? upperPivot : pivot;
  return x < Math.fround(Math.fround(lower + value) * 0.5) ? lowerPivot : pivot;
}

/** bitsandbytes' quantize_blockwise (kQuantizeBlockwise, General8bit): codes [n] and absmax [ceil(n / blockSize)]. */
export function quantizeBlockwise8bit(
  values: Float32Array,
  map: Float32Array,
  blockSize: number,
): { codes: Uint8Array; absmax: Float32Array } {
  if (map.length !== 256) throw new RangeError(`8-bit map has ${map.length} values, expected 256`);
  if (!(Number.isInteger(blockSize) && blockSize > 0)) throw new RangeError(`block size ${blockSize}`);
  const n = values.length;
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(Math.ceil(n / blockSize));
  for (let block = 0; block < absmax.length; block++) {
    const start = block * blockSize;
    const end = Math.min(n, start + blockSize);
    absmax[block] = blockAbsmax(values, start, end);
    const reciprocal = Math.fround(1 / absmax[block]);
    for (let i = start; i < end; i++) codes[i] = code8bit(map, scaled(values[i], reciprocal));
  }
  return { codes, absmax };
}

/** bitsandbytes' dequantize_blockwise (kDequantizeBlockwise, General8bit), float32: map[code] * absmax. */
export function dequantizeBlockwise8bit(
  codes: Uint8Array,
  absmax: Float32Array,
  map: Float32Array,
  blockSize: number,
): Float32Array {
  const blocks = Math.ceil(codes.length / blockSize);
  if (absmax.length !== blocks) {
    const need = `${codes.length} codes in blocks of ${blockSize} need ${blocks} absmax values`;
    throw new RangeError(`dequantizeBlockwise8bit: ${need}, found ${absmax.length}`);
  }
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    out[i] = flushToZero(Math.fround(map[codes[i]] * absmax[Math.floor(i / blockSize)]));
  }
  return out;
}

// ---- double quantization of the absmax values ----

/** The absmax values quantized to 8 bits (bitsandbytes' compress_statistics=True). */
export interface NestedAbsmax {
  /** uint8 [B]: one code per 4-bit block (saved as `weight.absmax`). */
  codes: Uint8Array;
  /** float32 [ceil(B / 256)] (`weight.nested_absmax`). */
  absmax: Float32Array;
  /** float32 value subtracted before quantizing (`nested_offset` in the quant-state JSON). */
  offset: number;
  /** float32 [256] (`weight.nested_quant_map`): dynamicMap8bit(true) when we quantize; read from the checkpoint. */
  map: Float32Array;
  blockSize: typeof NESTED_BLOCK_SIZE;
}

/** Double quantization: offset = mean(absmax), then 8-bit blockwise quantization of absmax - offset. */
export function quantizeAbsmax(absmax: Float32Array): NestedAbsmax {
  let sum = 0;
  for (let b = 0; b < absmax.length; b++) sum += absmax[b];
  const offset = Math.fround(sum / absmax.length);
  // Float32Array stores round to float32: the torch subtraction.
  const centered = absmax.map((a) => a - offset);
  const map = dynamicMap8bit(true);
  const { codes, absmax: nestedAbsmax } = quantizeBlockwise8bit(centered, map, NESTED_BLOCK_SIZE);
  return { codes, absmax: nestedAbsmax, offset, map, blockSize: NESTED_BLOCK_SIZE };
}

/** The float32 absmax [B] that dequantization uses: dequantize_blockwise(codes) + offset (offset read as float32). */
export function dequantizeAbsmax(nested: NestedAbsmax): Float32Array {
  const values = dequantizeBlockwise8bit(nested.codes, nested.absmax, nested.map, nested.blockSize);
  const offset = Math.fround(nested.offset);
  return values.map((v) => v + offset);
}

// ---- 4-bit ----

export interface Quantized4bit {
  quantType: QuantType4bit;
  blockSize: number;
  /** Element count n of the original tensor. */
  length: number;
  /** uint8 [ceil(n / 2)], first element of each pair in the high nibble. */
  packed: Uint8Array;
  /** float32 [B]; null with double quantization, where `nested` holds the absmax values. */
  absmax: Float32Array | null;
  nested: NestedAbsmax | null;
}

export interface Quantize4bitOptions {
  quantType: QuantType4bit;
  /** Elements per absmax block; bitsandbytes' default is 64. */
  blockSize?: number;
  /** Quantize the absmax values too (bitsandbytes' compress_statistics, bnb_4bit_use_double_quant). */
  doubleQuant: boolean;
}

/** bitsandbytes' shape of the packed tensor for n elements: [(n + 1) / 2, 1]. */
export function packedShape4bit(length: number): [number, number] {
  return [(length + 1) >> 1, 1];
}

/** bitsandbytes' quantize_4bit of one tensor, flattened row-major. */
export function quantize4bit(values: Float32Array, options: Quantize4bitOptions): Quantized4bit {
  const { quantType, blockSize = 64, doubleQuant } = options;
  checkBlockSize(blockSize, BLOCK_SIZES_4BIT, 'quantize4bit');
  const codeOf = quantType === 'nf4' ? nf4Code : fp4Code;
  const n = values.length;
  // bitsandbytes would take the mean of no absmax values (NaN); nothing to store either way.
  if (n === 0) throw new RangeError('quantize4bit: the tensor is empty');
  const packed = new Uint8Array((n + 1) >> 1);
  const absmax = new Float32Array(Math.ceil(n / blockSize));
  for (let block = 0; block < absmax.length; block++) {
    const start = block * blockSize;
    const end = Math.min(n, start + blockSize);
    absmax[block] = blockAbsmax(values, start, end);
    const reciprocal = Math.fround(1 / absmax[block]);
    // Blocks start at even indices, so a pair never straddles two blocks.
    for (let i = start; i < end; i += 2) {
      const high = codeOf(scaled(values[i], reciprocal));
      // The kernel pads the last block with zeros and packs the padding too.
      const low = codeOf(scaled(i + 1 < n ? values[i + 1] : 0, reciprocal));
      packed[i >> 1] = (high << 4) | low;
    }
  }
  if (!doubleQuant) return { quantType, blockSize, length: n, packed, absmax, nested: null };
  return { quantType, blockSize, length: n, packed, absmax: null, nested: quantizeAbsmax(absmax) };
}

/** bitsandbytes' dequantize_4bit, in float32 (a bf16 / fp16 result is this rounded to nearest even). */
export function dequantize4bit(quantized: Quantized4bit): Float32Array {
  const { quantType, blockSize, length: n, packed } = quantized;
  checkBlockSize(blockSize, [32, ...BLOCK_SIZES_4BIT], 'dequantize4bit');
  const absmax = quantized.nested ? dequantizeAbsmax(quantized.nested) : quantized.absmax;
  if (!absmax) throw new RangeError('dequantize4bit: neither absmax nor nested absmax given');
  const blocks = Math.ceil(n / blockSize);
  if (packed.length !== (n + 1) >> 1 || absmax.length !== blocks) {
    const need = `${(n + 1) >> 1} packed bytes and ${blocks} absmax values`;
    const found = `${packed.length} and ${absmax.length}`;
    throw new RangeError(`dequantize4bit: ${n} elements in blocks of ${blockSize} need ${need}, found ${found}`);
  }
  const code = quantType === 'nf4' ? NF4_CODE : FP4_CODE;
  const out = new Float32Array(n);
  for (let block = 0; block < blocks; block++) {
    const scale = absmax[block];
    const end = Math.min(n, (block + 1) * blockSize);
    for (let i = block * blockSize; i < end; i++) {
      const byte = packed[i >> 1];
      out[i] = flushToZero(Math.fround(code[i & 1 ? byte & 0x0f : byte >> 4] * scale));
    }
  }
  return out;
}

// ---- the serialized quant state ----

/**
 * The JSON object bitsandbytes packs into `weight.quant_state.bitsandbytes__<quant_type>` (QuantState.as_dict's
 * non-tensor items, in this key order). bitsandbytes reads nested_offset back with torch.tensor(float(...)), i.e.
 * as float32.
 */
export interface BnbQuantStateJson {
  quant_type: QuantType4bit;
  blocksize: number;
  /** The original weight's dtype: str(torch dtype) without "torch.". */
  dtype: 'float32' | 'float16' | 'bfloat16';
  /** The original weight's shape (n = product). */
  shape: number[];
  nested_blocksize?: typeof NESTED_BLOCK_SIZE;
  nested_dtype?: 'float32';
  nested_offset?: number;
}

/** The quant-state JSON object for a quantized tensor of the given original shape and dtype. */
export function quantStateJson(
  quantized: Quantized4bit,
  shape: number[],
  dtype: BnbQuantStateJson['dtype'],
): BnbQuantStateJson {
  const elements = shape.reduce((a, b) => a * b, 1);
  if (elements !== quantized.length) {
    throw new RangeError(`shape [${shape}] has ${elements} elements, the quantized tensor ${quantized.length}`);
  }
  const state: BnbQuantStateJson = { quant_type: quantized.quantType, blocksize: quantized.blockSize, dtype, shape };
  if (quantized.nested) {
    state.nested_blocksize = NESTED_BLOCK_SIZE;
    state.nested_dtype = 'float32';
    state.nested_offset = quantized.nested.offset;
  }
  return state;
}
