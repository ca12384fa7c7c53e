// Loss, LoRA gradients and short training runs against the independent PyTorch reference
// (test/reference/make_fixtures.py, computed in float64, stored as fp32). Tolerance: 1e-4 relative, where relative
// means the worst element error divided by the largest magnitude in the reference tensor.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLoraAdapter, peftKey, type LoraWeights } from '../../main/adapter/loraAdapter.js';
import { openModelFolder, type ModelFolder } from '../../main/model/modelFolder.js';
import { readSafetensorsHeader, readTensorF32 } from '../../main/model/safetensors.js';
import { countLabelTokens, type MicroBatch, type TrainableModel } from '../../main/engine/runtime/trainableModel.js';
import { AdapterStepper } from '../../main/engine/jobs/trainer.js';
import type { OptimizerSettings } from '../../shared/training.js';
import { maxRelativeError, openTrainable, zeroGrads } from '../support/engine.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'numerics');
const CASES = fs
  .readdirSync(FIXTURES)
  .filter((name) => fs.existsSync(path.join(FIXTURES, name, 'reference.safetensors')));
const TOLERANCE = 1e-4;

function readReference(file: string): Map<string, Float32Array> {
  return new Map([...readSafetensorsHeader(file)].map(([name, entry]) => [name, readTensorF32(entry)]));
}

function readBatch(caseDir: string): MicroBatch {
  const { input_ids: ids, labels } = JSON.parse(fs.readFileSync(path.join(caseDir, 'batch.json'), 'utf8')) as {
    input_ids: number[][];
    labels: number[][];
  };
  return {
    batchSize: ids.length,
    seqLen: ids[0].length,
    inputIds: Int32Array.from(ids.flat()),
    labels: Int32Array.from(labels.flat()),
  };
}

/** Visits every LoRA tensor with its PEFT key. */
function eachTensor(lora: LoraWeights, visit: (key: string, values: Float32Array) => void): void {
  lora.layers.forEach((pairs, layer) => {
    for (const [target, pair] of pairs) {
      visit(peftKey(layer, target, 'A'), pair.a);
      visit(peftKey(layer, target, 'B'), pair.b);
    }
  });
}

interface Trajectory {
  optimizer: {
    name: 'adamw' | 'sgd';
    lr: number;
    betas?: [number, number];
    eps?: number;
    weight_decay: number;
    momentum?: number;
  };
  max_grad_norm: number;
  scheduler: { name: 'constant' | 'linear' | 'cosine'; warmup_steps?: number };
  losses: number[];
  grad_norms: number[];
  lrs: number[];
}

describe.each(CASES)('%s against PyTorch', (name) => {
  const caseDir = path.join(FIXTURES, name);
  let folder: ModelFolder;
  let model: TrainableModel;
  let batch: MicroBatch;

  beforeAll(async () => {
    folder = openModelFolder(path.join(caseDir, 'model'));
    batch = readBatch(caseDir);
    const lora = loadLoraAdapter(path.join(caseDir, 'adapter'), folder.spec);
    // Chunks of rows and, for a 16-bit lm_head (llama_mha_tied_bf16), of the vocabulary: several of each.
    model = await openTrainable(folder, lora.settings, { headChunkRows: 7, lmHeadChunkElements: 1000 });
  });
  afterAll(() => model?.close());

  it('gives the same loss and LoRA gradients', async () => {
    const reference = readReference(path.join(caseDir, 'reference.safetensors'));
    const lora = loadLoraAdapter(path.join(caseDir, 'adapter'), folder.spec);
    const grads = zeroGrads(lora);
    const loss = await model.forwardBackward(batch, lora, grads, countLabelTokens(batch), 0);
    const expectedLoss = reference.get('loss')![0];
    expect(Math.abs(loss - expectedLoss) / expectedLoss, `loss ${loss} vs ${expectedLoss}`).toBeLessThan(TOLERANCE);
    let compared = 0;
    eachTensor(grads, (key, values) => {
      const expected = reference.get(`grad.${key}`);
      expect(expected, key).toBeDefined();
      const { worst, index } = maxRelativeError(values, expected!);
      expect(worst, `${key}: worst relative error at ${index}: ${values[index]} vs ${expected![index]}`).toBeLessThan(
        TOLERANCE,
      );
      compared++;
    });
    expect(compared).toBe(reference.size - [...reference.keys()].filter((k) => !k.startsWith('grad.')).length);
  });

  for (const variant of ['trajectory', 'trajectory_sgd', 'trajectory_linear', 'trajectory_cosine']) {
    it(`follows the ${variant.replace('_', ' ')} training run step by step`, async () => {
      const trajectory = JSON.parse(fs.readFileSync(path.join(caseDir, `${variant}.json`), 'utf8')) as Trajectory;
      const o = trajectory.optimizer;
      const settings: OptimizerSettings = {
        name: o.name,
        learningRate: o.lr,
        weightDecay: o.weight_decay,
        beta1: o.betas?.[0] ?? 0.9,
        beta2: o.betas?.[1] ?? 0.999,
        eps: o.eps ?? 1e-8,
        momentum: o.momentum ?? 0,
        scheduler: trajectory.scheduler.name,
        warmupSteps: trajectory.scheduler.warmup_steps ?? 0,
        maxGradNorm: trajectory.max_grad_norm,
      };
      const lora = loadLoraAdapter(path.join(caseDir, 'adapter'), folder.spec);
      const stepper = new AdapterStepper(model, lora, settings, trajectory.losses.length);
      for (let step = 0; step < trajectory.losses.length; step++) {
        const result = await stepper.step(step, [batch], 0);
        expect(
          Math.abs(result.loss - trajectory.losses[step]) / trajectory.losses[step],
          `step ${step} loss ${result.loss} vs ${trajectory.losses[step]}`,
        ).toBeLessThan(TOLERANCE);
        expect(
          Math.abs(result.gradNorm - trajectory.grad_norms[step]) / trajectory.grad_norms[step],
          `step ${step} grad norm`,
        ).toBeLessThan(TOLERANCE);
        expect(result.learningRate).toBeCloseTo(trajectory.lrs[step], 12);
      }
      const final = readReference(path.join(caseDir, `${variant}_final.safetensors`));
      eachTensor(lora, (key, values) => {
        const { worst, index } = maxRelativeError(values, final.get(key)!);
        expect(
          worst,
          `${key} after ${trajectory.losses.length} steps: ${values[index]} vs ${final.get(key)![index]}`,
        ).toBeLessThan(TOLERANCE);
      });
    });
  }
});
