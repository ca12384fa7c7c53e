// Shared set-up for engine tests: tiny real model folders, batches and LoRA weights from a seeded generator.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LoraSettings } from '../../shared/training.js';
import { initLoraWeights, loraScale, type LoraWeights } from '../../main/adapter/loraAdapter.js';
import type { ModelFolder } from '../../main/model/modelFolder.js';
import { TrainableModel, type MicroBatch } from '../../main/engine/runtime/trainableModel.js';
import type { ExecutionDevice } from '../../shared/training.js';
import { Rng } from '../../main/util/random.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `peft-test-${prefix}-`));
}

/** LoRA weights with nonzero A and B, so every gradient is nonzero. */
export function randomLora(folder: ModelFolder, settings: LoraSettings, seed: number): LoraWeights {
  const rng = new Rng(seed);
  const lora = initLoraWeights(folder.spec, settings, () => rng.uniform());
  for (const pairs of lora.layers)
    for (const pair of pairs.values()) for (let i = 0; i < pair.b.length; i++) pair.b[i] = (rng.uniform() - 0.5) * 0.2;
  return lora;
}

export function zeroGrads(lora: LoraWeights): LoraWeights {
  return {
    ...lora,
    layers: lora.layers.map(
      (pairs) =>
        new Map([...pairs].map(([t, p]) => [t, { a: new Float32Array(p.a.length), b: new Float32Array(p.b.length) }])),
    ),
  };
}

/** B rows of T random tokens; the last row right-padded with ignored labels, one ignored label inside. */
export function randomBatch(vocab: number, batchSize: number, seqLen: number, seed: number): MicroBatch {
  const rng = new Rng(seed);
  const inputIds = new Int32Array(batchSize * seqLen).map(() => rng.int(vocab));
  const labels = inputIds.slice();
  labels[2] = -100;
  if (batchSize > 1) for (let t = seqLen - 3; t < seqLen; t++) labels[(batchSize - 1) * seqLen + t] = -100;
  return { batchSize, seqLen, inputIds, labels };
}

export function openTrainable(
  folder: ModelFolder,
  settings: LoraSettings,
  options: {
    device?: ExecutionDevice;
    checkpointing?: boolean;
    headChunkRows?: number;
    lmHeadChunkElements?: number;
    graphPlacement?: 'auto' | 'temp';
    threads?: number;
  } = {},
): Promise<TrainableModel> {
  return TrainableModel.load(folder, {
    device: options.device ?? 'cpu',
    lora: {
      rank: settings.rank,
      scale: loraScale(settings),
      targets: settings.targets as LoraWeights['targets'],
      dropout: settings.dropout > 0,
    },
    dropoutProbability: settings.dropout,
    gradientCheckpointing: options.checkpointing ?? true,
    headChunkRows: options.headChunkRows,
    lmHeadChunkElements: options.lmHeadChunkElements,
    graphPlacement: options.graphPlacement,
    tuning: { threads: options.threads ?? engineThreads(null) },
  });
}

export function maxRelativeError(actual: Float32Array, expected: Float32Array): { worst: number; index: number } {
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  let index = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / (scale || 1);
    if (err > worst || Number.isNaN(err)) [worst, index] = [Number.isNaN(err) ? Infinity : err, i];
  }
  return { worst, index };
}
