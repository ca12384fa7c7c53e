// bitsandbytes' 4-bit formats against the PyTorch reference (test/reference/nf4_reference.py): packed bytes, absmax,
// nested codes / absmax / offset and dequantized values must match bit for bit (float32 compared as bit patterns, so
// -0.0 counts); then round-trip properties on seeded random tensors.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import {
  FP4_CODE,
  NF4_CODE,
  dequantize4bit,
  dequantizeAbsmax,
  dequantizeBlockwise8bit,
  dynamicMap8bit,
  packedShape4bit,
  quantMap4bit,
  quantStateJson,
  quantize4bit,
  quantizeAbsmax,
  quantizeBlockwise8bit,
  type BnbQuantStateJson,
  type QuantType4bit,
} from '../../main/model/quant/nf4.js';
import { expectSameBytes, expectSameFloats, readSection, type Section } from '../support/fixtureFiles.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/numerics/nf4');

interface FixtureCase {
  name: string;
  note: string;
  quant_type: QuantType4bit;
  block_size: number;
  double_quant: boolean;
  length: number;
  offset: number | null;
  quant_state: BnbQuantStateJson;
  file: string;
  sections: Record<string, Section>;
}
interface Manifest {
  maps: { file: string; sections: Record<string, Section> };
  cases: FixtureCase[];
  blockwise8: { name: string; block_size: number; length: number; file: string; sections: Record<string, Section> };
}

const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;

const f32Section = (file: string, sections: Record<string, Section>, name: string): Float32Array =>
  readSection(FIXTURES, file, sections, name) as Float32Array;
const u8Section = (file: string, sections: Record<string, Section>, name: string): Uint8Array =>
  readSection(FIXTURES, file, sections, name) as Uint8Array;

describe('code tables and maps', () => {
  const { file, sections } = manifest.maps;

  test("NF4 and FP4 tables are bitsandbytes' (FP4 decodes code 8 to -0.0; its saved quant_map has +0.0)", () => {
    expectSameFloats(NF4_CODE, f32Section(file, sections, 'quant_map_nf4'), 'NF4_CODE');
    expectSameFloats(quantMap4bit('nf4'), f32Section(file, sections, 'quant_map_nf4'), 'quantMap4bit(nf4)');
    expectSameFloats(FP4_CODE, f32Section(file, sections, 'kernel_fp4'), 'FP4_CODE');
    expectSameFloats(quantMap4bit('fp4'), f32Section(file, sections, 'quant_map_fp4'), 'quantMap4bit(fp4)');
    expect(Object.is(FP4_CODE[8], -0)).toBe(true);
    expect(Object.is(quantMap4bit('fp4')[8], 0)).toBe(true);
  });

  test('dynamicMap8bit is create_dynamic_map, signed and unsigned', () => {
    expectSameFloats(dynamicMap8bit(true), f32Section(file, sections, 'dynamic_signed'), 'signed map');
    expectSameFloats(dynamicMap8bit(false), f32Section(file, sections, 'dynamic_unsigned'), 'unsigned map');
    const signed = dynamicMap8bit();
    expect([signed[0] < -0.99, signed[127], signed[255]]).toEqual([true, 0, 1]);
  });
});

describe.each(manifest.cases)('$name ($quant_type, block $block_size, double quant $double_quant)', (fixture) => {
  const { file, sections } = fixture;
  const input = f32Section(file, sections, 'input');
  const options = { quantType: fixture.quant_type, blockSize: fixture.block_size };

  test('quantize4bit: packed bytes and absmax bit for bit', () => {
    const plain = quantize4bit(input, { ...options, doubleQuant: false });
    expect(plain.length).toBe(fixture.length);
    expect(packedShape4bit(fixture.length)).toEqual([u8Section(file, sections, 'packed').length, 1]);
    expectSameBytes(plain.packed, u8Section(file, sections, 'packed'), 'packed');
    expectSameFloats(plain.absmax!, f32Section(file, sections, 'absmax'), 'absmax');
    expect(plain.nested).toBeNull();
  });

  test('dequantize4bit of the reference bytes: exact float32 values', () => {
    const nested = fixture.double_quant
      ? {
          codes: u8Section(file, sections, 'nested_codes'),
          absmax: f32Section(file, sections, 'nested_absmax'),
          offset: fixture.offset!,
          map: f32Section(manifest.maps.file, manifest.maps.sections, 'dynamic_signed'),
          blockSize: 256 as const,
        }
      : null;
    const values = dequantize4bit({
      quantType: fixture.quant_type,
      blockSize: fixture.block_size,
      length: fixture.length,
      packed: u8Section(file, sections, 'packed'),
      absmax: nested ? null : f32Section(file, sections, 'absmax'),
      nested,
    });
    expectSameFloats(values, f32Section(file, sections, 'dequantized'), 'dequantized');
  });

  test('quantStateJson: the keys, order and values bitsandbytes serializes', () => {
    const quantized = quantize4bit(input, { ...options, doubleQuant: fixture.double_quant });
    const { shape, dtype } = fixture.quant_state;
    const state = quantStateJson(quantized, shape, dtype);
    expect(state).toEqual(fixture.quant_state);
    expect(Object.keys(state)).toEqual(Object.keys(fixture.quant_state));
  });
});

describe.each(manifest.cases.filter((c: { double_quant: boolean }) => c.double_quant))(
  '$name: double quantization',
  (fixture) => {
    const { file, sections } = fixture;
    const input = f32Section(file, sections, 'input');
    const options = { quantType: fixture.quant_type, blockSize: fixture.block_size };

    test('offset, nested codes and nested absmax bit for bit', () => {
      const nested = quantizeAbsmax(f32Section(file, sections, 'absmax'));
      expect(nested.offset).toBe(fixture.offset);
      expectSameBytes(nested.codes, u8Section(file, sections, 'nested_codes'), 'nested codes');
      expectSameFloats(nested.absmax, f32Section(file, sections, 'nested_absmax'), 'nested absmax');
      expectSameFloats(dequantizeAbsmax(nested), f32Section(file, sections, 'absmax_dequantized'), 'absmax decoded');

      const whole = quantize4bit(input, { ...options, doubleQuant: true });
      expect(whole.absmax).toBeNull();
      expectSameBytes(whole.packed, u8Section(file, sections, 'packed'), 'packed');
      expectSameBytes(whole.nested!.codes, nested.codes, 'nested codes from quantize4bit');
    });
  },
);

describe('8-bit blockwise quantization (the absmax codec)', () => {
  const { file, sections, block_size: blockSize } = manifest.blockwise8;

  test('every midpoint of the dynamic map and its float32 neighbours, bit for bit', () => {
    const map = dynamicMap8bit(true);
    const { codes, absmax } = quantizeBlockwise8bit(f32Section(file, sections, 'input'), map, blockSize);
    expectSameBytes(codes, u8Section(file, sections, 'codes'), 'codes');
    expectSameFloats(absmax, f32Section(file, sections, 'absmax'), 'absmax');
    const values = dequantizeBlockwise8bit(codes, absmax, map, blockSize);
    expectSameFloats(values, f32Section(file, sections, 'dequantized'), 'dequantized');
  });
});

/** Seeded standard normal draws (mulberry32 + Box-Muller), rounded to float32. */
function randomNormal(n: number, seed: number, std: number): Float32Array {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 2 ** 32;
  };
  return Float32Array.from(
    { length: n },
    () => std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()),
  );
}

/** Half the largest gap between neighbouring values of a code table. */
function halfLargestGap(code: Float32Array): number {
  const sorted = [...code].sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < sorted.length; i++) gap = Math.max(gap, sorted[i] - sorted[i - 1]);
  return gap / 2;
}

describe('round-trip properties', () => {
  test.each([
    ['nf4', 64, false],
    ['nf4', 64, true],
    ['fp4', 64, false],
    ['fp4', 128, true],
  ] as const)(
    '%s, block %i, double quant %s: |x - dequantize(quantize(x))| <= half the largest gap * absmax',
    (quantType, blockSize, doubleQuant) => {
      const x = randomNormal(64 * 300 + 45, 7, 0.05); // odd, not a multiple of the block size
      const quantized = quantize4bit(x, { quantType, blockSize, doubleQuant });
      const y = dequantize4bit(quantized);
      const trueAbsmax = quantize4bit(x, { quantType, blockSize, doubleQuant: false }).absmax!;
      const usedAbsmax = quantized.nested ? dequantizeAbsmax(quantized.nested) : trueAbsmax;
      const halfGap = halfLargestGap(quantType === 'nf4' ? NF4_CODE : FP4_CODE);
      let worst = 0;
      for (let i = 0; i < x.length; i++) {
        const b = Math.floor(i / blockSize);
        // A decoded scale off by d moves every decoded value by at most |code| * d <= d.
        const bound = halfGap * trueAbsmax[b] + Math.abs(usedAbsmax[b] - trueAbsmax[b]) + 1e-6 * trueAbsmax[b];
        worst = Math.max(worst, Math.abs(y[i] - x[i]) / bound);
      }
      expect(worst, `worst error / bound ${worst}`).toBeLessThanOrEqual(1);
      if (doubleQuant) {
        // The 8-bit codes keep each scale within a few parts in a thousand of the true one.
        const relative = Math.max(...trueAbsmax.map((a, b) => Math.abs(usedAbsmax[b] - a) / a));
        expect(relative).toBeLessThan(0.01);
      }
    },
  );

  test('a length that is not a multiple of the block size: ceil(n / 2) bytes, the padding nibble codes zero', () => {
    const n = 64 * 3 + 17;
    const x = randomNormal(n, 11, 1);
    const nf4 = quantize4bit(x, { quantType: 'nf4', doubleQuant: false });
    expect([nf4.packed.length, nf4.absmax!.length, packedShape4bit(n)]).toEqual([105, 4, [105, 1]]);
    expect(nf4.packed[104] & 0x0f).toBe(7); // NF4 code of 0.0
    expect(dequantize4bit(nf4).length).toBe(n);
    const fp4 = quantize4bit(x, { quantType: 'fp4', doubleQuant: false });
    expect(fp4.packed[104] & 0x0f).toBe(0); // FP4 code of +0.0
  });

  test('a block of zeros: absmax 0, every code 0 (0 * 1/0 is NaN), decoded to zeros', () => {
    const x = new Float32Array(192);
    x.set(randomNormal(64, 3, 1), 0);
    x.set(randomNormal(64, 4, 1), 128); // block 1 stays zero
    for (const quantType of ['nf4', 'fp4'] as const) {
      const quantized = quantize4bit(x, { quantType, doubleQuant: false });
      expect(quantized.absmax![1]).toBe(0);
      expect([...quantized.packed.subarray(32, 64)].every((byte) => byte === 0)).toBe(true);
      const y = dequantize4bit(quantized);
      // NF4 code 0 is -1, so its zeros are -0.0; FP4 code 0 is +0.0.
      expect([...y.subarray(64, 128)].every((v) => Object.is(v, quantType === 'nf4' ? -0 : 0))).toBe(true);
    }
  });

  test('ties and exact values: a value on a threshold takes the lower code; code values come back exactly', () => {
    const threshold = 0.03979015; // float32 of dQuantizeNF4's 0.03979014977812767f, between codes 7 and 8
    const above = Math.fround(Math.fround(threshold) + 2 ** -28); // the next float32 up
    const q = quantize4bit(Float32Array.of(1, threshold, above, Number.NaN), { quantType: 'nf4', doubleQuant: false });
    expect([...q.packed]).toEqual([(15 << 4) | 7, (8 << 4) | 0]);

    const scaledCodes = NF4_CODE.map((c) => 2 * c);
    expectSameFloats(
      dequantize4bit(quantize4bit(scaledCodes, { quantType: 'nf4', doubleQuant: false })),
      scaledCodes,
      'NF4 code values',
    );
  });

  test('mismatched inputs fail with what was expected and found', () => {
    const quantized = quantize4bit(randomNormal(100, 5, 1), { quantType: 'nf4', doubleQuant: false });
    expect(() => dequantize4bit({ ...quantized, length: 200 })).toThrow(/need 100 packed bytes and 4 absmax values/);
    expect(() => quantStateJson(quantized, [10, 11], 'float32')).toThrow(/110 elements.*100/);
    expect(() => quantize4bit(new Float32Array(8), { quantType: 'nf4', blockSize: 48, doubleQuant: false })).toThrow(
      /block size 48/,
    );
  });
});
