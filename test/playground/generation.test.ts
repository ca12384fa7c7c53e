// Generation against the numerics fixtures: KV-cached decoding equals full recomputation, and greedy decoding gives
// the PyTorch reference's token ids (test/reference/make_generation_fixtures.py, fp32, full recompute per step).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import { buildGenerationGraph } from '../../main/engine/compile/graphs/generation.js';
import { InferenceModel } from '../../main/engine/runtime/inferenceModel.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { readSafetensorsHeader, readTensorF32 } from '../../main/model/safetensors.js';
import { generate } from '../../main/playground/generate.js';
import { argmax, GREEDY } from '../../main/playground/sampler.js';
import { createTinyModel, DEFAULT_TINY_MODEL } from '../../main/model/tinyModel.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { savePromptTuningAdapter } from '../../main/adapter/promptTuningAdapter.js';
import { maxRelativeError, randomLora, tempDir } from '../support/engine.js';
import { saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';

const TUNING = { threads: engineThreads(null) };

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'numerics');
const CASES = fs.readdirSync(FIXTURES).filter((name) => fs.existsSync(path.join(FIXTURES, name, 'generation.json')));

interface GenerationFixture {
  prompt_ids: number[];
  base_ids: number[];
  adapter_ids: number[];
}

async function openCase(name: string, device: 'cpu' | 'webgpu' = 'cpu') {
  const dir = path.join(FIXTURES, name);
  const folder = openModelFolder(path.join(dir, 'model'));
  return InferenceModel.load(folder, device, loadAdapter(path.join(dir, 'adapter'), folder.spec), TUNING);
}

/** Greedy decoding with the KV cache; returns the new ids and the logits that chose the last one. */
async function greedy(model: InferenceModel, prompt: number[], count: number, adapterScale: number) {
  let { logits, cache } = await model.step(prompt, model.emptyCache(), adapterScale);
  const ids: number[] = [];
  for (;;) {
    ids.push(argmax(logits));
    if (ids.length === count) break;
    ({ logits, cache } = await model.step([ids[ids.length - 1]], cache, adapterScale));
  }
  cache.dispose();
  return { ids, lastLogits: logits };
}

it('has a PyTorch generation reference for every numerics case', () => {
  const all = fs.readdirSync(FIXTURES).filter((name) => fs.existsSync(path.join(FIXTURES, name, 'model')));
  expect(CASES).toEqual(all);
});

describe.each(CASES)('%s generation', (name) => {
  const fixture = () =>
    JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'generation.json'), 'utf8')) as GenerationFixture;

  it('greedy-decodes the PyTorch reference ids, as the base (scale 0) and with the adapter', async () => {
    const expected = fixture();
    const logits = new Map(
      [...readSafetensorsHeader(path.join(FIXTURES, name, 'generation_logits.safetensors'))].map(([k, e]) => [
        k,
        readTensorF32(e),
      ]),
    );
    const model = await openCase(name);
    try {
      for (const [scale, ids, key] of [
        [0, expected.base_ids, 'base_last_logits'],
        [1, expected.adapter_ids, 'adapter_last_logits'],
      ] as const) {
        const result = await greedy(model, expected.prompt_ids, ids.length, scale);
        expect(result.ids, `scale ${scale}`).toEqual(ids);
        const { worst } = maxRelativeError(result.lastLogits, logits.get(key)!);
        expect(worst, `${key} worst relative error`).toBeLessThan(1e-4);
      }
    } finally {
      await model.close();
    }
  });
});

describe('KV cache', () => {
  for (const device of ['cpu', 'webgpu'] as const) {
    it(`gives the logits of a full recomputation at every step (${device})`, async () => {
      const model = await openCase('qwen3_norms', device);
      try {
        // The CPU's fused layers write into a cache that grows 64 positions at a time: the steps cross a growth.
        expect(model.fused).toBe(device === 'cpu');
        const prompt = Array.from({ length: 58 }, (_, i) => (i * 37 + 5) % 90);
        const { ids } = await greedy(model, prompt, 12, 1);
        // Decoding again step by step, each cached step must match a cache-less prefill of the same prefix.
        let { logits, cache } = await model.step(prompt, model.emptyCache(), 1);
        for (let i = 0; i < ids.length; i++) {
          const full = await model.step([...prompt, ...ids.slice(0, i)], model.emptyCache(), 1);
          expect(maxRelativeError(logits, full.logits).worst, `step ${i}`).toBeLessThan(1e-5);
          full.cache.dispose();
          ({ logits, cache } = await model.step([ids[i]], cache, 1));
        }
        cache.dispose();
      } finally {
        await model.close();
      }
    });
  }

  it("writes each step in place on the CPU: the fused layers' cache is one buffer per layer", async () => {
    const model = await openCase('llama_gqa');
    try {
      const { numLayers, numKvHeads, headDim } = model.folder.spec;
      const first = await model.step([5, 17, 33], model.emptyCache(), 1);
      expect(first.cache.keys[0].dims).toEqual([1, numKvHeads, 64, headDim]);
      const keys = first.cache.keys[numLayers - 1];
      const fourth = (keys.data as Float32Array).subarray(3 * headDim, 4 * headDim);
      expect(fourth.every((x) => x === 0)).toBe(true);
      const second = await model.step([2], first.cache, 1);
      expect(second.cache.keys[numLayers - 1]).toBe(keys);
      expect(fourth.some((x) => x !== 0)).toBe(true);
      second.cache.dispose();
    } finally {
      await model.close();
    }
  });

  it('runs a layer on the CPU as a handful of fused kernels', () => {
    const folder = openModelFolder(path.join(FIXTURES, 'llama_gqa', 'model'));
    const L = folder.spec.numLayers;
    const model = buildGenerationGraph({
      spec: folder.spec,
      tensors: folder.tensors,
      externalLocation: (entry) => entry.file,
      lora: null,
      quantized: new Map(),
      fused: true,
    });
    const count = (opType: string) => model.graph!.node!.filter((node) => node.opType === opType).length;
    expect(count('GroupQueryAttention')).toBe(L);
    expect(count('RotaryEmbedding')).toBe(2 * L); // heads of 8: GroupQueryAttention rotates from 16 on
    expect(count('SkipSimplifiedLayerNormalization')).toBe(2 * L); // every norm but the first adds a residual
    expect(count('SimplifiedLayerNormalization')).toBe(1);
    expect(count('Concat')).toBe(1); // virtual tokens before the ids; the cache is never concatenated
    // The present key and value are GroupQueryAttention's own outputs, which a run can write in place.
    const producers = new Map(model.graph!.node!.flatMap((node) => node.output!.map((o) => [o, node.opType])));
    for (const output of model.graph!.output!.filter((o) => o.name!.startsWith('present_')))
      expect(producers.get(output.name!)).toBe('GroupQueryAttention');
  });

  it.each(['llama', 'qwen2'] as const)(
    'rotates in GroupQueryAttention and packs q, k, v into one product for heads of 16 (%s): the logits of unpacked layers',
    async (arch) => {
      // An adapter on q and v keeps the three projections apart: at scale 0 it answers as the packed base.
      const modelDir = path.join(tempDir(`packed-${arch}`), 'model');
      createTinyModel(modelDir, { ...DEFAULT_TINY_MODEL, arch, hidden: 64, heads: 4, kvHeads: 2, seed: 3 });
      const opened = openModelFolder(modelDir);
      expect(opened.spec.headDim).toBe(16);
      const graph = (lora: boolean) =>
        buildGenerationGraph({
          spec: opened.spec,
          tensors: opened.tensors,
          externalLocation: (entry) => entry.file,
          lora: lora ? { rank: 4, targets: ['q_proj', 'v_proj'] } : null,
          quantized: new Map(),
          fused: true,
        }).graph!.node!;
      const L = opened.spec.numLayers;
      const packed = graph(false);
      expect(packed.filter((n) => n.opType === 'RotaryEmbedding')).toHaveLength(0);
      // Stacked weights, and qwen2's biases: Concats of initializers that ONNX Runtime folds at load.
      expect(packed.filter((n) => n.opType === 'Concat')).toHaveLength(1 + (arch === 'qwen2' ? 2 : 1) * L);
      const attention = packed.filter((n) => n.opType === 'GroupQueryAttention');
      expect(attention).toHaveLength(L);
      expect(attention.every((n) => n.input![1] === '' && n.input![2] === '')).toBe(true);
      expect(
        graph(true)
          .filter((n) => n.opType === 'GroupQueryAttention')
          .every((n) => n.input![1] !== ''),
      ).toBe(true);

      const adapterDir = tempDir(`packed-${arch}-adapter`);
      const settings = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false };
      saveLoraAdapter(adapterDir, randomLora(opened, settings, 5), opened.dir);
      const base = await InferenceModel.load(opened, 'cpu', null, TUNING);
      const adapted = await InferenceModel.load(opened, 'cpu', loadAdapter(adapterDir, opened.spec), TUNING);
      try {
        const prompt = [3, 14, 15, 92, 65, 35, 89];
        let a = await base.step(prompt, base.emptyCache(), 0);
        let b = await adapted.step(prompt, adapted.emptyCache(), 0);
        for (let i = 0; i < 6; i++) {
          expect(maxRelativeError(b.logits, a.logits).worst, `step ${i}`).toBeLessThan(1e-5);
          const next = argmax(a.logits);
          a = await base.step([next], a.cache, 0);
          b = await adapted.step([next], b.cache, 0);
        }
        const withAdapter = await adapted.step(prompt, adapted.emptyCache(), 1);
        const baseAgain = await base.step(prompt, base.emptyCache(), 0);
        expect(maxRelativeError(withAdapter.logits, baseAgain.logits).worst).toBeGreaterThan(1e-3);
        for (const r of [a, b, withAdapter, baseAgain]) r.cache.dispose();
      } finally {
        await base.close();
        await adapted.close();
      }
    },
  );

  it('answers as the base model with adapter scale 0', async () => {
    const dir = path.join(FIXTURES, 'llama_gqa');
    const folder = openModelFolder(path.join(dir, 'model'));
    const base = await InferenceModel.load(folder, 'cpu', null, TUNING);
    const adapted = await openCase('llama_gqa');
    try {
      const prompt = [3, 14, 15, 92, 65];
      const a = await base.step(prompt, base.emptyCache(), 0);
      const b = await adapted.step(prompt, adapted.emptyCache(), 0);
      const c = await adapted.step(prompt, adapted.emptyCache(), 1);
      expect(maxRelativeError(b.logits, a.logits).worst).toBeLessThan(1e-6);
      expect(maxRelativeError(c.logits, a.logits).worst).toBeGreaterThan(1e-3);
      for (const r of [a, b, c]) r.cache.dispose();
    } finally {
      await base.close();
      await adapted.close();
    }
  });

  it('refuses a sequence longer than the context', async () => {
    const model = await openCase('llama_gqa');
    try {
      const tooLong = Array.from({ length: model.folder.spec.maxPositionEmbeddings + 1 }, (_, i) => i % 100);
      await expect(model.step(tooLong, model.emptyCache(), 1)).rejects.toThrow(/exceed the model's context of 128/);
    } finally {
      await model.close();
    }
  });
});

describe('prompt-tuning adapters', () => {
  it('prepend their virtual tokens: virtual embeddings equal to token embeddings act as those tokens', async () => {
    const dir = path.join(FIXTURES, 'llama_gqa');
    const folder = openModelFolder(path.join(dir, 'model'));
    const embeddings = readTensorF32(folder.tensors.get('model.embed_tokens.weight')!);
    const virtualIds = [40, 41, 7];
    const C = folder.spec.hiddenSize;
    const adapterDir = path.join(tempDir('prompt-tuning'), 'adapter');
    const prompt = Float32Array.from(virtualIds.flatMap((id) => Array.from(embeddings.subarray(id * C, (id + 1) * C))));
    savePromptTuningAdapter(
      adapterDir,
      { numVirtualTokens: virtualIds.length, embeddings: prompt },
      folder.spec,
      folder.dir,
    );

    const tuned = await InferenceModel.load(folder, 'cpu', loadAdapter(adapterDir, folder.spec), TUNING);
    const base = await InferenceModel.load(folder, 'cpu', null, TUNING);
    try {
      const ids = [3, 14, 15, 92];
      const withVirtual = await greedy(tuned, ids, 10, 1);
      const spelledOut = await greedy(base, [...virtualIds, ...ids], 10, 0);
      expect(withVirtual.ids).toEqual(spelledOut.ids);
      expect(maxRelativeError(withVirtual.lastLogits, spelledOut.lastLogits).worst).toBeLessThan(1e-5);
      const asBase = await greedy(tuned, ids, 10, 0);
      expect(asBase.ids).toEqual((await greedy(base, ids, 10, 0)).ids);
    } finally {
      await tuned.close();
      await base.close();
    }
  });
});

describe('generate', () => {
  it('streams tokens as they come and stops when cancelled', async () => {
    const dir = path.join(tempDir('cancel'), 'model');
    createTinyModel(dir, { vocab: 512 });
    const folder = openModelFolder(dir);
    const model = await InferenceModel.load(folder, 'cpu', null, TUNING);
    try {
      const controller = new AbortController();
      const stream = generate(
        model,
        loadTokenizer(dir),
        [5, 6, 7],
        { ...GREEDY, maxNewTokens: 50, seed: 0, stop: [], ignoreEos: true, adapterScale: 0 },
        controller.signal,
      );
      const seen: number[] = [];
      let result;
      for (;;) {
        const next = await stream.next();
        if (next.done) {
          result = next.value;
          break;
        }
        seen.push(next.value.id);
        if (seen.length === 3) controller.abort();
      }
      expect(result.finishReason).toBe('cancelled');
      expect(result.ids).toEqual(seen);
      expect(seen).toHaveLength(3);
    } finally {
      await model.close();
    }
  });
});
