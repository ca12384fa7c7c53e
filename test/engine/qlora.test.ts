// QLoRA: a 4-bit (bitsandbytes NF4 / FP4, or int4) base dequantized inside each layer's session.
// - Against PyTorch: the numerics cases quantized to NF4 with double quantization give the loss and LoRA gradients of
//   test/reference/make_qlora_fixtures.py (PyTorch on the dequantized weights, float64) within 1e-4, CPU and WebGPU.
// - Against our own full-precision engine on the host-dequantized weights: llama / qwen2 / qwen3, NF4 and FP4, with
//   and without double quantization, and int4, checkpointing on and off; generation agrees the same way (int4 through
//   MatMulNBits, which multiplies by the codes as stored).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGenerationGraph } from '../../main/engine/compile/graphs/generation.js';
import { InferenceModel } from '../../main/engine/runtime/inferenceModel.js';
import { countLabelTokens } from '../../main/engine/runtime/trainableModel.js';
import { openModelFolder, type ModelFolder } from '../../main/model/modelFolder.js';
import { dequantizeOnHost, type Format4bit } from '../../main/model/quant/bnb4bit.js';
import { quantizedFolder } from '../../main/model/quant/quantizeOnLoad.js';
import { readTensorF32, writeSafetensors, type TensorToWrite } from '../../main/model/safetensors.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { loadLoraAdapter, peftKey } from '../../main/adapter/loraAdapter.js';
import { readSafetensorsHeader } from '../../main/model/safetensors.js';
import { maxRelativeError, openTrainable, randomBatch, randomLora, tempDir, zeroGrads } from '../support/engine.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'numerics');
const PYTORCH_CASES = fs
  .readdirSync(FIXTURES)
  .filter((name) => fs.existsSync(path.join(FIXTURES, name, 'qlora_nf4.safetensors')));

const LORA = {
  rank: 4,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'],
  useRslora: false,
};
let work: string;

beforeAll(() => {
  work = tempDir('qlora');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** The 4-bit folder's weights decoded on the host into a full-precision folder: what the 4-bit engine must compute. */
function dequantizedCopy(quantized: ModelFolder, dir: string): ModelFolder {
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of quantized.tensors.keys()) {
    const q = quantized.quantized.get(name);
    if (q) tensors[name] = { dtype: 'F32', shape: q.shape, data: dequantizeOnHost(q) };
    else if (!quantized.quantized.has(name.replace(/\.weight\..*$/, '.weight')))
      tensors[name] = {
        dtype: 'F32',
        shape: quantized.tensors.get(name)!.shape,
        data: readTensorF32(quantized.tensors.get(name)!),
      };
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  const config = JSON.parse(fs.readFileSync(path.join(quantized.dir, 'config.json'), 'utf8'));
  delete config.quantization_config;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return openModelFolder(dir);
}

async function lossAndGrads(
  folder: ModelFolder,
  checkpointing: boolean,
  device: 'cpu' | 'webgpu' = 'cpu',
  lmHeadChunkElements?: number,
) {
  const lora = randomLora(folder, LORA, 11);
  const grads = zeroGrads(lora);
  const batch = randomBatch(folder.spec.vocabSize, 2, 12, 5);
  const model = await openTrainable(folder, LORA, { checkpointing, device, lmHeadChunkElements });
  try {
    const loss = await model.forwardBackward(batch, lora, grads, countLabelTokens(batch), 0);
    return { loss, grads };
  } finally {
    await model.close();
  }
}

const CASES: { arch: 'llama' | 'qwen2' | 'qwen3'; quantType: Format4bit; doubleQuant: boolean; tie: boolean }[] = [
  { arch: 'llama', quantType: 'nf4', doubleQuant: false, tie: false },
  { arch: 'qwen2', quantType: 'nf4', doubleQuant: true, tie: false },
  { arch: 'qwen3', quantType: 'fp4', doubleQuant: true, tie: false },
  { arch: 'qwen2', quantType: 'int4', doubleQuant: false, tie: false },
  // int4 gives a tied model a 4-bit lm_head of its own: the reference is the untied model it then is.
  { arch: 'llama', quantType: 'int4', doubleQuant: false, tie: true },
];

describe.each(CASES)('$arch, $quantType, double quantization $doubleQuant, tied $tie', (testCase) => {
  const { arch, quantType, doubleQuant, tie } = testCase;
  let fourBit: ModelFolder;
  let reference: ModelFolder;
  let original: ModelFolder;

  beforeAll(async () => {
    const source = path.join(work, `${arch}-${quantType}-${doubleQuant}-${tie}`);
    // 600 blocks of 64 in the MLP weights: double quantization's last 256-block is partial. int4 needs rows whose
    // width is a multiple of 32.
    createTinyModel(source, {
      arch,
      layers: 2,
      hidden: 64,
      heads: 4,
      kvHeads: 2,
      intermediate: quantType === 'int4' ? 160 : 152,
      vocab: 300,
      tie,
      seed: 7,
    });
    original = openModelFolder(source);
    const dir = await quantizedFolder(original, { quantType, doubleQuant }, path.join(work, 'cache'));
    fourBit = openModelFolder(dir);
    reference = dequantizedCopy(fourBit, path.join(work, `${arch}-${quantType}-${doubleQuant}-${tie}-reference`));
  });

  it('holds every projection and the untied lm_head as 4-bit codes', () => {
    expect(fourBit.quantized.size).toBe(2 * 7 + 1);
    expect(fourBit.quantized.has('lm_head.weight')).toBe(true);
    for (const q of fourBit.quantized.values()) {
      expect(q.packed.dtype).toBe('U8');
      expect(q.packed.byteLength).toBe((q.shape[0] * q.shape[1]) / 2);
      expect(q.nested !== null).toBe(doubleQuant);
    }
  });

  for (const [checkpointing, device] of [
    [true, 'cpu'],
    [false, 'cpu'],
    [true, 'webgpu'],
    [false, 'webgpu'],
  ] as const) {
    it(`trains to the loss and LoRA gradients of the dequantized weights, checkpointing ${checkpointing ? 'on' : 'off'} (${device})`, async () => {
      // The lm_head [300, 64] in vocabulary chunks of 64 rows, or 256 where double quantization's blocks need it.
      const ours = await lossAndGrads(fourBit, checkpointing, device, 64 * 64);
      const expected = await lossAndGrads(reference, checkpointing);
      expect(Math.abs(ours.loss - expected.loss) / expected.loss).toBeLessThan(1e-5);
      for (let layer = 0; layer < ours.grads.layers.length; layer++) {
        for (const [target, pair] of ours.grads.layers[layer]) {
          const want = expected.grads.layers[layer].get(target)!;
          expect(maxRelativeError(pair.a, want.a).worst, `layer ${layer} ${target} A`).toBeLessThan(1e-4);
          expect(maxRelativeError(pair.b, want.b).worst, `layer ${layer} ${target} B`).toBeLessThan(1e-4);
        }
      }
      // ...and not those of the full-precision weights: 4-bit rounding moves the loss far more than that.
      const full = await lossAndGrads(original, checkpointing);
      expect(Math.abs(ours.loss - full.loss) / full.loss).toBeGreaterThan(1e-4);
    });
  }

  it('generates the logits of the dequantized weights', async () => {
    const prompt = [5, 17, 33, 2, 91];
    const ours = await InferenceModel.load(fourBit, 'cpu', null, { threads: 1 });
    const expected = await InferenceModel.load(reference, 'cpu', null, { threads: 1 });
    try {
      let a = await ours.step(prompt, ours.emptyCache(), 0);
      let b = await expected.step(prompt, expected.emptyCache(), 0);
      for (let i = 0; i < 3; i++) {
        expect(maxRelativeError(a.logits, b.logits).worst).toBeLessThan(1e-5);
        a = await ours.step([i + 3], a.cache, 0);
        b = await expected.step([i + 3], b.cache, 0);
      }
      a.cache.dispose();
      b.cache.dispose();
    } finally {
      await ours.close();
      await expected.close();
    }
  });

  if (quantType === 'int4') {
    it.each([true, false])(
      'multiplies by the int4 codes as stored when generating: MatMulNBits, no dequantization (fused layers: %s)',
      (fused) => {
        const model = buildGenerationGraph({
          spec: fourBit.spec,
          tensors: fourBit.tensors,
          externalLocation: (entry) => entry.file,
          lora: null,
          quantized: fourBit.quantized,
          fused,
        });
        const nodes = model.graph!.node!;
        expect(nodes.filter((node) => node.opType === 'MatMulNBits')).toHaveLength(2 * 7 + 1);
        expect(nodes.every((node) => node.opType !== 'MatMulNBits' || node.domain === 'com.microsoft')).toBe(true);
        expect(nodes.some((node) => node.input!.includes('quant_pairs'))).toBe(false);
      },
    );
  }
});

describe.each(PYTORCH_CASES)('%s in NF4 against PyTorch', (name) => {
  const caseDir = path.join(FIXTURES, name);
  let folder: ModelFolder;

  beforeAll(async () => {
    const dir = await quantizedFolder(
      openModelFolder(path.join(caseDir, 'model')),
      { quantType: 'nf4', doubleQuant: true },
      path.join(work, 'pytorch-cases'),
    );
    folder = openModelFolder(dir);
  });

  for (const [checkpointing, device] of [
    [true, 'cpu'],
    [false, 'cpu'],
    [true, 'webgpu'],
  ] as const) {
    it(`gives PyTorch's loss and LoRA gradients on the dequantized weights, checkpointing ${checkpointing ? 'on' : 'off'} (${device})`, async () => {
      const reference = new Map(
        [...readSafetensorsHeader(path.join(caseDir, 'qlora_nf4.safetensors'))].map(([k, e]) => [k, readTensorF32(e)]),
      );
      const { input_ids: ids, labels } = JSON.parse(fs.readFileSync(path.join(caseDir, 'batch.json'), 'utf8')) as {
        input_ids: number[][];
        labels: number[][];
      };
      const batch = {
        batchSize: ids.length,
        seqLen: ids[0].length,
        inputIds: Int32Array.from(ids.flat()),
        labels: Int32Array.from(labels.flat()),
      };
      const lora = loadLoraAdapter(path.join(caseDir, 'adapter'), folder.spec);
      const grads = zeroGrads(lora);
      const model = await openTrainable(folder, lora.settings, { checkpointing, device });
      try {
        const loss = await model.forwardBackward(batch, lora, grads, countLabelTokens(batch), 0);
        const expected = reference.get('loss')![0];
        expect(Math.abs(loss - expected) / expected, `loss ${loss} vs ${expected}`).toBeLessThan(1e-4);
        let compared = 0;
        grads.layers.forEach((pairs, layer) => {
          for (const [target, pair] of pairs) {
            for (const [m, values] of [
              ['A', pair.a],
              ['B', pair.b],
            ] as const) {
              const key = peftKey(layer, target, m);
              expect(maxRelativeError(values, reference.get(`grad.${key}`)!).worst, key).toBeLessThan(1e-4);
              compared++;
            }
          }
        });
        expect(compared).toBe(reference.size - 1);
      } finally {
        await model.close();
      }
    });
  }
});
