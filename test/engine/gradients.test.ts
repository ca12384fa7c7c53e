// The engine's own consistency: gradients against central finite differences, checkpointing on = off, dropout masks
// identical in the forward and recomputing backward, gradient accumulation = one big batch, WebGPU = CPU.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_TARGETS } from '../../main/model/architecture.js';
import { openModelFolder, type ModelFolder } from '../../main/model/modelFolder.js';
import { createTinyModel, DEFAULT_TINY_MODEL } from '../../main/model/tinyModel.js';
import { countLabelTokens, type TrainableModel } from '../../main/engine/runtime/trainableModel.js';
import type { LoraSettings } from '../../shared/training.js';
import { maxRelativeError, openTrainable, randomBatch, randomLora, tempDir, zeroGrads } from '../support/engine.js';

const settings: LoraSettings = { rank: 4, alpha: 8, dropout: 0, targets: [...ALL_TARGETS], useRslora: false };
let folder: ModelFolder;

beforeAll(() => {
  const dir = path.join(tempDir('grad'), 'model');
  createTinyModel(dir, {
    ...DEFAULT_TINY_MODEL,
    arch: 'qwen3',
    layers: 2,
    hidden: 32,
    heads: 4,
    kvHeads: 2,
    intermediate: 48,
    vocab: 300,
    seed: 3,
  });
  folder = openModelFolder(dir);
});

async function gradientsOf(
  model: TrainableModel,
  lora = randomLora(folder, settings, 1),
  batch = randomBatch(300, 2, 9, 2),
) {
  const grads = zeroGrads(lora);
  const loss = await model.forwardBackward(batch, lora, grads, countLabelTokens(batch), 7);
  return { loss, grads, lora, batch };
}

describe('LoRA gradients', () => {
  let model: TrainableModel;
  beforeAll(async () => {
    model = await openTrainable(folder, settings, { headChunkRows: 5 });
  });
  afterAll(() => model.close());

  it('match central finite differences of the loss', async () => {
    const { grads, lora, batch } = await gradientsOf(model);
    const lossOf = async () => {
      const { lossSum, tokens } = await model.loss(batch, lora);
      return lossSum / tokens;
    };
    const h = 1e-2;
    let checked = 0;
    for (const [layer, target, matrix, index] of [
      [0, 'q_proj', 'a', 3],
      [1, 'k_proj', 'b', 5],
      [0, 'v_proj', 'b', 1],
      [1, 'o_proj', 'a', 7],
      [0, 'gate_proj', 'a', 2],
      [1, 'up_proj', 'b', 11],
      [0, 'down_proj', 'a', 13],
      [1, 'down_proj', 'b', 4],
    ] as const) {
      const values = lora.layers[layer].get(target)![matrix];
      const original = values[index];
      values[index] = original + h;
      const plus = await lossOf();
      values[index] = original - h;
      const minus = await lossOf();
      values[index] = original;
      const numeric = (plus - minus) / (2 * h);
      const analytic = grads.layers[layer].get(target)![matrix][index];
      expect(
        Math.abs(numeric - analytic),
        `${layer} ${target}.${matrix}[${index}]: numeric ${numeric} analytic ${analytic}`,
      ).toBeLessThan(0.02 * Math.abs(analytic) + 2e-5);
      checked++;
    }
    expect(checked).toBe(8);
  });

  it('are the same with gradient checkpointing off, and so is the loss', async () => {
    const on = await gradientsOf(model);
    const off = await openTrainable(folder, settings, { checkpointing: false });
    try {
      const result = await gradientsOf(off);
      expect(Math.abs(result.loss - on.loss)).toBeLessThan(1e-6 * Math.abs(on.loss));
      for (let layer = 0; layer < 2; layer++) {
        for (const target of ALL_TARGETS) {
          for (const m of ['a', 'b'] as const) {
            const { worst } = maxRelativeError(
              result.grads.layers[layer].get(target)![m],
              on.grads.layers[layer].get(target)![m],
            );
            expect(worst, `${layer} ${target}.${m}`).toBeLessThan(1e-5);
          }
        }
      }
    } finally {
      await off.close();
    }
  });

  it('accumulate over micro-batches exactly as one batch holding them all', async () => {
    const whole = randomBatch(300, 2, 9, 5);
    const rows = [0, 1].map((b) => ({
      batchSize: 1,
      seqLen: 9,
      inputIds: whole.inputIds.slice(b * 9, b * 9 + 9),
      labels: whole.labels.slice(b * 9, b * 9 + 9),
    }));
    const one = await gradientsOf(model, undefined, whole);
    const lora = randomLora(folder, settings, 1);
    const grads = zeroGrads(lora);
    const tokens = rows.reduce((n, r) => n + countLabelTokens(r), 0);
    let loss = 0;
    for (const row of rows) loss += await model.forwardBackward(row, lora, grads, tokens, 7);
    expect(Math.abs(loss - one.loss)).toBeLessThan(1e-5 * one.loss);
    const { worst } = maxRelativeError(grads.layers[1].get('q_proj')!.a, one.grads.layers[1].get('q_proj')!.a);
    expect(worst).toBeLessThan(1e-5);
  });
});

describe('packed sequences', () => {
  // Two samples packed in one row (positions restart, attention blocked between them, no loss across the seam)
  // train exactly as the same two samples in separate padded rows.
  for (const device of ['cpu', 'webgpu'] as const) {
    it(`give the loss and gradients of the samples unpacked (${device})`, async () => {
      const first = [11, 42, 7, 99, 250];
      const second = [3, 18, 77, 5];
      const T = first.length + second.length;
      const packed = {
        batchSize: 1,
        seqLen: T,
        inputIds: Int32Array.from([...first, ...second]),
        labels: Int32Array.from([...first, -100, ...second.slice(1)]),
        positionIds: Int32Array.from([...first.keys(), ...second.keys()]),
        segmentIds: Int32Array.from([...first.map(() => 0), ...second.map(() => 1)]),
      };
      const padded = {
        batchSize: 2,
        seqLen: first.length,
        inputIds: Int32Array.from([...first, ...second, 0]),
        labels: Int32Array.from([...first, ...second, -100]),
      };
      const model = await openTrainable(folder, settings, { device });
      try {
        const a = await gradientsOf(model, undefined, packed);
        const b = await gradientsOf(model, undefined, padded);
        expect(countLabelTokens(packed)).toBe(countLabelTokens(padded));
        expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * b.loss);
        for (const target of ALL_TARGETS) {
          const { worst } = maxRelativeError(a.grads.layers[0].get(target)!.a, b.grads.layers[0].get(target)!.a);
          expect(worst, target).toBeLessThan(1e-4);
        }
      } finally {
        await model.close();
      }
    });
  }
});

describe('LoRA dropout', () => {
  it('uses the same masks in the forward and the recomputing backward (checkpointing on = off)', async () => {
    const withDropout = { ...settings, dropout: 0.3 };
    const results = [];
    for (const checkpointing of [true, false]) {
      const model = await openTrainable(folder, withDropout, { checkpointing });
      try {
        results.push(await gradientsOf(model, randomLora(folder, withDropout, 1)));
      } finally {
        await model.close();
      }
    }
    const noDropout = await openTrainable(folder, settings);
    const plain = await gradientsOf(noDropout).finally(() => noDropout.close());
    const a = results[0].grads.layers[0].get('q_proj')!.a;
    expect(maxRelativeError(results[1].grads.layers[0].get('q_proj')!.a, a).worst).toBeLessThan(1e-5);
    // Dropout did change something.
    expect(maxRelativeError(plain.grads.layers[0].get('q_proj')!.a, a).worst).toBeGreaterThan(1e-2);
  });
});

describe('WebGPU execution provider (Mesa lavapipe here, a real GPU for users)', () => {
  // Hidden states stay in WebGPU buffers between sessions; LoRA gradients, the loss and saved activations come back.
  for (const checkpointing of [true, false]) {
    it(`gives the CPU loss and gradients within fp32 tolerance, checkpointing ${checkpointing ? 'on' : 'off'}`, async () => {
      const cpu = await openTrainable(folder, settings);
      const expected = await gradientsOf(cpu).finally(() => cpu.close());
      const gpu = await openTrainable(folder, settings, { device: 'webgpu', checkpointing });
      try {
        const actual = await gradientsOf(gpu);
        expect(Math.abs(actual.loss - expected.loss)).toBeLessThan(1e-5 * expected.loss);
        for (let layer = 0; layer < 2; layer++) {
          for (const target of ALL_TARGETS) {
            for (const m of ['a', 'b'] as const) {
              const { worst } = maxRelativeError(
                actual.grads.layers[layer].get(target)![m],
                expected.grads.layers[layer].get(target)![m],
              );
              expect(worst, `${layer} ${target}.${m}`).toBeLessThan(1e-4);
            }
          }
        }
        const evaluated = await gpu.loss(expected.batch, expected.lora);
        expect(Math.abs(evaluated.lossSum / evaluated.tokens - expected.loss)).toBeLessThan(1e-5 * expected.loss);
      } finally {
        await gpu.close();
      }
    });
  }
});
