// The renderer's rules for run names, adapters made from checkpoints, and settings errors said beside their fields.
import { describe, expect, it } from 'vitest';
import type { DatasetInspection, ModelInspection } from '../../shared/api.js';
import type { AdapterRecord, RunRecord } from '../../shared/runs.js';
import { defaultTrainJob, trainCommand } from '../../shared/trainJob.js';
import type { TrainJob } from '../../shared/training.js';
import { adapterLabel, checkpointValidation, finalAdapter } from '../../renderer/src/lib/library.js';
import {
  initialForm,
  settingsFieldProblems,
  settingsProblems,
  stepProblems,
  suggestedRunName,
  type WizardFacts,
} from '../../renderer/src/lib/wizard.js';

const READY: WizardFacts = {
  modelDir: '/models/SmolLM2-135M',
  model: { supported: true } as ModelInspection,
  dataFile: '/data/support.csv',
  dataset: { format: 'prompt-completion', stats: {}, badRows: [] } as unknown as DatasetInspection,
  fit: null,
};

describe('settings errors beside their fields', () => {
  it('key each problem by the job field it is about, in words, as the problem list names it by label', () => {
    const form = { ...initialForm(), rank: 0, learningRate: 2, batchSize: 1.5, targets: [] };
    expect(settingsFieldProblems(form)).toEqual({
      'lora.rank': 'must be at least 1',
      'lora.targets': 'choose at least one module',
      'optimizer.learningRate': 'must be at most 1',
      batchSize: 'must be a whole number',
    });
    expect(settingsProblems(form)).toEqual([
      'LoRA rank: must be at least 1',
      'Target modules: choose at least one module',
      'Learning rate: must be at most 1',
      'Batch size: must be a whole number',
    ]);
  });

  it('put a rule across fields beside the field it stops, and a cleared number beside its own', () => {
    // The rules across fields are checked once every field is valid on its own.
    expect(settingsFieldProblems({ ...initialForm(), evalSplit: 0, keepBest: true })).toEqual({
      keepBest: expect.stringMatching(/^needs validation during the run/),
    });
    expect(settingsFieldProblems({ ...initialForm(), steps: null as unknown as number })).toEqual({
      steps: 'must be a number',
    });
    expect(settingsFieldProblems(initialForm())).toEqual({});
  });
});

describe('run names in the wizard', () => {
  it('suggests the name the run gets when none is given, and holds the start for a name that cannot be one', () => {
    const at = new Date(2026, 11, 1, 9, 5);
    expect(suggestedRunName(READY, at)).toBe('SmolLM2-135M on support.csv, 2026-12-01 09:05');
    expect(suggestedRunName({ ...READY, dataFile: null }, at)).toBeNull();
    expect(stepProblems('review', initialForm(), READY)).toEqual([]);
    expect(stepProblems('review', { ...initialForm(), runName: 'support bot' }, READY)).toEqual([]);
    expect(stepProblems('review', { ...initialForm(), runName: 'x'.repeat(121) }, READY)).toEqual([
      'Run name: a run name must be at most 120 characters',
    ]);
  });
});

describe('adapters in the lists', () => {
  const runs = [{ id: 2, name: 'support bot' }] as RunRecord[];
  const adapter = (changes: Partial<AdapterRecord>) =>
    ({
      id: 5,
      runId: 2,
      method: 'lora',
      metrics: { finalLoss: 1, evalLoss: null, steps: 40 },
      ...changes,
    }) as AdapterRecord;

  it("name an adapter by its run's name and the step it is from", () => {
    expect(adapterLabel(adapter({}), runs)).toBe('Adapter 5 from run 2: support bot, step 40 (LoRA)');
    expect(adapterLabel(adapter({ runId: 9, method: 'prompt-tuning' }), runs)).toBe(
      'Adapter 5 from run 9, step 40 (prompt tuning)',
    );
    expect(adapterLabel(adapter({ runId: null }), runs)).toBe('Adapter 5 (LoRA)');
  });

  it('give a checkpoint the last validation loss measured by its step, with that step', () => {
    const evals = [
      { step: 10, loss: 2 },
      { step: 20, loss: 1.5 },
      { step: 30, loss: 1.7 },
    ];
    expect(checkpointValidation(20, evals)).toEqual({ step: 20, loss: 1.5 });
    expect(checkpointValidation(25, evals)).toEqual({ step: 20, loss: 1.5 });
    expect(checkpointValidation(5, evals)).toBeNull();
  });

  it("tell a run's own adapter from those made of its checkpoints, whenever these were made", () => {
    const run = { id: 2, job: { outDir: '/home/adapters/run-2026-12-01' } } as RunRecord;
    const own = adapter({ id: 5, folder: '/home/adapters/run-2026-12-01' });
    const early = adapter({
      id: 6,
      folder: '/home/adapters/run-2-step-4',
      metrics: { finalLoss: 2, evalLoss: 1, steps: 4 },
    });
    const other = adapter({ id: 7, runId: 3, folder: '/elsewhere' });
    expect(finalAdapter(run, [own, early, other])).toBe(own);
    // A checkpoint opened while the run was paused comes first: still not the run's adapter.
    expect(finalAdapter(run, [early])).toBeNull();
    // A relative output folder, as the record had it: the one not named as a checkpoint's.
    const relative = { ...run, job: { outDir: 'out' } } as RunRecord;
    expect(finalAdapter(relative, [early, own])).toBe(own);
  });
});

describe("the dashboard's train command", () => {
  it('leaves out a setting a recorded job does not have, rather than print it as undefined', () => {
    const job = defaultTrainJob('lora', { modelDir: '/m', dataFile: '/d.jsonl', outDir: '/o' });
    const { overwriteOutput: _omitted, ...recorded } = job;
    expect(trainCommand(recorded as TrainJob).args).toEqual(['--model', '/m', '--data', '/d.jsonl', '--out', '/o']);
  });
});
