// ggml's k-quants Q4_K, Q5_K and Q6_K as llama.cpp's reference quantizers write them (ggml-quants.c:
// quantize_row_q4_K_ref, quantize_row_q5_K_ref, quantize_row_q6_K_ref, what llama-quantize runs without an importance
// matrix), byte for byte: every float operation rounded to float32 in C's order (Math.fround), nearest_int's
// bit trick, C's integer casts. Super-blocks of QK_K = 256 consecutive elements of a row.
//
// block_q4_K { fp16 d; fp16 dmin; uint8 scales[12]; uint8 qs[128] }            144 bytes
// block_q5_K { fp16 d; fp16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] } 176 bytes
//   8 sub-blocks of 32: x ≈ d * sc[j] * q - dmin * m[j], 6-bit sc and m packed as get_scale_min_k4 reads them;
//   4-bit codes (Q5_K: plus a fifth bit in qh), fitted by make_qkx2_quants.
// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; fp16 d }           210 bytes
//   16 sub-blocks of 16: x ≈ d * scales[j] * (q - 32), 6-bit codes fitted by make_qx_quants.
import { floatToF16Bits, halfToFloat } from '../safetensors.js';

export const QK_K = 256;
export const Q4_K_BLOCK_BYTES = 144;
export const Q5_K_BLOCK_BYTES = 176;
export const Q6_K_BLOCK_BYTES = 210;

const f = Math.fround;
const GROUP_MAX_EPS = f(1e-15);
const TENTH = f(0.1);

// nearest_int: (bits of (float)(x + 12582912.f) & 0x7fffff) - 0x400000, round half to even for |x| < 2^22.
const nearestScratch = new Float32Array(1);
const nearestBits = new Int32Array(nearestScratch.buffer);
function nearestInt(x: number): number {
  nearestScratch[0] = x + 12582912; // float32 sum: double then float rounding is exact for one addition
  return (nearestBits[0] & 0x007fffff) - 0x00400000;
}

const halfScratch = new Float32Array(1);
/** GGML_FP32_TO_FP16 of a float32 value. */
function toHalf(x: number): number {
  halfScratch[0] = x;
  return floatToF16Bits(halfScratch)[0];
}

function writeHalf(out: Uint8Array, at: number, bits: number): void {
  out[at] = bits & 0xff;
  out[at + 1] = bits >> 8;
}

/**
 * make_qkx2_quants with use_mad false: codes L[0..n) in [0, nmax] and a scale and min (returned as [scale, -min]) of
 * x[at..at + n) by weighted least squares over nstep + 1 trial scales.
 */
function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  at: number,
  weights: Float32Array,
  L: Uint8Array,
  lAt: number,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  result: Float32Array,
): void {
  let min = x[at];
  let max = x[at];
  let sumW = weights[0];
  let sumX = f(sumW * x[at]);
  for (let i = 1; i < n; i++) {
    const xi = x[at + i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i];
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lAt, lAt + n);
    result[0] = 0;
    result[1] = -min;
    return;
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[at + i];
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
    L[lAt + i] = l;
    let diff = f(f(f(scale * l) + min) - xi);
    diff = f(diff * diff);
    bestError = f(bestError + f(weights[i] * diff));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min)); // min: the best fit so far
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[at + i];
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
      Laux[i] = l;
      const wl = f(weights[i] * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * xi));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
    let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = f(sumXL / sumL2);
    }
    let error = 0;
    for (let i = 0; i < n; i++) {
      let diff = f(f(f(thisScale * Laux[i]) + thisMin) - x[at + i]);
      diff = f(diff * diff);
      error = f(error + f(weights[i] * diff));
    }
    if (error < bestError) {
      L.set(Laux.subarray(0, n), lAt);
      bestError = error;
      scale = thisScale;
      min = thisMin;
    }
  }
  result[0] = scale;
  result[1] = -min;
}

/**
 * make_qx_quants with rmse_type 1 and no importance weights (w = x²): codes L[0..n) in [0, 2 nmax) and the scale
 * of x[at..at + n), the best of 19 trial scales around nmax / max|x|.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, at: number, L: Uint8Array, lAt: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[at + i]);
    if (ax > amax) {
      amax = ax;
      max = x[at + i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lAt, lAt + n);
    return 0;
  }
  const clamp = (l: number) => Math.max(-nmax, Math.min(nmax - 1, l));
  let iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[at + i];
    const l = clamp(nearestInt(f(iscale * xi)));
    L[lAt + i] = l + nmax;
    const w = f(xi * xi);
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 !== 0 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(TENTH * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[at + i];
      const l = clamp(nearestInt(f(iscale * xi)));
      const w = f(xi * xi);
      sumlx = f(sumlx + f(f(w * xi) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) L[lAt + i] = nmax + clamp(nearestInt(f(iscale * x[at + i])));
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes at q[at..]. */
function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j] & 63, q[at + j + 4] & 63];
  return [(q[at + j + 4] & 0xf) | ((q[at + j - 4] >> 6) << 4), (q[at + j + 4] >> 4) | ((q[at + j] >> 6) << 4)];
}

/**
 * The part Q4_K and Q5_K share: fits each sub-block of 32, packs the 6-bit scales and mins at out[o + 4..16), writes
 * d and dmin at out[o..4), and leaves in L the codes in [0, nmax] that the rounded scales give.
 */
function quantizeSuperBlockKx(
  x: Float32Array,
  at: number,
  nmax: number,
  rmin: number,
  rdelta: number,
  nstep: number,
  out: Uint8Array,
  o: number,
  scratch: KScratch,
): void {
  const { L, Laux, weights, scales, mins, fit } = scratch;
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < QK_K / 32; j++) {
    const start = at + 32 * j;
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[start + l] * x[start + l]));
    const avX = f(Math.sqrt(f(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = avX + Math.abs(x[start + l]);
    makeQkx2Quants(32, nmax, x, start, weights, L, 32 * j, Laux, rmin, rdelta, nstep, fit);
    scales[j] = fit[0];
    mins[j] = fit[1];
    if (scales[j] > maxScale) maxScale = scales[j];
    if (mins[j] > maxMin) maxMin = mins[j];
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  const s = o + 4; // scales[12]
  for (let j = 0; j < QK_K / 32; j++) {
    const ls = Math.min(63, nearestInt(f(invScale * scales[j])) & 0xff); // uint8_t ls = nearest_int(..); MIN(63, ls)
    const lm = Math.min(63, nearestInt(f(invMin * mins[j])) & 0xff);
    if (j < 4) {
      out[s + j] = ls;
      out[s + j + 4] = lm;
    } else {
      out[s + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[s + j - 4] |= (ls >> 4) << 6;
      out[s + j] |= (lm >> 4) << 6;
    }
  }
  const d = toHalf(f(maxScale / 63));
  const dmin = toHalf(f(maxMin / 63));
  writeHalf(out, o, d);
  writeHalf(out, o + 2, dmin);
  for (let j = 0; j < QK_K / 32; j++) {
    const [sc, m] = scaleMinK4(j, out, s);
    const dj = f(halfToFloat(d) * sc);
    if (dj === 0) continue; // C's `if (!d)`: a NaN goes on
    const dm = f(halfToFloat(dmin) * m);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(f(f(x[at + 32 * j + ii] + dm) / dj));
      L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
}

interface KScratch {
  L: Uint8Array;
  Laux: Uint8Array;
  weights: Float32Array;
  scales: Float32Array;
  mins: Float32Array;
  fit: Float32Array;
}

function kScratch(): KScratch {
  return {
    L: new Uint8Array(QK_K),
    Laux: new Uint8Array(32),
    weights: new Float32Array(32),
    scales: new Float32Array(QK_K / 16),
    mins: new Float32Array(QK_K / 32),
    fit: new Float32Array(2),
  };
}

function superBlocks(name: string, values: Float32Array, cols: number): number {
  if (cols % QK_K || values.length % cols)
    throw new RangeError(`${name}: ${values.length} values in rows of ${cols}: rows must be whole blocks of ${QK_K}`);
  return values.length / QK_K;
}

/** block_q4_K bytes of W [rows, cols] (cols a multiple of 256), as quantize_row_q4_K_ref writes them. */
export function quantizeQ4_K(values: Float32Array, cols: number): Uint8Array {
  const blocks = superBlocks('quantizeQ4_K', values, cols);
  const out = new Uint8Array(blocks * Q4_K_BLOCK_BYTES);
  const scratch = kScratch();
  const { L } = scratch;
  for (let i = 0; i < blocks; i++) {
    const o = i * Q4_K_BLOCK_BYTES;
    quantizeSuperBlockKx(values, i * QK_K, 15, -1, TENTH, 20, out, o, scratch);
    let q = o + 16;
    for (let j = 0; j < QK_K; j += 64) {
      for (let l = 0; l < 32; l++) out[q + l] = L[j + l] | (L[j + l + 32] << 4);
      q += 32;
    }
  }
  return out;
}

/** block_q5_K bytes of W [rows, cols] (cols a multiple of 256), as quantize_row_q5_K_ref writes them. */
export function quantizeQ5_K(values: Float32Array, cols: number): Uint8Array {
  const blocks = superBlocks('quantizeQ5_K', values, cols);
  const out = new Uint8Array(blocks * Q5_K_BLOCK_BYTES);
  const scratch = kScratch();
  const { L } = scratch;
  for (let i = 0; i < blocks; i++) {
    const o = i * Q5_K_BLOCK_BYTES;
    quantizeSuperBlockKx(values, i * QK_K, 31, -0.5, TENTH, 15, out, o, scratch);
    const qh = o + 16;
    let ql = o + 48;
    let m1 = 1;
    let m2 = 2;
    for (let n = 0; n < QK_K; n += 64) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j];
        if (l1 > 15) {
          l1 -= 16;
          out[qh + j] |= m1;
        }
        let l2 = L[n + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          out[qh + j] |= m2;
        }
        out[ql + j] = l1 | (l2 << 4);
      }
      m1 <<= 2;
      m2 <<= 2;
      ql += 32;
    }
  }
  return out;
}

/** block_q6_K bytes of W [rows, cols] (cols a multiple of 256), as quantize_row_q6_K_ref writes them. */
export function quantizeQ6_K(values: Float32Array, cols: number): Uint8Array {
  const blocks = superBlocks('quantizeQ6_K', values, cols);
  const out = new Uint8Array(blocks * Q6_K_BLOCK_BYTES);
  const L = new Uint8Array(QK_K);
  const scales = new Float32Array(QK_K / 16);
  const codeScales = new Int8Array(QK_K / 16);
  for (let i = 0; i < blocks; i++) {
    const at = i * QK_K;
    const o = i * Q6_K_BLOCK_BYTES;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < QK_K / 16; ib++) {
      const scale = makeQxQuants(16, 32, values, at + 16 * ib, L, 16 * ib);
      scales[ib] = scale;
      const absScale = Math.abs(scale);
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale;
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) continue; // a block of zeros (d = +0.0 too)

    const iscale = f(-128 / maxScale);
    const d = toHalf(f(1 / iscale));
    writeHalf(out, o + 208, d);
    for (let ib = 0; ib < QK_K / 16; ib++) {
      codeScales[ib] = Math.min(127, nearestInt(f(iscale * scales[ib]))); // the int8 store wraps, as C's does
      out[o + 192 + ib] = codeScales[ib] & 0xff;
    }
    for (let j = 0; j < QK_K / 16; j++) {
      const dj = f(halfToFloat(d) * codeScales[j]);
      if (dj === 0) continue; // C's `if (!d)`: a NaN goes on
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestInt(f(values[at + 16 * j + ii] / dj));
        L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    let ql = o;
    let qh = o + 128;
    for (let j = 0; j < QK_K; j += 128) {
      for (let l = 0; l < 32; l++) {
        const q1 = L[j + l] & 0xf;
        const q2 = L[j + l + 32] & 0xf;
        const q3 = L[j + l + 64] & 0xf;
        const q4 = L[j + l + 96] & 0xf;
        out[ql + l] = q1 | (q3 << 4);
        out[ql + l + 32] = q2 | (q4 << 4);
        out[qh + l] =
          (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
      }
      ql += 64;
      qh += 32;
    }
  }
  return out;
}
