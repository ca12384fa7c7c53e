// One TrainJob, one set of defaults, one validation: the CLI's flags, the wizard's form and the demo make the same job
// from the same choices; a bad value is refused by the same schema issue, said as the flag in the CLI and as the label
// in the wizard; a UserError's field crosses the wire and comes back as a flag.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEMO_RECIPE } from '../../shared/demo.js';
import { fromWire, toWire, UserError } from '../../shared/errors.js';
import { SAMPLING_DEFAULTS, samplingSchema } from '../../shared/generation.js';
import {
  defaultTrainJob,
  JOB_BOUNDS,
  JOB_FIELDS,
  jobProblems,
  shellLine,
  trainCommand,
  type JobPaths,
} from '../../shared/trainJob.js';
import type { TrainJob } from '../../shared/training.js';
import {
  applyPreset,
  describeError,
  initialForm,
  settingsProblems,
  toTrainJob,
  type WizardForm,
} from '../../renderer/src/lib/wizard.js';
import { demoJob } from '../../main/cli/demo.js';
import { samplingFromFlags } from '../../main/cli/playground.js';
import { TRAIN_OPTIONS, trainJobFromFlags } from '../../main/cli/trainFlags.js';
import { UsageError } from '../../main/cli/options.js';
import { DEMO_MODEL_DIR } from '../../main/demo.js';
import { DEMO_MODEL } from '../api/jobs.js';
import { CLI, lastJson, runCli } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

const PATHS: JobPaths = { modelDir: '/models/base', dataFile: '/data/chat.jsonl', outDir: '/adapters/run-1' };
const PATH_FLAGS = ['--model', PATHS.modelDir, '--data', PATHS.dataFile, '--out', PATHS.outDir];
// Without a studio folder the CLI records nothing.
const env = { ...process.env, PEFT_STUDIO_HOME: '' };

/** The job `peft-studio train ARGS` builds, through the same flag parser main() runs. */
function fromFlags(args: string[]): TrainJob {
  const { values } = parseArgs({ args, options: TRAIN_OPTIONS, strict: true, allowPositionals: false });
  return trainJobFromFlags(values);
}

/** What `peft-studio train ARGS --dry-run --json` prints: the checked job, from the built CLI in its own process. */
function fromRealCli(args: string[]): TrainJob {
  const result = runCli(['train', ...args, '--dry-run', '--json'], { env });
  expect(result.code, result.stderr).toBe(0);
  return lastJson(result.stdout);
}

/** The leaf paths of a job: objects are walked, lists and the column record are values. */
function leafPaths(value: object, prefix = ''): string[] {
  return Object.entries(value).flatMap(([key, inner]) => {
    const at = `${prefix}${key}`;
    return inner !== null && typeof inner === 'object' && !Array.isArray(inner) && at !== 'data.columns'
      ? leafPaths(inner, `${at}.`)
      : [at];
  });
}

describe('one shape', () => {
  it('has a flag and a label for every field, bounds only for fields, and every flag is one train takes', () => {
    const fields = Object.keys(JOB_FIELDS);
    expect(leafPaths(defaultTrainJob('lora', PATHS)).sort()).toEqual([...fields].sort());
    for (const field of Object.keys(JOB_BOUNDS)) expect(fields).toContain(field);
    for (const { flag } of Object.values(JOB_FIELDS))
      if (flag) expect(Object.keys(TRAIN_OPTIONS)).toContain(flag.slice(2));
  });

  it('has defaults the schema accepts, for either method', () => {
    expect(jobProblems(defaultTrainJob('lora', PATHS))).toEqual([]);
    expect(jobProblems(defaultTrainJob('prompt-tuning', PATHS))).toEqual([]);
  });

  it('is the defaults when no flag is given, in the CLI and in its process', () => {
    expect(fromFlags(PATH_FLAGS)).toEqual(defaultTrainJob('lora', PATHS));
    expect(fromRealCli(PATH_FLAGS)).toEqual(defaultTrainJob('lora', PATHS));
  });
});

describe('the same choices make the same job', () => {
  it('from the CLI flags, from the wizard form and from the CLI process', () => {
    const form: WizardForm = {
      ...applyPreset(
        {
          ...initialForm(),
          modelSource: 'local',
          modelFolder: PATHS.modelDir,
          dataSource: 'file',
          dataFile: PATHS.dataFile,
        },
        'balanced',
      ),
      preset: 'custom',
      budget: 'steps',
      steps: 30,
      learningRate: 1e-3,
      rank: 8,
      alpha: 16,
      targets: ['q_proj', 'v_proj'],
      maxSeqLen: 256,
      batchSize: 2,
      gradAccum: 2,
      evalSplit: 0.2,
      gradientCheckpointing: false,
      quantize: 'nf4',
      skipBadRows: true,
      device: 'cpu',
    };
    const wizardJob = toTrainJob(form, PATHS);
    expect(wizardJob.quantize).toBe('nf4');
    // The wizard validates about ten times a run; the CLI user asks for it.
    const args = [
      ...PATH_FLAGS,
      '--steps',
      '30',
      '--lr',
      '1e-3',
      '--rank',
      '8',
      '--alpha',
      '16',
      '--targets',
      'q_proj,v_proj',
      '--max-seq-len',
      '256',
      '--batch-size',
      '2',
      '--grad-accum',
      '2',
      '--eval-split',
      '0.2',
      '--eval-every',
      '3',
      '--gradient-checkpointing',
      'off',
      '--quantize',
      'nf4',
      '--skip-bad-rows',
      '--device',
      'cpu',
    ];
    expect(jobProblems(wizardJob)).toEqual([]);
    expect(fromFlags(args)).toEqual(wizardJob);
    expect(fromRealCli(args)).toEqual(wizardJob);
  });

  it('for prompt tuning, where the LoRA settings stay the defaults', () => {
    const form: WizardForm = {
      ...applyPreset({ ...initialForm(), modelSource: 'local', method: 'prompt-tuning' }, 'thorough'),
      device: 'cpu',
    };
    const args = [
      ...PATH_FLAGS,
      '--method',
      'prompt-tuning',
      '--num-virtual-tokens',
      '30',
      '--lr',
      '1e-2',
      '--epochs',
      '4',
      '--max-seq-len',
      '1024',
      '--batch-size',
      '4',
      '--grad-accum',
      '4',
      '--eval-split',
      '0.1',
      '--device',
      'cpu',
    ];
    expect(fromFlags(args)).toEqual(toTrainJob(form, PATHS));
  });

  it("from the demo, from the wizard's Quick preset on the demo model, and from the CLI flags of its recipe", () => {
    const work = tempDir('train-job-demo');
    const demoPaths = {
      modelDir: DEMO_MODEL_DIR,
      dataFile: path.join(work, 'train.jsonl'),
      outDir: path.join(work, 'adapter'),
    };
    const demo = demoJob(demoPaths.dataFile, demoPaths.outDir, DEMO_RECIPE.steps, 'cpu');
    expect(jobProblems(demo)).toEqual([]);

    // The wizard holds nothing out here (the demo holds out its own file); the demo keeps one checkpoint and may
    // overwrite its last adapter.
    const quick = { ...applyPreset({ ...initialForm(), device: 'cpu' }, 'quick'), evalSplit: 0 };
    expect({ ...toTrainJob(quick, demoPaths), checkpointEvery: 0, keepCheckpoints: 1, overwriteOutput: true }).toEqual(
      demo,
    );

    const r = DEMO_RECIPE;
    const recipeFlags = [
      '--model',
      demoPaths.modelDir,
      '--data',
      demoPaths.dataFile,
      '--out',
      demoPaths.outDir,
      '--steps',
      `${r.steps}`,
      '--lr',
      `${r.learningRate}`,
      '--scheduler',
      r.scheduler,
      '--lora-dropout',
      `${r.dropout}`,
      '--rank',
      `${r.rank}`,
      '--alpha',
      `${r.alpha}`,
      '--targets',
      r.targets.join(','),
      '--batch-size',
      `${r.batchSize}`,
      '--max-seq-len',
      `${r.maxSeqLen}`,
      '--gradient-checkpointing',
      r.gradientCheckpointing ? 'on' : 'off',
      '--device',
      'cpu',
      '--checkpoint-every',
      '0',
      '--keep-checkpoints',
      '1',
      '--overwrite',
    ];
    expect(fromFlags(recipeFlags)).toEqual(demo);
  });
});

describe('one validation', () => {
  const refusal = (args: string[]) => {
    try {
      fromFlags([...PATH_FLAGS, ...args]);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      return (err as Error).message;
    }
    throw new Error(`accepted ${args.join(' ')}`);
  };

  it('says the same schema issue as the flag in the CLI and as the label in the wizard', () => {
    const form = { ...initialForm(), maxSeqLen: 2_000_000 };
    expect(jobProblems(toTrainJob(form, PATHS))).toEqual([{ field: 'maxSeqLen', message: 'must be at most 1048576' }]);
    expect(settingsProblems(form)).toEqual(['Max sequence length: must be at most 1048576']);
    expect(refusal(['--max-seq-len', '2000000'])).toBe('--max-seq-len 2000000: must be at most 1048576');

    expect(settingsProblems({ ...initialForm(), targets: ['q_proj', 'q_prj'] })).toEqual([
      'Target modules: unknown LoRA target "q_prj"; allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj',
    ]);
    expect(refusal(['--targets', 'q_proj,q_prj'])).toBe(
      '--targets q_proj,q_prj: unknown LoRA target "q_prj"; allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj',
    );
    expect(settingsProblems({ ...initialForm(), evalSplit: 0.6 })).toEqual(['Validation split: must be at most 0.5']);
    expect(refusal(['--eval-split', '0.6'])).toBe('--eval-split 0.6: must be at most 0.5');
    expect(settingsProblems({ ...initialForm(), rank: 513 })).toEqual(['LoRA rank: must be at most 512']);
    expect(refusal(['--rank', '513'])).toBe('--rank 513: must be at most 512');
  });

  it('refuses in the CLI what only flags can get wrong, each named by its flag', () => {
    expect(refusal(['--rank', 'many'])).toBe('--rank many: must be a number');
    expect(refusal(['--steps', '2.5'])).toBe('--steps 2.5: must be a whole number');
    expect(refusal(['--lr', '0'])).toBe('--lr 0: must be above 0');
    expect(refusal(['--seed=-1'])).toBe('--seed -1: must be at least 0');
    expect(refusal(['--scheduler', 'step'])).toBe('--scheduler step: must be one of constant, linear, cosine');
    expect(refusal(['--device', 'tpu'])).toBe('--device tpu: must be one of auto, cpu, webgpu, cuda, dml');
    expect(refusal(['--quantize', 'int8'])).toBe('--quantize int8: must be one of none, nf4, fp4, int4');
    expect(refusal(['--method', 'prompt-tuning', '--prompt-init', 'text'])).toBe(
      '--prompt-init-text: needed to start the prompt from text',
    );
    expect(refusal(['--eval-data', '/data/eval.jsonl', '--eval-split', '0.1'])).toBe(
      '--eval-split 0.1: must be 0 when there is a validation data file',
    );
    expect(refusal(['--steps', '5', '--epochs', '2'])).toBe('give --steps or --epochs, not both');
  });

  it('exits with the usage code and the flag from the real CLI, before any file is read', () => {
    const result = runCli(['train', ...PATH_FLAGS, '--max-seq-len', '2000000'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe('peft-studio train: --max-seq-len 2000000: must be at most 1048576');
  });

  it("checks sampling settings the same way: the flags over the shared defaults, refused by the API's schema", () => {
    expect(samplingFromFlags({})).toEqual(samplingSchema.parse({}));
    expect(samplingFromFlags({})).toEqual(SAMPLING_DEFAULTS);
    expect(samplingFromFlags({ temperature: '0.7', 'top-p': '0.9', stop: ['\n'] })).toEqual({
      ...SAMPLING_DEFAULTS,
      temperature: 0.7,
      topP: 0.9,
      stop: ['\n'],
    });
    expect(() => samplingFromFlags({ 'top-p': '0' })).toThrow(new UsageError('--top-p 0: must be above 0'));
    expect(() => samplingFromFlags({ 'max-new-tokens': '5000' })).toThrow(
      new UsageError('--max-new-tokens 5000: must be at most 4096'),
    );
  });
});

describe('a UserError with a field', () => {
  it('keeps its field across the wire, and the wizard says it by its label', () => {
    const wire = JSON.parse(JSON.stringify(toWire(new UserError('must be at most 1048576', { field: 'maxSeqLen' }))));
    expect(wire).toEqual({ name: 'UserError', message: 'must be at most 1048576', field: 'maxSeqLen' });
    const rebuilt = fromWire(wire);
    expect(rebuilt).toBeInstanceOf(UserError);
    expect((rebuilt as UserError).field).toBe('maxSeqLen');
    expect(describeError(rebuilt)).toBe('Max sequence length: must be at most 1048576');
    expect(toWire(new UserError('no field'))).toEqual({ name: 'UserError', message: 'no field' });
    expect(describeError(fromWire(toWire(new UserError('no field'))))).toBe('no field');
  });

  it('reaches the CLI as its flag: thrown in the CLI process, and in the engine process behind the wire', () => {
    const platform = `${process.platform}/${process.arch}`;
    const generated = runCli(['generate', '--model', DEMO_MODEL, '--prompt', 'hi', '--device', 'dml'], { env });
    expect(generated.code).toBe(1);
    expect(generated.stderr).toBe(
      `peft-studio generate: error: --device: dml is not available on this machine (${platform})\n`,
    );
    const trained = runCli(
      ['train', '--out', path.join(tempDir('train-job-device'), 'adapter'), '--steps', '1', '--device', 'dml'],
      { env },
    );
    expect(trained.code).toBe(1);
    expect(trained.stderr.trim().split('\n').at(-1)).toBe(
      `peft-studio train: error: --device: dml is not available on this machine (${platform})`,
    );
  });
});

describe('the command that repeats a run', () => {
  const lora = defaultTrainJob('lora', PATHS);
  const jobs: [string, TrainJob][] = [
    ['the defaults', lora],
    [
      'every kind of setting changed',
      {
        ...lora,
        data: {
          format: 'prompt-completion',
          columns: { prompt: "the user's question", completion: 'answer' },
          trainOn: 'all',
          pack: true,
          skipBadRows: true,
          dropDuplicates: true,
          chatTemplate: '/templates/my chat.jinja',
        },
        lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj', 'down_proj'], useRslora: true },
        optimizer: {
          ...lora.optimizer,
          name: 'sgd',
          learningRate: 3.5e-4,
          weightDecay: 0.01,
          scheduler: 'cosine',
          warmupSteps: 10,
          maxGradNorm: 0.5,
        },
        steps: 120,
        batchSize: 2,
        gradAccum: 4,
        maxSeqLen: 256,
        seed: 7,
        shuffle: false,
        gradientCheckpointing: false,
        quantize: 'int4',
        device: 'cpu',
        threads: 2,
        initAdapterDir: '/adapters/before',
        evalSplit: 0.1,
        evalEvery: 20,
        checkpointEvery: 10,
        keepCheckpoints: 5,
        keepBest: true,
        earlyStoppingPatience: 40,
        overwriteOutput: true,
      },
    ],
    [
      'prompt tuning from a text',
      {
        ...defaultTrainJob('prompt-tuning', PATHS),
        promptTuning: { numVirtualTokens: 8, init: 'text', initText: 'Answer as a bike shop would:' },
        epochs: 3,
        evalDataFile: '/data/held-out.jsonl',
      },
    ],
  ];

  it.each(jobs)('gives back the same job through the real CLI and a shell: %s', (_, job) => {
    expect(jobProblems(job)).toEqual([]);
    const { args, unexpressed } = trainCommand(job);
    expect(unexpressed).toEqual([]);
    expect(fromRealCli(args)).toEqual(job);
    const shell = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" train ${shellLine(args)} --dry-run --json`], {
      encoding: 'utf8',
      env,
    });
    expect(shell.status, shell.stderr).toBe(0);
    expect(lastJson(shell.stdout)).toEqual(job);
  });

  it('names the settings no flag can give', () => {
    const job = { ...lora, optimizer: { ...lora.optimizer, beta2: 0.95 } };
    expect(trainCommand(job)).toEqual({ args: PATH_FLAGS, unexpressed: ['Adam beta2 0.95'] });
  });
});
