// The new fine-tune wizard without its screens: the steps, what each needs before the next, the presets, and the
// TrainJob the finished form becomes. Plain TypeScript so every rule is unit-tested.
import { DEMO_RECIPE } from '../../../shared/demo.js';
import type { DatasetInspection, FitConfig, MemoryFit, ModelInspection } from '../../../shared/api.js';
import { LORA_TARGETS, type AdapterMethod, type DataSettings, type DeviceChoice, type TrainJob } from '../../../shared/training.js';

export const WIZARD_STEPS = ['model', 'data', 'method', 'settings', 'review'] as const;
export type WizardStep = (typeof WIZARD_STEPS)[number];

export const STEP_TITLES: Record<WizardStep, string> = {
  model: 'Model',
  data: 'Data',
  method: 'Method',
  settings: 'Settings',
  review: 'Review',
};

export type PresetName = 'quick' | 'balanced' | 'thorough';

/** Everything the user decides, as the form holds it. */
export interface WizardForm {
  modelSource: 'demo' | 'local' | 'hub';
  /** A local model folder (modelSource 'local'). */
  modelFolder: string;
  /** org/name on the Hugging Face Hub (modelSource 'hub'). */
  hubRepo: string;
  dataSource: 'demo' | 'file';
  dataFile: string;
  /** Train without the malformed rows instead of refusing the file. */
  skipBadRows: boolean;
  method: AdapterMethod;
  preset: PresetName | 'custom';
  /** Whether `steps` or `epochs` decides how long the run is. */
  budget: 'steps' | 'epochs';
  steps: number;
  epochs: number;
  learningRate: number;
  rank: number;
  alpha: number;
  targets: string[];
  numVirtualTokens: number;
  maxSeqLen: number;
  batchSize: number;
  gradAccum: number;
  gradientCheckpointing: boolean;
  /** Fraction of the data held out for validation (0 = none). */
  evalSplit: number;
  device: DeviceChoice;
}

/** What the wizard has learned from the main process so far. */
export interface WizardFacts {
  /** The model folder training will read: the demo's, the local folder, or the Hub download. */
  modelDir: string | null;
  model: ModelInspection | null;
  /** The data file training will read. */
  dataFile: string | null;
  dataset: DatasetInspection | null;
  fit: MemoryFit | null;
}

/** Settings a preset fills in; the rest of the form is left as it is. */
export type PresetSettings = Pick<
  WizardForm,
  'budget' | 'steps' | 'epochs' | 'learningRate' | 'rank' | 'alpha' | 'targets' | 'numVirtualTokens' | 'maxSeqLen' | 'batchSize' | 'gradAccum' | 'evalSplit'
>;

export const PRESET_DESCRIPTIONS: Record<PresetName, string> = {
  quick: 'A short run to see the effect: 60 steps, a small adapter, short rows. On the built-in demo, the demo\'s own recipe: under a minute.',
  balanced: 'Two passes over the data with the usual adapter size. A good first real run.',
  thorough: 'Four passes, a larger adapter on every projection and longer rows. Slower, and needs more memory.',
};

export function presetSettings(preset: PresetName, method: AdapterMethod, onDemoModel = false): PresetSettings {
  // Soft prompts need far larger steps than LoRA weights (PEFT's examples use 3e-2).
  const promptTuning = method === 'prompt-tuning';
  switch (preset) {
    case 'quick':
      if (onDemoModel && !promptTuning) {
        const { steps, learningRate, rank, alpha, targets, maxSeqLen, batchSize } = DEMO_RECIPE;
        return { budget: 'steps', steps, epochs: 1, learningRate, rank, alpha, targets: [...targets], numVirtualTokens: 10, maxSeqLen, batchSize, gradAccum: 1, evalSplit: 0.1 };
      }
      return { budget: 'steps', steps: 60, epochs: 1, learningRate: promptTuning ? 3e-2 : 1e-3, rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], numVirtualTokens: 10, maxSeqLen: 256, batchSize: 4, gradAccum: 1, evalSplit: 0.1 };
    case 'balanced':
      return { budget: 'epochs', steps: 200, epochs: 2, learningRate: promptTuning ? 3e-2 : 2e-4, rank: 16, alpha: 32, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], numVirtualTokens: 20, maxSeqLen: 512, batchSize: 4, gradAccum: 2, evalSplit: 0.1 };
    case 'thorough':
      return { budget: 'epochs', steps: 1000, epochs: 4, learningRate: promptTuning ? 1e-2 : 1e-4, rank: 32, alpha: 64, targets: [...LORA_TARGETS], numVirtualTokens: 30, maxSeqLen: 1024, batchSize: 4, gradAccum: 4, evalSplit: 0.1 };
  }
}

export function applyPreset(form: WizardForm, preset: PresetName): WizardForm {
  return { ...form, ...presetSettings(preset, form.method, form.modelSource === 'demo'), preset };
}

export function initialForm(): WizardForm {
  return {
    modelSource: 'demo',
    modelFolder: '',
    hubRepo: '',
    dataSource: 'demo',
    dataFile: '',
    skipBadRows: false,
    method: 'lora',
    preset: 'quick',
    ...presetSettings('quick', 'lora', true),
    gradientCheckpointing: true,
    device: 'auto',
  };
}

/** The data settings the wizard uses: detected format, loss on completions, no packing. */
export function dataSettings(form: WizardForm): DataSettings {
  return { format: null, columns: {}, trainOn: 'completion', pack: false, skipBadRows: form.skipBadRows };
}

/** Why `step` is not finished yet; empty when the user may go on. */
export function stepProblems(step: WizardStep, form: WizardForm, facts: WizardFacts): string[] {
  switch (step) {
    case 'model':
      return modelProblems(form, facts);
    case 'data':
      return dataProblems(form, facts);
    case 'method':
      return form.method === 'lora' || form.method === 'prompt-tuning' ? [] : ['Choose LoRA or prompt tuning.'];
    case 'settings':
      return settingsProblems(form);
    case 'review':
      return WIZARD_STEPS.filter((s) => s !== 'review').flatMap((s) => stepProblems(s, form, facts));
  }
}

function modelProblems(form: WizardForm, facts: WizardFacts): string[] {
  if (form.modelSource === 'local' && form.modelFolder.trim() === '') return ['Enter the path of a model folder.'];
  if (form.modelSource === 'hub' && !/^[\w.-]+\/[\w.-]+$/.test(form.hubRepo.trim())) return ['Enter a Hub model id as org/name.'];
  if (facts.model && !facts.model.supported) return [`This model cannot be trained here: ${facts.model.reason ?? 'unsupported'}.`];
  if (form.modelSource === 'hub' && facts.modelDir === null) return ['Download the model first.'];
  if (facts.modelDir === null || facts.model === null) return ['Check the model first.'];
  return [];
}

function dataProblems(form: WizardForm, facts: WizardFacts): string[] {
  if (form.dataSource === 'file' && form.dataFile.trim() === '') return ['Enter the path of a data file.'];
  const dataset = facts.dataset;
  if (dataset === null || facts.dataFile === null) return ['Check the data file first.'];
  if (dataset.format === null || dataset.stats === null) return ['No row of this file can be trained on; see the bad rows below.'];
  if (dataset.badRows.length > 0 && !form.skipBadRows) {
    return [`${dataset.badRows.length} bad ${dataset.badRows.length === 1 ? 'row' : 'rows'}: fix the file, or choose to skip them.`];
  }
  return [];
}

/** The Settings step's problems, in the order of its fields. */
export function settingsProblems(form: WizardForm): string[] {
  const problems: string[] = [];
  const isInt = (n: number) => Number.isInteger(n);
  if (form.budget === 'steps' && !(isInt(form.steps) && form.steps >= 1)) problems.push('Steps must be a whole number of at least 1.');
  if (form.budget === 'epochs' && !(isInt(form.epochs) && form.epochs >= 1)) problems.push('Epochs must be a whole number of at least 1.');
  if (!(form.learningRate > 0 && form.learningRate < 1)) problems.push('Learning rate must be between 0 and 1 (for example 0.0002).');
  if (form.method === 'lora') {
    if (!(isInt(form.rank) && form.rank >= 1 && form.rank <= 512)) problems.push('Rank must be a whole number from 1 to 512.');
    if (!(form.alpha > 0)) problems.push('Alpha must be positive.');
    if (form.targets.length === 0) problems.push('Choose at least one target module.');
  } else if (!(isInt(form.numVirtualTokens) && form.numVirtualTokens >= 1 && form.numVirtualTokens <= 512)) {
    problems.push('Virtual tokens must be a whole number from 1 to 512.');
  }
  if (!(isInt(form.maxSeqLen) && form.maxSeqLen >= 16 && form.maxSeqLen <= 32768)) problems.push('Sequence length must be a whole number from 16 to 32768.');
  if (!(isInt(form.batchSize) && form.batchSize >= 1)) problems.push('Batch size must be a whole number of at least 1.');
  if (!(isInt(form.gradAccum) && form.gradAccum >= 1)) problems.push('Gradient accumulation must be a whole number of at least 1.');
  if (!(form.evalSplit >= 0 && form.evalSplit <= 0.5)) problems.push('Validation split must be from 0 to 0.5.');
  return problems;
}

/** The memory plan's view of the form (models.fit). */
export function fitConfig(form: WizardForm, modelDir: string): FitConfig {
  return {
    modelDir,
    method: form.method,
    lora: { rank: form.rank, targets: [...form.targets] },
    promptTuning: { numVirtualTokens: form.numVirtualTokens },
    optimizer: { name: 'adamw' },
    batchSize: form.batchSize,
    maxSeqLen: form.maxSeqLen,
    gradientCheckpointing: form.gradientCheckpointing,
    device: form.device,
  };
}

/** A fresh adapter folder under the studio's home, named by the time the run was created. */
export function adapterOutDir(home: string, platform: string, now: Date): string {
  const separator = platform === 'win32' ? '\\' : '/';
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  return [home.replace(/[\\/]+$/, ''), 'adapters', `run-${stamp}`].join(separator);
}

export function toTrainJob(form: WizardForm, paths: { modelDir: string; dataFile: string; outDir: string }): TrainJob {
  return {
    method: form.method,
    modelDir: paths.modelDir,
    dataFile: paths.dataFile,
    data: dataSettings(form),
    outDir: paths.outDir,
    lora: { rank: form.rank, alpha: form.alpha, dropout: 0.05, targets: [...form.targets], useRslora: false },
    promptTuning: { numVirtualTokens: form.numVirtualTokens, init: 'random', initText: null },
    optimizer: {
      name: 'adamw',
      learningRate: form.learningRate,
      weightDecay: 0,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      momentum: 0,
      scheduler: 'linear',
      warmupSteps: 0,
      maxGradNorm: 1,
    },
    steps: form.budget === 'steps' ? form.steps : null,
    epochs: form.budget === 'epochs' ? form.epochs : 1,
    batchSize: form.batchSize,
    gradAccum: form.gradAccum,
    maxSeqLen: form.maxSeqLen,
    seed: 0,
    shuffle: true,
    gradientCheckpointing: form.gradientCheckpointing,
    device: form.device,
    initAdapterDir: null,
    evalDataFile: null,
    evalSplit: form.evalSplit,
    // Validate about ten times a run so the chart shows a validation curve beside the training one.
    evalEvery: form.evalSplit > 0 && form.budget === 'steps' ? Math.max(1, Math.round(form.steps / 10)) : 0,
    checkpointEvery: 50,
    keepCheckpoints: 3,
  };
}
