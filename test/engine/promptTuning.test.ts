// Prompt tuning: loss and d loss / d prompt against the PyTorch reference
// (test/reference/make_prompt_tuning_fixtures.py, float64 stored as fp32), on CPU and WebGPU, with and without
// gradient checkpointing. Tolerance 1e-4 relative (worst element error over the largest reference magnitude).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import type { LoraWeights } from '../../main/adapter/loraAdapter.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { readSafetensorsHeader, readTensorF32 } from '../../main/model/safetensors.js';
import {
  countLabelTokens,
  TrainableModel,
  withVirtualTokens,
  type MicroBatch,
} from '../../main/engine/runtime/trainableModel.js';
import { maxRelativeError } from '../support/engine.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'numerics');
const CASES = fs
  .readdirSync(FIXTURES)
  .filter((name) => fs.existsSync(path.join(FIXTURES, name, 'prompt_tuning', 'reference.safetensors')));

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

it('has prompt-tuning references', () => {
  expect(CASES.length).toBeGreaterThanOrEqual(3);
});

describe.each(CASES)('%s prompt tuning against PyTorch', (name) => {
  const caseDir = path.join(FIXTURES, name);
  for (const [device, checkpointing] of [
    ['cpu', true],
    ['cpu', false],
    ['webgpu', true],
  ] as const) {
    it(`gives the loss and prompt gradient (${device}, checkpointing ${checkpointing ? 'on' : 'off'})`, async () => {
      const folder = openModelFolder(path.join(caseDir, 'model'));
      const adapter = loadAdapter(path.join(caseDir, 'prompt_tuning', 'adapter'), folder.spec);
      if (adapter.kind !== 'prompt-tuning') throw new Error('expected a prompt-tuning adapter');
      const n = adapter.prompt.numVirtualTokens;
      const reference = new Map(
        [...readSafetensorsHeader(path.join(caseDir, 'prompt_tuning', 'reference.safetensors'))].map(([k, e]) => [
          k,
          readTensorF32(e),
        ]),
      );
      const noLora: LoraWeights = {
        settings: { rank: 0, alpha: 0, dropout: 0, targets: [], useRslora: false },
        targets: [],
        layers: Array.from({ length: folder.spec.numLayers }, () => new Map()),
      };
      const model = await TrainableModel.load(folder, {
        device,
        lora: { rank: 0, scale: 0, targets: [], dropout: false },
        dropoutProbability: 0,
        gradientCheckpointing: checkpointing,
        virtualTokens: n,
        headChunkRows: 7,
        tuning: { threads: engineThreads(null) },
      });
      try {
        const batch = readBatch(caseDir);
        const virtual = {
          embeddings: adapter.prompt.embeddings,
          grad: new Float32Array(adapter.prompt.embeddings.length),
        };
        const loss = await model.forwardBackward(
          batch,
          noLora,
          noLora,
          countLabelTokens(withVirtualTokens(batch, n)),
          0,
          virtual,
        );
        const expectedLoss = reference.get('loss')![0];
        expect(Math.abs(loss - expectedLoss) / expectedLoss, `loss ${loss} vs ${expectedLoss}`).toBeLessThan(1e-4);
        const { worst, index } = maxRelativeError(virtual.grad, reference.get('grad.prompt_embeddings')!);
        expect(worst, `prompt gradient worst at ${index}`).toBeLessThan(1e-4);
        const evaluated = await model.loss(batch, null, virtual);
        expect(Math.abs(evaluated.lossSum / evaluated.tokens - expectedLoss) / expectedLoss).toBeLessThan(1e-4);
      } finally {
        await model.close();
      }
    });
  }
});
