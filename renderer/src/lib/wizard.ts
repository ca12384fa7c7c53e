// The new fine-tune wizard without its screens: the steps, what each needs before the next, the presets, and the
// TrainJob the finished form becomes (shared/trainJob.ts's defaults with what the form holds, checked by the same
// schema as the CLI's and the API's). Plain TypeScript so every rule is unit-tested.
import { DEMO_RECIPE } from '../../../shared/demo.js';
import type {
  CatalogueFitCell,
  CatalogueFitConfig,
  DatasetInspection,
  FitConfig,
  MemoryFit,
  ModelInspection,
} from '../../../shared/api.js';
import type { FieldProblem } from '../../../shared/errors.js';
import { defaultRunName, runNameProblem } from '../../../shared/runs.js';
import {
  defaultDataSettings,
  defaultTrainJob,
  JOB_FIELDS,
  jobProblems,
  type FieldNames,
  type JobPaths,
} from '../../../shared/trainJob.js';
import {
  LORA_TARGETS,
  type AdapterMethod,
  type DataFormat,
  type DataSettings,
  type DeviceChoice,
  type QuantizeChoice,
  type SchedulerName,
  type TrainJob,
} from '../../../shared/training.js';
import { errorMessage } from './client.js';
import { formatBytes } from './format.js';

/** A TrainJob field path, as JOB_FIELDS names them. */
export type JobField = keyof typeof JOB_FIELDS;

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

/** The base-weight choices as the Settings step offers them and the Review step says them. */
export const QUANTIZE_OPTIONS: Record<QuantizeChoice, string> = {
  none: "none (the checkpoint's precision)",
  nf4: 'nf4 (4-bit, QLoRA)',
  fp4: 'fp4 (4-bit)',
  int4: 'int4 (4-bit, fastest chat)',
};

/** The learning-rate schedules as the Settings step offers them. */
export const SCHEDULER_OPTIONS: Record<SchedulerName, string> = {
  constant: 'constant',
  linear: 'linear decay to zero',
  cosine: 'cosine decay to zero',
};

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
  /** Train on each distinct row once ("Remove duplicates" on the Data step). */
  dropDuplicates: boolean;
  /** The data's layout, or 'auto' to detect it from the rows. */
  dataFormat: DataFormat | 'auto';
  /** The file's column for each field the format reads (empty: the field's own name). */
  dataColumns: Record<string, string>;
  /** A Jinja chat template file for chat rows ('' = the model's own template). */
  chatTemplateFile: string;
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
  /** Set by the presets (the defaults, or the demo recipe's), and changed under "More settings". */
  loraDropout: number;
  scheduler: SchedulerName;
  warmupSteps: number;
  seed: number;
  /** Which tokens train: the answers (assistant turns, completions) or every token. */
  trainOn: DataSettings['trainOn'];
  /** Prompt tuning: a text the virtual tokens start from ('' = random, PEFT's default). */
  promptInitText: string;
  /** Write the validated step with the lowest validation loss, not the last one. */
  keepBest: boolean;
  /** Stop once validation has not improved for this many steps (0: never). */
  earlyStoppingPatience: number;
  maxSeqLen: number;
  batchSize: number;
  gradAccum: number;
  gradientCheckpointing: boolean;
  /** The base weights as the checkpoint has them, or quantized to 4 bits on load (QLoRA). */
  quantize: QuantizeChoice;
  /** Fraction of the data held out for validation (0 = none). */
  evalSplit: number;
  device: DeviceChoice;
  /** What the run is called ('' = named after its model, data and date when it starts). */
  runName: string;
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
  | 'budget'
  | 'steps'
  | 'epochs'
  | 'learningRate'
  | 'rank'
  | 'alpha'
  | 'targets'
  | 'numVirtualTokens'
  | 'loraDropout'
  | 'scheduler'
  | 'maxSeqLen'
  | 'batchSize'
  | 'gradAccum'
  | 'evalSplit'
> &
  // Only the demo's own recipe turns checkpointing off; the other presets leave the user's choice.
  Partial<Pick<WizardForm, 'gradientCheckpointing'>>;

export const PRESET_DESCRIPTIONS: Record<PresetName, string> = {
  quick:
    "A short run to see the effect: 60 steps, a small adapter, short rows. On the built-in demo, the demo's own recipe: a minute or two.",
  balanced: 'Two passes over the data with the usual adapter size. A good first real run.',
  thorough: 'Four passes, a larger adapter on every projection and longer rows. Slower, and needs more memory.',
};

/** Stand-ins for the paths while the form is checked before they are known (the Settings step). */
const DRAFT_PATHS: JobPaths = { modelDir: 'model', dataFile: 'data', outDir: 'adapter' };

export function presetSettings(preset: PresetName, method: AdapterMethod, onDemoModel = false): PresetSettings {
  // Soft prompts need far larger steps than LoRA weights (PEFT's examples use 3e-2).
  const promptTuning = method === 'prompt-tuning';
  const defaults = defaultTrainJob(method, DRAFT_PATHS);
  const usual = { loraDropout: defaults.lora.dropout, scheduler: defaults.optimizer.scheduler };
  switch (preset) {
    case 'quick':
      if (onDemoModel && !promptTuning) {
        const { steps, learningRate, scheduler, rank, alpha, dropout, targets, maxSeqLen, batchSize } = DEMO_RECIPE;
        const { gradientCheckpointing } = DEMO_RECIPE;
        return {
          budget: 'steps',
          steps,
          epochs: 1,
          learningRate,
          scheduler,
          rank,
          alpha,
          loraDropout: dropout,
          targets: [...targets],
          numVirtualTokens: 10,
          maxSeqLen,
          batchSize,
          gradAccum: 1,
          evalSplit: 0.1,
          gradientCheckpointing,
        };
      }
      return {
        ...usual,
        budget: 'steps',
        steps: 60,
        epochs: 1,
        learningRate: promptTuning ? 3e-2 : 1e-3,
        rank: 8,
        alpha: 16,
        targets: ['q_proj', 'v_proj'],
        numVirtualTokens: 10,
        maxSeqLen: 256,
        batchSize: 4,
        gradAccum: 1,
        evalSplit: 0.1,
      };
    case 'balanced':
      return {
        ...usual,
        budget: 'epochs',
        steps: 200,
        epochs: 2,
        learningRate: promptTuning ? 3e-2 : 2e-4,
        rank: 16,
        alpha: 32,
        targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
        numVirtualTokens: 20,
        maxSeqLen: 512,
        batchSize: 4,
        gradAccum: 2,
        evalSplit: 0.1,
      };
    case 'thorough':
      return {
        ...usual,
        budget: 'epochs',
        steps: 1000,
        epochs: 4,
        learningRate: promptTuning ? 1e-2 : 1e-4,
        rank: 32,
        alpha: 64,
        targets: [...LORA_TARGETS],
        numVirtualTokens: 30,
        maxSeqLen: 1024,
        batchSize: 4,
        gradAccum: 4,
        evalSplit: 0.1,
      };
  }
}

export function applyPreset(form: WizardForm, preset: PresetName): WizardForm {
  return { ...form, ...presetSettings(preset, form.method, form.modelSource === 'demo'), preset };
}

export function initialForm(): WizardForm {
  const defaults = defaultTrainJob('lora', DRAFT_PATHS);
  return {
    modelSource: 'demo',
    modelFolder: '',
    hubRepo: '',
    dataSource: 'demo',
    dataFile: '',
    skipBadRows: false,
    dropDuplicates: false,
    dataFormat: 'auto',
    dataColumns: {},
    chatTemplateFile: '',
    method: 'lora',
    preset: 'quick',
    ...presetSettings('quick', 'lora', true),
    warmupSteps: defaults.optimizer.warmupSteps,
    seed: defaults.seed,
    trainOn: defaults.data.trainOn,
    promptInitText: '',
    keepBest: defaults.keepBest,
    earlyStoppingPatience: defaults.earlyStoppingPatience,
    gradientCheckpointing: defaults.gradientCheckpointing,
    quantize: defaults.quantize,
    device: defaults.device,
    runName: '',
  };
}

/**
 * The data settings the wizard uses: the defaults (loss on completions, no packing), the format (detected unless
 * chosen), the column mapping, and the bad-row and duplicate choices.
 */
export function dataSettings(form: WizardForm): DataSettings {
  const columns = Object.fromEntries(
    Object.entries(form.dataColumns)
      .map(([field, column]) => [field, column.trim()])
      .filter(([field, column]) => column !== '' && column !== field && FORMAT_FIELDS[form.dataFormat].includes(field)),
  );
  return {
    ...defaultDataSettings(),
    format: form.dataFormat === 'auto' ? null : form.dataFormat,
    columns,
    trainOn: form.trainOn,
    skipBadRows: form.skipBadRows,
    dropDuplicates: form.dropDuplicates,
    chatTemplate: form.chatTemplateFile.trim() || null,
  };
}

/** The fields each format reads, which the Data step lets the user map to the file's columns. */
export const FORMAT_FIELDS: Record<DataFormat | 'auto', readonly string[]> = {
  auto: [],
  messages: ['messages'],
  sharegpt: ['conversations'],
  alpaca: ['instruction', 'input', 'output', 'system'],
  'prompt-completion': ['prompt', 'completion'],
  text: ['text'],
  tokens: ['input_ids', 'labels'],
};

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
    case 'review': {
      const name = form.runName.trim() === '' ? null : runNameProblem(form.runName);
      return [
        ...WIZARD_STEPS.filter((s) => s !== 'review').flatMap((s) => stepProblems(s, form, facts)),
        ...(name ? [`Run name: ${name}`] : []),
      ];
    }
  }
}

function modelProblems(form: WizardForm, facts: WizardFacts): string[] {
  if (form.modelSource === 'local' && form.modelFolder.trim() === '') return ['Enter the path of a model folder.'];
  if (form.modelSource === 'hub' && !/^[\w.-]+\/[\w.-]+$/.test(form.hubRepo.trim()))
    return ['Enter a Hub model id as org/name.'];
  if (facts.model && !facts.model.supported)
    return [`This model cannot be trained here: ${facts.model.reason ?? 'unsupported'}.`];
  if (form.modelSource === 'hub' && facts.modelDir === null) return ['Download the model first.'];
  if (facts.modelDir === null || facts.model === null) return ['Check the model first.'];
  return [];
}

function dataProblems(form: WizardForm, facts: WizardFacts): string[] {
  if (form.dataSource === 'file' && form.dataFile.trim() === '') return ['Enter the path of a data file.'];
  const dataset = facts.dataset;
  if (dataset === null || facts.dataFile === null) return ['Check the data file first.'];
  if (dataset.format === null || dataset.stats === null)
    return ['No row of this file can be trained on; see the bad rows below.'];
  if (dataset.badRows.length > 0 && !form.skipBadRows) {
    return [
      `${dataset.badRows.length} bad ${dataset.badRows.length === 1 ? 'row' : 'rows'}: fix the file, or choose to skip them.`,
    ];
  }
  return [];
}

/** A problem as the wizard says it: the field's label, then what is wrong. */
export function describeProblem({ field, message }: FieldProblem): string {
  return `${(JOB_FIELDS as Record<string, FieldNames>)[field]?.label ?? field}: ${message}`;
}

/**
 * An error from the main process as the wizard says it: a UserError about a job field starts with the field's label.
 */
export function describeError(err: unknown): string {
  const field = (err as { field?: unknown } | null)?.field;
  return typeof field === 'string' ? describeProblem({ field, message: errorMessage(err) }) : errorMessage(err);
}

/** The Settings step's problems: the job the form makes, checked by the one schema, each named by its label. */
export function settingsProblems(form: WizardForm): string[] {
  return jobProblems(toTrainJob(form, DRAFT_PATHS)).map(describeProblem);
}

/**
 * The same problems by job field path (`lora.rank`), for the Settings step to say each beside its field: the schema's
 * issue path is the field's path, since the form maps one to one onto the job.
 */
export function settingsFieldProblems(form: WizardForm): Partial<Record<JobField, string>> {
  return Object.fromEntries(jobProblems(toTrainJob(form, DRAFT_PATHS)).map((p) => [p.field, p.message]));
}

/** The name a run gets when the Review step's name is left empty (the main process names it the same way). */
export function suggestedRunName(facts: WizardFacts, now: Date): string | null {
  return facts.modelDir && facts.dataFile
    ? defaultRunName({ modelDir: facts.modelDir, dataFile: facts.dataFile }, now)
    : null;
}

/** The memory plan's view of the form (models.fit). */
export function fitConfig(form: WizardForm, modelDir: string): FitConfig {
  return { modelDir, ...catalogueFitConfig(form) };
}

/** The form's training settings without a model, which the catalogue of known models is planned with. */
export function catalogueFitConfig(form: WizardForm): CatalogueFitConfig {
  const job = toTrainJob(form, DRAFT_PATHS);
  return {
    method: job.method,
    lora: { rank: job.lora.rank, targets: job.lora.targets },
    promptTuning: { numVirtualTokens: job.promptTuning.numVirtualTokens },
    optimizer: { name: job.optimizer.name },
    batchSize: job.batchSize,
    maxSeqLen: job.maxSeqLen,
    gradientCheckpointing: job.gradientCheckpointing,
    device: job.device,
    quantize: job.quantize,
  };
}

/** A catalogue table cell in a word or two: fits as chosen, the one change that makes it fit, or no. */
export function catalogueCellText(cell: CatalogueFitCell): string {
  if (cell.verdict === 'fits') return 'fits';
  return cell.verdict === 'change' ? cell.change! : 'no';
}

/** The cell's tooltip: what the plan says, with the planned peak against the budget. */
export function catalogueCellTitle(cell: CatalogueFitCell): string {
  const peak = `peak ${formatBytes(cell.plannedBytes)} of ${formatBytes(cell.budgetBytes)}`;
  if (cell.verdict === 'fits') return `Fits as chosen: ${peak}`;
  if (cell.verdict === 'change') return `Fits with ${cell.changeDetail}: ${peak}`;
  return `Does not fit, and no single change makes it: peak ${formatBytes(cell.plannedBytes)} as chosen`;
}

/** A fresh adapter folder under the studio's home, named by the time the run was created. */
export function adapterOutDir(home: string, platform: string, now: Date): string {
  const separator = platform === 'win32' ? '\\' : '/';
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  return [home.replace(/[\\/]+$/, ''), 'adapters', `run-${stamp}`].join(separator);
}

/**
 * The defaults, with what the form holds; the settings of the method not chosen stay the defaults. heldOutFile: the
 * validation rows the data comes with (the demo's), held out instead of a random split when the form asks for one.
 */
export function toTrainJob(form: WizardForm, paths: JobPaths, heldOutFile: string | null = null): TrainJob {
  const job = defaultTrainJob(form.method, paths);
  return {
    ...job,
    data: dataSettings(form),
    lora:
      form.method === 'lora'
        ? { ...job.lora, rank: form.rank, alpha: form.alpha, dropout: form.loraDropout, targets: [...form.targets] }
        : job.lora,
    promptTuning:
      form.method === 'prompt-tuning'
        ? {
            numVirtualTokens: form.numVirtualTokens,
            ...(form.promptInitText.trim()
              ? { init: 'text' as const, initText: form.promptInitText }
              : { init: 'random' as const, initText: null }),
          }
        : job.promptTuning,
    optimizer: {
      ...job.optimizer,
      learningRate: form.learningRate,
      scheduler: form.scheduler,
      warmupSteps: form.warmupSteps,
    },
    // An emptied field is null, which for steps would mean "the epochs decide": it is no number instead.
    steps: form.budget === 'steps' ? (form.steps ?? NaN) : null,
    epochs: form.budget === 'epochs' ? form.epochs : job.epochs,
    batchSize: form.batchSize,
    gradAccum: form.gradAccum,
    maxSeqLen: form.maxSeqLen,
    seed: form.seed,
    keepBest: form.keepBest,
    earlyStoppingPatience: form.earlyStoppingPatience,
    gradientCheckpointing: form.gradientCheckpointing,
    quantize: form.quantize,
    device: form.device,
    ...(heldOutFile !== null && form.evalSplit > 0
      ? { evalDataFile: heldOutFile, evalSplit: 0 }
      : { evalSplit: form.evalSplit }),
    // Validate about ten times a run so the chart shows a validation curve beside the training one.
    evalEvery: form.evalSplit > 0 && form.budget === 'steps' ? Math.max(1, Math.round(form.steps / 10)) : job.evalEvery,
  };
}
