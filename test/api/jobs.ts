// A short training job on the built-in demo model and data, on the CPU: the tests' standard run.
import path from 'node:path';
import type { TrainJob } from '../../shared/training.js';
import { ROOT } from '../support/cli.js';

export const DEMO_MODEL = path.join(ROOT, 'resources/demo/model');
export const DEMO_DATA = path.join(ROOT, 'resources/demo/data.jsonl');

export function demoJob(outDir: string, steps = 4): TrainJob {
  return {
    method: 'lora',
    modelDir: DEMO_MODEL,
    dataFile: DEMO_DATA,
    data: {
      format: null,
      columns: {},
      trainOn: 'completion',
      pack: false,
      skipBadRows: false,
      dropDuplicates: false,
      chatTemplate: null,
    },
    outDir,
    lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false },
    promptTuning: { numVirtualTokens: 8, init: 'random', initText: null },
    optimizer: {
      name: 'adamw',
      learningRate: 1e-3,
      weightDecay: 0,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      momentum: 0,
      scheduler: 'constant',
      warmupSteps: 0,
      maxGradNorm: 1,
    },
    steps,
    epochs: 1,
    batchSize: 2,
    gradAccum: 1,
    maxSeqLen: 64,
    seed: 0,
    shuffle: true,
    gradientCheckpointing: true,
    quantize: 'none',
    device: 'cpu',
    threads: null,
    initAdapterDir: null,
    evalDataFile: null,
    evalSplit: 0.1,
    evalEvery: 2,
    checkpointEvery: 2,
    keepCheckpoints: 2,
    keepBest: false,
    earlyStoppingPatience: 0,
  };
}
