// The int4 codec against llama.cpp's own Python package (test/reference/make_int4_fixtures.py, gguf-py's Q4_0):
// Q4_0 bytes equal byte for byte, dequantized values bit for bit (float32 compared as bit patterns, so -0.0 counts;
// any NaN matches any NaN, as JavaScript does not keep NaN payloads); then the MatMulNBits layout by hand.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import {
  INT4_BLOCK_SIZE,
  INT4_CODE_VALUES,
  dequantizeInt4,
  int4ToQ4_0Blocks,
  quantizeInt4,
} from '../../main/model/quant/int4.js';
import { expectSameBytes, expectSameFloats, readSection, type Section } from '../support/fixtureFiles.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/numerics/int4');

interface FixtureCase {
  name: string;
  note: string;
  shape: [number, number];
  file: string;
  sections: Record<string, Section>;
}

const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as { cases: FixtureCase[] };

const u8Section = (fixture: FixtureCase, name: string) =>
  readSection(FIXTURES, fixture.file, fixture.sections, name) as Uint8Array;
const f32Section = (fixture: FixtureCase, name: string) =>
  readSection(FIXTURES, fixture.file, fixture.sections, name) as Float32Array;

test('the fixtures cover the three cases, edge cases included', () => {
  expect(manifest.cases.map((c) => c.name)).toEqual(['normal_8x64', 'edges_4x96', 'uniform_16x128']);
});

describe.each(manifest.cases)('$name ($note)', (fixture) => {
  const [rows, cols] = fixture.shape;
  const input = f32Section(fixture, 'input');

  test("quantizeInt4 → int4ToQ4_0Blocks: gguf-py's Q4_0 bytes exactly", () => {
    const { packed, scales } = quantizeInt4(input, rows, cols);
    expect([packed.length, scales.length]).toEqual([(rows * cols) / 2, (rows * cols) / INT4_BLOCK_SIZE]);
    expectSameBytes(int4ToQ4_0Blocks(packed, scales), u8Section(fixture, 'q4_0'), 'Q4_0 blocks');
  });

  test("dequantizeInt4: gguf-py's dequantized float32 values bit for bit", () => {
    const { packed, scales } = quantizeInt4(input, rows, cols);
    expectSameFloats(dequantizeInt4(packed, scales, rows * cols), f32Section(fixture, 'dequantized'), 'dequantized');
  });
});

describe('MatMulNBits layout', () => {
  // Element 0 is max = -8, so d = 1, id = 1 and x gets code trunc(x + 8.5); the others sit a quarter off the code
  // boundaries, element i at (i >> 1) - 8 -+ 0.25, for codes 0, 0, 1, 1, ..., 15, 15.
  const row = Float32Array.from({ length: 32 }, (_, i) => (i === 0 ? -8 : (i >> 1) - 8 + (i & 1 ? 0.25 : -0.25)));
  const codes = Array.from({ length: 32 }, (_, i) => i >> 1);

  test('element 2i in the low nibble of byte i, element 2i + 1 in the high nibble; scale 1.0 as fp16', () => {
    const { packed, scales } = quantizeInt4(row, 1, 32);
    expect([...scales]).toEqual([0x3c00]);
    expect([...packed]).toEqual(Array.from({ length: 16 }, (_, i) => codes[2 * i] | (codes[2 * i + 1] << 4)));
    expect([...packed.subarray(0, 3)]).toEqual([0x00, 0x11, 0x22]);
    expect([...dequantizeInt4(packed, scales, 32)]).toEqual(codes.map((c) => c - 8));
    expect([...INT4_CODE_VALUES]).toEqual(Array.from({ length: 16 }, (_, c) => c - 8));
  });

  test('GGUF Q4_0 pairs element j with j + 16 instead', () => {
    const { packed, scales } = quantizeInt4(row, 1, 32);
    const q4_0 = int4ToQ4_0Blocks(packed, scales);
    expect([...q4_0.subarray(0, 2)]).toEqual([0x00, 0x3c]);
    expect([...q4_0.subarray(2)]).toEqual(Array.from({ length: 16 }, (_, j) => codes[j] | (codes[j + 16] << 4)));
    expect(q4_0[2]).toBe(0x80);
  });

  test('two rows of two blocks: blocks in row-major order, [rows, cols / 32, 16]', () => {
    // Block b is the row times 2^b: the same codes, scale 2^b.
    const w = Float32Array.from({ length: 2 * 64 }, (_, i) => row[i % 32] * 2 ** Math.floor(i / 32));
    const { packed, scales } = quantizeInt4(w, 2, 64);
    expect(packed.length).toBe(64);
    expect([...scales]).toEqual([0x3c00, 0x4000, 0x4400, 0x4800]); // fp16 1, 2, 4, 8
    for (let block = 1; block < 4; block++) {
      expect(packed.subarray(block * 16, block * 16 + 16), `block ${block}`).toEqual(packed.subarray(0, 16));
    }
  });
});

describe('edge cases by hand', () => {
  test('a zero block led by -0.0 stores d = -0.0 as C does (gguf-py: +0.0); codes 8, decoded to -0.0', () => {
    const zeros = new Float32Array(32);
    zeros[0] = -0;
    const { packed, scales } = quantizeInt4(zeros, 1, 32);
    expect([...scales]).toEqual([0x8000]);
    expect(packed.every((byte) => byte === 0x88)).toBe(true);
    expect(dequantizeInt4(packed, scales, 32).every((v) => Object.is(v, -0))).toBe(true);
  });

  test('NaN is skipped when finding the largest |x| (as C does) and gets code 0', () => {
    const x = Float32Array.from({ length: 32 }, (_, i) => (i === 0 ? Number.NaN : i === 1 ? 4 : 0));
    const { packed, scales } = quantizeInt4(x, 1, 32);
    expect([...scales]).toEqual([0xb800]); // -0.5
    expect(packed[0]).toBe(0x00); // NaN → 0, 4 → 4 * -2 + 8.5 → 0
    expect(packed[1]).toBe(0x88);
  });
});

describe('argument checks', () => {
  test('cols not a multiple of 32 throws, naming the shape', () => {
    expect(() => quantizeInt4(new Float32Array(4 * 48), 4, 48)).toThrow(/\[4, 48\].*multiple of 32/);
    expect(() => quantizeInt4(new Float32Array(0), 0, 0)).toThrow(/\[0, 0\]/);
  });

  test('mismatched sizes fail with what was expected and found', () => {
    expect(() => quantizeInt4(new Float32Array(60), 2, 32)).toThrow(/needs 64 values, found 60/);
    const { packed, scales } = quantizeInt4(new Float32Array(64), 2, 32);
    expect(() => dequantizeInt4(packed, scales, 96)).toThrow(/96 elements need 48 packed bytes and 3 scales/);
    expect(() => int4ToQ4_0Blocks(packed.subarray(1), scales)).toThrow(/found 31 and 2/);
  });
});
