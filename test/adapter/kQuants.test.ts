// llama.cpp's k-quants (main/model/quant/kQuants.ts) and the Q5_0 / Q5_1 fallbacks (ggmlQuants.ts), against blocks
// that llama.cpp itself wrote: test/reference/make_kquant_fixtures.py calls ggml_quantize_chunk (llama-quantize's
// call, no importance matrix) in the libggml-base.so that node-llama-cpp ships, and dequantize_row_* on the result,
// which gguf-py's independent dequantizer reproduces value for value. Fixtures in test/fixtures/numerics/kquants/.
//  - Our blocks are byte-identical to llama.cpp's for every case (normal, heavy-tailed, scaled uniform, and one edge
//    case per super-block: zeros, zero sub-blocks, one-signed, constant, fp16-subnormal scales, ties, outliers).
//  - llama.cpp's dequantization of those blocks stays within each type's expected error of the weights.
//  - The tensor type mixes (llama-quantize's llama_tensor_get_type for q4_k_m, q5_k_m, q6_k and q4_0).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeGgml, GgmlType, ggmlTypeFor, type QuantMixModel } from '../../main/model/quant/ggmlQuants.js';

const DIR = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'numerics', 'kquants');
const TYPES = {
  q4_k: GgmlType.Q4_K,
  q5_k: GgmlType.Q5_K,
  q6_k: GgmlType.Q6_K,
  q5_0: GgmlType.Q5_0,
  q5_1: GgmlType.Q5_1,
};

interface Section {
  byte_offset: number;
  length: number;
}
interface FixtureCase {
  name: string;
  file: string;
  shape: [number, number];
  sections: Record<string, Section>;
}
const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'manifest.json'), 'utf8')) as { cases: FixtureCase[] };

function load(c: FixtureCase) {
  const bytes = fs.readFileSync(path.join(DIR, c.file));
  const f32 = (s: Section) =>
    new Float32Array(bytes.buffer.slice(bytes.byteOffset + s.byte_offset).slice(0, s.length * 4));
  const u8 = (s: Section) => bytes.subarray(s.byte_offset, s.byte_offset + s.length);
  return {
    input: f32(c.sections.input),
    blocks: (t: string) => u8(c.sections[t]),
    dequantized: (t: string) => f32(c.sections[`${t}_dequantized`]),
  };
}

/** The first block that differs, as hex: a failure shows where and how. */
function firstDifference(ours: Uint8Array, theirs: Uint8Array, blockBytes: number): string | null {
  if (ours.length !== theirs.length) return `length ${ours.length} vs ${theirs.length}`;
  for (let i = 0; i < ours.length; i++) {
    if (ours[i] === theirs[i]) continue;
    const b = Math.floor(i / blockBytes) * blockBytes;
    const hex = (x: Uint8Array) => Buffer.from(x.subarray(b, b + blockBytes)).toString('hex');
    return `block ${b / blockBytes}, byte ${i - b}:\n ours   ${hex(ours)}\n llama  ${hex(theirs)}`;
  }
  return null;
}

const BLOCK_BYTES: Record<keyof typeof TYPES, number> = { q4_k: 144, q5_k: 176, q6_k: 210, q5_0: 22, q5_1: 24 };

describe('k-quant blocks', () => {
  it.each(Object.keys(TYPES) as (keyof typeof TYPES)[])("%s blocks are byte-identical to llama.cpp's", (type) => {
    for (const c of manifest.cases) {
      const { input, blocks } = load(c);
      const ours = encodeGgml(TYPES[type], input, c.shape[1]);
      expect(firstDifference(ours, blocks(type), BLOCK_BYTES[type]), c.name).toBeNull();
    }
  });

  // Worst row's relative RMS error of llama.cpp's dequantization of the blocks, on the normal, heavy-tailed and
  // uniform cases: a block's step is its range over 2^bits - 1 codes (Q6_K and Q5_0, symmetric: 2 max|x| over 64 and
  // 32), and rounding costs step / √12 RMS: about 0.08 σ for 4 bits, 0.04 σ for 5 and 0.02 σ for 6 on 32 normal
  // samples (range ≈ 4.5 σ), more on heavy tails, whose outliers stretch the range (measured worst: Q4_K 0.109,
  // Q5_K 0.050, Q6_K 0.027, Q5_0 0.067, Q5_1 0.050, all on the Student t rows). The bounds leave ~20% margin; a
  // misplaced nibble, high bit, scale or sign gives errors of the order of σ.
  const RMS_BOUND: Record<keyof typeof TYPES, number> = { q4_k: 0.13, q5_k: 0.06, q6_k: 0.033, q5_0: 0.08, q5_1: 0.06 };
  it.each(Object.keys(TYPES) as (keyof typeof TYPES)[])(
    'llama.cpp dequantizes the %s blocks within the expected error',
    (type) => {
      for (const c of manifest.cases.filter((k) => !k.name.startsWith('edges'))) {
        const { input, dequantized } = load(c);
        const back = dequantized(type);
        const cols = c.shape[1];
        let worst = 0;
        for (let r = 0; r < c.shape[0]; r++) {
          let err = 0;
          let ref = 0;
          for (let j = r * cols; j < (r + 1) * cols; j++) {
            err += (back[j] - input[j]) ** 2;
            ref += input[j] ** 2;
          }
          worst = Math.max(worst, Math.sqrt(err / ref));
        }
        console.log(`${type} ${c.name}: worst row relative RMS error ${worst.toFixed(4)}`);
        expect(worst, `${type} ${c.name}`).toBeLessThan(RMS_BOUND[type]);
      }
    },
  );
});

describe('llama-quantize tensor type mixes', () => {
  const model = (over: Partial<QuantMixModel> = {}): QuantMixModel => ({
    isOutput: false,
    layers: 16,
    is70B: false,
    ...over,
  });
  const type = (
    name: string,
    shape: number[],
    quant: Parameters<typeof ggmlTypeFor>[2],
    over?: Partial<QuantMixModel>,
  ) => GgmlType[ggmlTypeFor(name, shape, quant, model(over))];

  it('q4_k_m raises attn_v and ffn_down to Q6_K in the layers use_more_bits picks, and the output to Q6_K', () => {
    // use_more_bits over 16 layers: i < 2, i >= 14, (i - 2) % 3 == 2 → 0, 1, 4, 7, 10, 13, 14, 15.
    const raised = [...Array(16).keys()].filter(
      (i) => type(`blk.${i}.attn_v.weight`, [512, 1024], 'q4_k_m') === 'Q6_K',
    );
    expect(raised).toEqual([0, 1, 4, 7, 10, 13, 14, 15]);
    for (const i of [...Array(16).keys()]) {
      expect(type(`blk.${i}.ffn_down.weight`, [1024, 2816], 'q4_k_m')).toBe(raised.includes(i) ? 'Q6_K' : 'Q4_K');
      expect(type(`blk.${i}.ffn_up.weight`, [2816, 1024], 'q4_k_m')).toBe('Q4_K');
      expect(type(`blk.${i}.attn_q.weight`, [1024, 1024], 'q4_k_m')).toBe('Q4_K');
    }
    expect(type('output.weight', [32000, 1024], 'q4_k_m', { isOutput: true })).toBe('Q6_K');
    expect(type('token_embd.weight', [32000, 1024], 'q4_k_m')).toBe('Q4_K');
    expect(type('token_embd.weight', [32000, 1024], 'q4_k_m', { isOutput: true })).toBe('Q6_K'); // tied
    expect(type('blk.0.attn_norm.weight', [1024], 'q4_k_m')).toBe('F32');
    // A 70B-type model: attn_v left at Q4_K goes to Q5_K.
    expect(type('blk.11.attn_v.weight', [1024, 8192], 'q4_k_m', { layers: 80, is70B: true })).toBe('Q5_K');
    expect(type('blk.12.attn_v.weight', [1024, 8192], 'q4_k_m', { layers: 80, is70B: true })).toBe('Q6_K');
  });

  it('q5_k_m and q6_k follow their defaults with the same raises', () => {
    expect(type('blk.0.attn_v.weight', [512, 1024], 'q5_k_m')).toBe('Q6_K');
    expect(type('blk.2.attn_v.weight', [512, 1024], 'q5_k_m')).toBe('Q5_K');
    expect(type('blk.2.ffn_gate.weight', [2816, 1024], 'q5_k_m')).toBe('Q5_K');
    expect(type('output.weight', [32000, 1024], 'q5_k_m', { isOutput: true })).toBe('Q6_K');
    expect(type('blk.2.attn_v.weight', [512, 1024], 'q6_k')).toBe('Q6_K');
    expect(type('output.weight', [32000, 1024], 'q6_k', { isOutput: true })).toBe('Q6_K');
  });

  it('falls back as llama-quantize does on widths that are not a multiple of 256', () => {
    // SmolLM-135M's hidden width 576 and Qwen2.5-0.5B's 896.
    expect(type('blk.2.attn_q.weight', [576, 576], 'q4_k_m')).toBe('Q5_0');
    expect(type('blk.2.attn_q.weight', [896, 896], 'q5_k_m')).toBe('Q5_1');
    expect(type('blk.0.attn_v.weight', [128, 896], 'q4_k_m')).toBe('Q8_0'); // Q6_K falls back to Q8_0
    expect(type('blk.2.attn_q.weight', [576, 576], 'q6_k')).toBe('Q8_0');
    expect(type('output.weight', [49152, 576], 'q4_k_m', { isOutput: true })).toBe('Q8_0');
    expect(type('blk.2.ffn_down.weight', [896, 4864], 'q4_k_m')).toBe('Q4_K'); // 4864 = 19 * 256
    expect(type('blk.2.attn_q.weight', [48, 48], 'q4_k_m')).toBe('F16');
  });

  it('q4_0 keeps Q4_0 and raises the output matrix to Q6_K, or Q8_0 on widths off 256', () => {
    expect(type('blk.0.attn_v.weight', [512, 1024], 'q4_0')).toBe('Q4_0');
    expect(type('output.weight', [32000, 1024], 'q4_0', { isOutput: true })).toBe('Q6_K');
    expect(type('output.weight', [32000, 576], 'q4_0', { isOutput: true })).toBe('Q8_0');
    expect(type('blk.0.ffn_down.weight', [64, 48], 'q4_0')).toBe('F16');
  });
});
