// LoRA GGUF export for llama.cpp / Ollama, parsed back by @huggingface/gguf (an independent reader): every key and
// tensor shape llama.cpp's adapter loader checks, the q/k row permutation of its HF converter, and a bit-exact round
// trip.
import fs from 'node:fs';
import path from 'node:path';
import { gguf } from '@huggingface/gguf';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import { readGgufLoraAdapter } from '../../main/adapter/gguf.js';
import type { LoraWeights } from '../../main/adapter/loraAdapter.js';
import { ollamaCreateCommand } from '../../main/adapter/ollamaExport.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

// Asynchronous: a test worker blocked for long misses Vitest's RPC deadline.
const cli = (...args: string[]) => runCliAsync(args);
const ALL = 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj';
const NAMES = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
} as const;

let work: string;

beforeAll(async () => {
  work = tempDir('gguf');
});

/** A tiny model of `arch` and an rsLoRA adapter on all seven projections trained a few steps (B nonzero). */
async function trained(arch: string) {
  const model = path.join(work, `${arch}-model`);
  expect(
    (
      await cli(
        'create-tiny-model',
        model,
        '--arch',
        arch,
        '--layers',
        '2',
        '--hidden',
        '64',
        '--heads',
        '4',
        '--kv-heads',
        '2',
        '--intermediate',
        '96',
      )
    ).code,
  ).toBe(0);
  const data = path.join(work, 'data.jsonl');
  fs.writeFileSync(data, ['one two three', 'four five six seven'].map((text) => JSON.stringify({ text })).join('\n'));
  const adapter = path.join(work, `${arch}-adapter`);
  expect(
    (
      await cli(
        'train',
        '--model',
        model,
        '--data',
        data,
        '--out',
        adapter,
        '--targets',
        ALL,
        '--rank',
        '4',
        '--alpha',
        '8',
        '--rslora',
        '--steps',
        '3',
        '--lr',
        '1e-2',
      )
    ).code,
  ).toBe(0);
  return { model, adapter };
}

/** llama.cpp's HF converter: w.reshape(heads, 2, rows / heads / 2, cols).swapaxes(1, 2).reshape(rows, cols). */
function converterPermute(w: Float64Array, rows: number, cols: number, heads: number): Float64Array {
  const half = rows / heads / 2;
  const out = new Float64Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < 2; j++)
      for (let k = 0; k < half; k++) {
        const from = (h * 2 + j) * half + k; // (h, j, k) in the reshaped source
        const to = (h * half + k) * 2 + j; // (h, k, j) after swapaxes(1, 2)
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
  return out;
}

function product(b: Float32Array, a: Float32Array, rank: number): Float64Array {
  const rows = b.length / rank;
  const cols = a.length / rank;
  const w = new Float64Array(rows * cols);
  for (let o = 0; o < rows; o++)
    for (let k = 0; k < rank; k++) for (let i = 0; i < cols; i++) w[o * cols + i] += b[o * rank + k] * a[k * cols + i];
  return w;
}

describe('export --format gguf', () => {
  it('writes what llama.cpp checks, permutes llama q/k, round-trips bit for bit, and writes a Modelfile', async () => {
    const { model, adapter } = await trained('llama');
    const out = path.join(work, 'llama-export', 'adapter.gguf');
    const result = await cli(
      'export',
      '--adapter',
      adapter,
      '--model',
      model,
      '--format',
      'gguf',
      '--out',
      out,
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);

    const parsed = await gguf(out, { allowLocalFile: true });
    expect(parsed.metadata['general.architecture']).toBe('llama');
    expect(parsed.metadata['general.type']).toBe('adapter');
    expect(parsed.metadata['adapter.type']).toBe('lora');
    // rsLoRA: llama.cpp scales by alpha / r
    expect(parsed.metadata['adapter.lora.alpha']).toBeCloseTo(8 * Math.sqrt(4), 5);
    const info = new Map(parsed.tensorInfos.map((t) => [t.name, t]));
    expect(info.size).toBe(2 * 7 * 2);
    const widths = {
      q_proj: [64, 64],
      k_proj: [64, 32],
      v_proj: [64, 32],
      o_proj: [64, 64],
      gate_proj: [64, 96],
      up_proj: [64, 96],
      down_proj: [96, 64],
    } as const;
    for (let layer = 0; layer < 2; layer++) {
      for (const [target, [fanIn, fanOut]] of Object.entries(widths)) {
        const base = `blk.${layer}.${NAMES[target as keyof typeof NAMES]}.weight`;
        // llama.cpp: a.ne[0] == W.ne[0] (in), b.ne[1] == W.ne[1] (out), a.ne[1] == b.ne[0] (rank); ggml type F32 = 0.
        expect(info.get(`${base}.lora_a`)!.shape.map(Number), base).toEqual([fanIn, 4]);
        expect(info.get(`${base}.lora_b`)!.shape.map(Number), base).toEqual([4, fanOut]);
        expect(info.get(`${base}.lora_a`)!.dtype).toBe(0);
      }
    }

    const folder = openModelFolder(model);
    const original = loadAdapter(adapter, folder.spec);
    if (original.kind !== 'lora') throw new Error('expected LoRA');
    const back: LoraWeights = readGgufLoraAdapter(out, folder.spec, { dropout: 0, useRslora: true });
    expect(back.settings).toMatchObject({ rank: 4, useRslora: true });
    expect(back.settings.alpha).toBeCloseTo(8, 5);
    for (let layer = 0; layer < 2; layer++) {
      for (const [target, pair] of original.lora.layers[layer]) {
        expect(
          Buffer.from(back.layers[layer].get(target)!.a.buffer).equals(Buffer.from(pair.a.buffer)),
          `${layer} ${target} A`,
        ).toBe(true);
        expect(
          Buffer.from(back.layers[layer].get(target)!.b.buffer).equals(Buffer.from(pair.b.buffer)),
          `${layer} ${target} B`,
        ).toBe(true);
      }
    }

    // The stored q delta is the HF delta with the converter's row permutation (k uses the kv head count).
    // qwen2: read without undoing
    const stored = readGgufLoraAdapter(out, { ...folder.spec, modelType: 'qwen2' }, { dropout: 0, useRslora: true });
    for (const [target, heads, rows] of [
      ['q_proj', 4, 64],
      ['k_proj', 2, 32],
    ] as const) {
      const hf = original.lora.layers[0].get(target)!;
      const expected = converterPermute(product(hf.b, hf.a, 4), rows, 64, heads);
      const actual = product(stored.layers[0].get(target)!.b, stored.layers[0].get(target)!.a, 4);
      expect(Array.from(actual)).toEqual(Array.from(expected));
      expect(Array.from(actual)).not.toEqual(Array.from(product(hf.b, hf.a, 4)));
    }

    const modelfile = fs.readFileSync(lastJson(result.stdout).modelfile, 'utf8');
    expect(modelfile).toContain(`FROM ${model}`);
    expect(modelfile).toContain('ADAPTER ./adapter.gguf');
    expect(modelfile).toContain('<|im_start|>{{ .Role }}');
    expect(modelfile).toContain('PARAMETER stop "<|im_end|>"');
  });

  it('leaves qwen2 rows as they are (its converter does not permute)', async () => {
    const { model, adapter } = await trained('qwen2');
    const out = path.join(work, 'qwen2.gguf');
    // No --model: the adapter's recorded base folder is used.
    expect((await cli('export', '--adapter', adapter, '--format', 'gguf', '--out', out)).code).toBe(0);
    expect((await gguf(out, { allowLocalFile: true })).metadata['general.architecture']).toBe('qwen2');
    const folder = openModelFolder(model);
    const original = loadAdapter(adapter, folder.spec);
    if (original.kind !== 'lora') throw new Error('expected LoRA');
    const back = readGgufLoraAdapter(out, folder.spec, { dropout: 0, useRslora: true });
    expect(back.layers[1].get('q_proj')!.b).toEqual(original.lora.layers[1].get('q_proj')!.b);
  });

  it('refuses prompt-tuning adapters with where they can be used instead', async () => {
    const { model } = await trained('qwen3');
    const soft = path.join(work, 'soft');
    expect(
      (
        await cli(
          'train',
          '--model',
          model,
          '--data',
          path.join(work, 'data.jsonl'),
          '--out',
          soft,
          '--method',
          'prompt-tuning',
          '--num-virtual-tokens',
          '2',
          '--steps',
          '1',
        )
      ).code,
    ).toBe(0);
    const result = await cli(
      'export',
      '--adapter',
      soft,
      '--model',
      model,
      '--format',
      'gguf',
      '--out',
      path.join(work, 'soft.gguf'),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /prompt-tuning adapters cannot be exported to GGUF: llama\.cpp, Ollama and most serving tools .* PeftModel\.from_pretrained/,
    );
  });
});

describe('ollamaCreateCommand', () => {
  it('names the model after the adapter folder, as Ollama allows, and quotes a path the shell would split', () => {
    expect(ollamaCreateCommand('/a/My Adapter!', '/out/Modelfile')).toBe('ollama create my-adapter -f /out/Modelfile');
    expect(ollamaCreateCommand('/a/run-2026', "/my out/it's/Modelfile")).toBe(
      `ollama create run-2026 -f '/my out/it'\\''s/Modelfile'`,
    );
    expect(ollamaCreateCommand('/a/___', '/m')).toBe('ollama create adapter -f /m');
  });
});
