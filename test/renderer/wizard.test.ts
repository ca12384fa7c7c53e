// The wizard's rules without a browser: step gates, presets, and the TrainJob the form becomes.
import { DEMO_RECIPE } from '../../shared/demo.js';
import { describe, expect, it } from 'vitest';
import type { DatasetInspection, ModelInspection } from '../../shared/api.js';
import {
  adapterOutDir,
  applyPreset,
  fitConfig,
  initialForm,
  presetSettings,
  settingsProblems,
  stepProblems,
  toTrainJob,
  type WizardFacts,
} from '../../renderer/src/lib/wizard.js';

const MODEL: ModelInspection = {
  source: '/demo/model',
  kind: 'local',
  architecture: 'llama',
  parameters: 1_000_000,
  dtype: 'f32',
  sizeBytes: 4_000_000,
  supported: true,
  reason: null,
  gated: false,
};

function dataset(badRows: DatasetInspection['badRows'], trainable = true): DatasetInspection {
  return {
    file: '/demo/data.jsonl',
    format: trainable ? 'text' : null,
    stats: trainable
      ? {
          rows: 10,
          badRows: badRows.length,
          emptyRows: 0,
          duplicateRows: 0,
          tokens: 500,
          trainedTokens: 300,
          truncatedRows: 0,
          cutTokens: 0,
          minLength: 20,
          maxLength: 80,
          meanLength: 50,
          lengthHistogram: [],
          renderedSha256: 'x',
        }
      : null,
    badRows,
    untrainedRows: [],
    sourceSha256: 'y',
    previews: [],
  };
}

const READY: WizardFacts = {
  modelDir: '/demo/model',
  model: MODEL,
  dataFile: '/demo/data.jsonl',
  dataset: dataset([]),
  fit: null,
};
const NOTHING: WizardFacts = { modelDir: null, model: null, dataFile: null, dataset: null, fit: null };

describe('wizard steps', () => {
  it('holds each step until the main process has checked what it needs', () => {
    const form = initialForm();
    expect(stepProblems('model', form, NOTHING)).toEqual(['Check the model first.']);
    const modelChecked = { ...NOTHING, modelDir: '/demo/model', model: MODEL };
    expect(stepProblems('model', form, modelChecked)).toEqual([]);
    expect(stepProblems('data', form, modelChecked)).toEqual(['Check the data file first.']);
    expect(stepProblems('review', form, modelChecked)).toEqual(['Check the data file first.']);
    expect(stepProblems('review', form, READY)).toEqual([]);
  });

  it('asks for a folder path, a Hub id in org/name form, and a download before a Hub model counts', () => {
    expect(stepProblems('model', { ...initialForm(), modelSource: 'local' }, NOTHING)).toEqual([
      'Enter the path of a model folder.',
    ]);
    expect(stepProblems('model', { ...initialForm(), modelSource: 'hub', hubRepo: 'no-slash' }, NOTHING)).toEqual([
      'Enter a Hub model id as org/name.',
    ]);
    const hubModel = { ...MODEL, kind: 'hub' as const };
    expect(
      stepProblems(
        'model',
        { ...initialForm(), modelSource: 'hub', hubRepo: 'org/name' },
        { ...NOTHING, model: hubModel },
      ),
    ).toEqual(['Download the model first.']);
  });

  it('refuses an unsupported model with its reason', () => {
    const facts = { ...READY, model: { ...MODEL, supported: false, reason: 'gpt2 is not a Llama-family model' } };
    expect(stepProblems('model', initialForm(), facts)).toEqual([
      'This model cannot be trained here: gpt2 is not a Llama-family model.',
    ]);
  });

  it('holds the data step on bad rows until the user chooses to skip them', () => {
    const facts = {
      ...READY,
      dataset: dataset([
        { row: 3, reason: 'not JSON' },
        { row: 7, reason: 'no text field' },
      ]),
    };
    expect(stepProblems('data', initialForm(), facts)).toEqual(['2 bad rows: fix the file, or choose to skip them.']);
    expect(stepProblems('data', { ...initialForm(), skipBadRows: true }, facts)).toEqual([]);
  });

  it('refuses a file with nothing trainable even when skipping bad rows', () => {
    const facts = { ...READY, dataset: dataset([{ row: 1, reason: 'not JSON' }], false) };
    expect(stepProblems('data', { ...initialForm(), skipBadRows: true }, facts)).toEqual([
      'No row of this file can be trained on; see the bad rows below.',
    ]);
  });

  it('checks every settings field with the job schema and names it by its label', () => {
    const form = {
      ...initialForm(),
      steps: 0,
      learningRate: 2,
      rank: 1.5,
      alpha: 0,
      targets: [],
      maxSeqLen: 2 ** 21,
      batchSize: 0,
      gradAccum: -1,
      evalSplit: 0.9,
    };
    expect(settingsProblems(form)).toEqual([
      'LoRA rank: must be a whole number',
      'LoRA alpha: must be above 0',
      'Target modules: choose at least one module',
      'Learning rate: must be at most 1',
      'Steps: must be at least 1',
      'Batch size: must be at least 1',
      'Gradient accumulation: must be at least 1',
      'Max sequence length: must be at most 1048576',
      'Validation split: must be at most 0.5',
    ]);
  });

  it('treats an emptied number field (null from the input) as a problem, not as zero', () => {
    expect(settingsProblems({ ...initialForm(), steps: null as unknown as number })).toEqual([
      'Steps: must be a number',
    ]);
    expect(settingsProblems({ ...initialForm(), batchSize: null as unknown as number })).toEqual([
      'Batch size: must be a number',
    ]);
  });

  it('checks virtual tokens instead of the LoRA fields for prompt tuning', () => {
    const form = { ...initialForm(), method: 'prompt-tuning' as const, targets: [], numVirtualTokens: 0 };
    expect(settingsProblems(form)).toEqual(['Virtual tokens: must be at least 1']);
  });

  it('offers the shared bounds and every preset inside them', () => {
    for (const method of ['lora', 'prompt-tuning'] as const) {
      for (const preset of ['quick', 'balanced', 'thorough'] as const) {
        for (const modelSource of ['demo', 'local'] as const) {
          expect(
            settingsProblems(applyPreset({ ...initialForm(), method, modelSource }, preset)),
            `${method} ${preset} ${modelSource}`,
          ).toEqual([]);
        }
      }
    }
  });
});

describe('presets', () => {
  it('grow from quick to thorough', () => {
    const [quick, balanced, thorough] = (['quick', 'balanced', 'thorough'] as const).map((p) =>
      presetSettings(p, 'lora'),
    );
    expect(quick.budget).toBe('steps');
    expect(quick.rank).toBeLessThan(balanced.rank);
    expect(balanced.rank).toBeLessThan(thorough.rank);
    expect(balanced.epochs).toBeLessThan(thorough.epochs);
    expect(thorough.targets).toHaveLength(7);
  });

  it('use the much larger learning rate soft prompts need', () => {
    expect(presetSettings('balanced', 'prompt-tuning').learningRate).toBeGreaterThan(
      presetSettings('balanced', 'lora').learningRate * 10,
    );
  });

  it("use the demo's own recipe for Quick on the demo model, the same one `peft-studio demo` trains with", () => {
    expect(applyPreset(initialForm(), 'quick')).toMatchObject({
      steps: DEMO_RECIPE.steps,
      learningRate: DEMO_RECIPE.learningRate,
      scheduler: DEMO_RECIPE.scheduler,
      loraDropout: DEMO_RECIPE.dropout,
      rank: DEMO_RECIPE.rank,
      targets: [...DEMO_RECIPE.targets],
      // Held-out rows for the dashboard's held-out answers.
      evalSplit: 0.1,
    });
    expect(applyPreset({ ...initialForm(), modelSource: 'local', modelFolder: '/m' }, 'quick')).toMatchObject({
      steps: 60,
      targets: ['q_proj', 'v_proj'],
    });
  });

  it('replace only the settings they own', () => {
    const form = applyPreset(
      { ...initialForm(), modelSource: 'local', modelFolder: '/m', gradientCheckpointing: false },
      'thorough',
    );
    expect(form).toMatchObject({
      preset: 'thorough',
      modelSource: 'local',
      modelFolder: '/m',
      gradientCheckpointing: false,
      rank: 32,
    });
  });
});

describe('the TrainJob', () => {
  it('carries the form into the engine contract', () => {
    const form = {
      ...initialForm(),
      steps: 12,
      rank: 4,
      alpha: 8,
      targets: ['q_proj'],
      skipBadRows: true,
      device: 'cpu' as const,
    };
    const job = toTrainJob(form, { modelDir: '/m', dataFile: '/d.jsonl', outDir: '/home/adapters/run-1' });
    expect(job).toMatchObject({
      method: 'lora',
      modelDir: '/m',
      dataFile: '/d.jsonl',
      outDir: '/home/adapters/run-1',
      steps: 12,
      device: 'cpu',
      lora: { rank: 4, alpha: 8, targets: ['q_proj'] },
      data: { format: null, skipBadRows: true },
      evalSplit: 0.1,
    });
    expect(job.evalEvery).toBeGreaterThan(0);
  });

  it('carries the settings under "More settings" into the job, and checks them by their labels', () => {
    const paths = { modelDir: '/m', dataFile: '/d', outDir: '/o' };
    const form = { ...initialForm(), loraDropout: 0.1, scheduler: 'cosine' as const, warmupSteps: 5, seed: 42 };
    expect(toTrainJob({ ...form, trainOn: 'all' }, paths)).toMatchObject({
      lora: { dropout: 0.1 },
      optimizer: { scheduler: 'cosine', warmupSteps: 5 },
      seed: 42,
      data: { trainOn: 'all' },
    });
    const promptTuning = { ...initialForm(), method: 'prompt-tuning' as const };
    expect(toTrainJob(promptTuning, paths).promptTuning).toMatchObject({ init: 'random', initText: null });
    expect(toTrainJob({ ...promptTuning, promptInitText: 'Answer as a bike shop:' }, paths).promptTuning).toEqual({
      numVirtualTokens: promptTuning.numVirtualTokens,
      init: 'text',
      initText: 'Answer as a bike shop:',
    });
    expect(toTrainJob({ ...form, keepBest: true, earlyStoppingPatience: 30 }, paths)).toMatchObject({
      keepBest: true,
      earlyStoppingPatience: 30,
    });
    // Both follow validation: without a split there is none to follow.
    expect(settingsProblems({ ...form, evalSplit: 0, keepBest: true, earlyStoppingPatience: 30 })).toEqual([
      'Keep the best validation step: needs validation during the run: a validation split or file, and validation every N steps',
      'Early stopping patience (steps): needs validation during the run: a validation split or file, and validation every N steps',
    ]);
    expect(settingsProblems({ ...form, loraDropout: 1, warmupSteps: -1, seed: 0.5 })).toEqual([
      'LoRA dropout: must be below 1',
      'Warm-up steps: must be at least 0',
      'Seed: must be a whole number',
    ]);
  });

  it("renders chat rows with the model's own template unless a template file is chosen", () => {
    const paths = { modelDir: '/m', dataFile: '/d.jsonl', outDir: '/out' };
    expect(toTrainJob(initialForm(), paths).data.chatTemplate).toBeNull();
    expect(toTrainJob({ ...initialForm(), chatTemplateFile: '  ' }, paths).data.chatTemplate).toBeNull();
    expect(toTrainJob({ ...initialForm(), chatTemplateFile: '/t/mine.jinja' }, paths).data.chatTemplate).toBe(
      '/t/mine.jinja',
    );
  });

  it('quantizes the base only when asked, in the job and in the memory plan alike', () => {
    const paths = { modelDir: '/m', dataFile: '/d', outDir: '/o' };
    expect(initialForm().quantize).toBe('none');
    expect(toTrainJob(initialForm(), paths).quantize).toBe('none');
    expect(fitConfig(initialForm(), '/m').quantize).toBe('none');
    for (const quantize of ['nf4', 'fp4', 'int4'] as const) {
      const form = { ...initialForm(), quantize };
      expect(toTrainJob(form, paths).quantize).toBe(quantize);
      expect(fitConfig(form, '/m').quantize).toBe(quantize);
      expect(settingsProblems(form)).toEqual([]);
    }
    // A preset leaves the choice as it is.
    expect(applyPreset({ ...initialForm(), quantize: 'nf4' }, 'thorough').quantize).toBe('nf4');
  });

  it('runs by epochs when the budget is epochs', () => {
    const job = toTrainJob(
      { ...initialForm(), budget: 'epochs', epochs: 3 },
      { modelDir: '/m', dataFile: '/d', outDir: '/o' },
    );
    expect(job.steps).toBeNull();
    expect(job.epochs).toBe(3);
  });

  it('copies the targets so later form edits do not change a started job', () => {
    const form = initialForm();
    const job = toTrainJob(form, { modelDir: '/m', dataFile: '/d', outDir: '/o' });
    const targets = [...form.targets];
    form.targets.pop();
    expect(job.lora.targets).toEqual(targets);
    expect(fitConfig(form, '/m').lora.targets).not.toBe(form.targets);
  });

  it('puts the adapter under the studio home with the platform separator', () => {
    const now = new Date('2026-01-02T03:04:05.678Z');
    expect(adapterOutDir('/home/u/.peft-studio/', 'linux', now)).toBe(
      '/home/u/.peft-studio/adapters/run-2026-01-02T03-04-05-678Z',
    );
    expect(adapterOutDir('C:\\Users\\u\\studio', 'win32', now)).toBe(
      'C:\\Users\\u\\studio\\adapters\\run-2026-01-02T03-04-05-678Z',
    );
  });
});
