// The numerics fixtures' binary files (test/fixtures/numerics/*/): sections of one file listed in its manifest, and
// the exact comparisons the codec tests make against them.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';

export interface Section {
  dtype: 'F32' | 'BF16' | 'U8';
  byte_offset: number;
  length: number;
}

/** Section `name` of `dir/file`: U8 as bytes, F32 and BF16 as float32 values (copied, aligned). */
export function readSection(dir: string, file: string, sections: Record<string, Section>, name: string) {
  const section = sections[name];
  if (!section) throw new Error(`${file}: no section ${name}`);
  const bytes = fs.readFileSync(path.join(dir, file));
  const width = section.dtype === 'F32' ? 4 : section.dtype === 'BF16' ? 2 : 1;
  const copy = new Uint8Array(bytes.subarray(section.byte_offset, section.byte_offset + section.length * width));
  if (section.dtype === 'U8') return copy;
  if (section.dtype === 'F32') return new Float32Array(copy.buffer);
  return new Float32Array(Uint32Array.from(new Uint16Array(copy.buffer), (b) => b << 16).buffer);
}

const bits = (x: number): string => `0x${new Uint32Array(Float32Array.of(x).buffer)[0].toString(16).padStart(8, '0')}`;

/**
 * Float32 arrays equal as bit patterns (so -0.0 counts; any NaN matches any NaN, as JavaScript keeps no NaN payload);
 * on failure names the count, the first mismatch and the worst difference.
 */
export function expectSameFloats(actual: Float32Array, expected: Float32Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let mismatches = 0;
  let first = -1;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === e[i] || (Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) continue;
    mismatches++;
    if (first < 0) first = i;
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  const detail =
    first < 0
      ? ''
      : `${mismatches} of ${a.length} differ; first at ${first}: ${actual[first]} (${bits(actual[first])}) vs ` +
        `${expected[first]} (${bits(expected[first])}); worst |difference| ${worst}`;
  expect(mismatches, `${what}: ${detail}`).toBe(0);
}

export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const first = actual.findIndex((v, i) => v !== expected[i]);
  const detail = first < 0 ? '' : `first difference at byte ${first}: ${actual[first]} vs ${expected[first]}`;
  expect(first, `${what}: ${detail}`).toBe(-1);
}
