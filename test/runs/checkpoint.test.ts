// A checkpoint carries the best validated step (its loss, and its adapter tensors when the job keeps the best), so a
// resumed run keeps the same best and stops early at the same step.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCheckpoint, writeCheckpoint, type TrainingState } from '../../main/engine/jobs/checkpoint.js';
import { tempDir } from '../support/engine.js';

const state = (step: number, best?: TrainingState['best']): TrainingState => ({
  step,
  microBatches: step,
  rngSeed: 0,
  optimizerStep: step,
  tokens: 100 * step,
  elapsedSeconds: step,
  loss: 1.5,
  evalLoss: 1.75,
  losses: Array.from({ length: step }, (_, i) => ({ step: i + 1, loss: 2 - i / 100 })),
  params: [Float32Array.from([1, 2, 3]), Float32Array.from([4])],
  optimizerBuffers: [Float32Array.from([0.5, 0.25, 0.125]), Float32Array.from([1])],
  ...(best && { best }),
  jobFingerprint: 'f'.repeat(64),
});

describe('checkpoints and the best step', () => {
  it('keep the best step with its tensors, with its loss alone, or no best at all', () => {
    const dir = tempDir('checkpoint-best');
    const withTensors = { step: 20, loss: 1.25, params: [Float32Array.from([9, 8, 7]), Float32Array.from([6])] };
    const [kept] = writeCheckpoint(path.join(dir, 'a'), state(30, withTensors), 1);
    expect(readCheckpoint(kept.folder)).toEqual(state(30, withTensors));
    const [lossOnly] = writeCheckpoint(path.join(dir, 'b'), state(30, { step: 20, loss: 1.25 }), 1);
    expect(readCheckpoint(lossOnly.folder).best).toEqual({ step: 20, loss: 1.25 });
    const [none] = writeCheckpoint(path.join(dir, 'c'), state(5), 1);
    expect(readCheckpoint(none.folder)).not.toHaveProperty('best');
  });
});
