// One TrainJob for every front end: the default of every field (each with why), the bounds of every number, the
// schema that checks a job against them, and each field's CLI flag and GUI label. The CLI starts from
// defaultTrainJob and sets the flags it was given, the wizard sets what its form holds, the demo sets its recipe; all
// check the result with trainJobSchema, as the studio API checks runs.start. A problem's field path becomes the
// flag's name in the CLI and the field's label in the GUI. Pure TypeScript plus zod.
import { z } from 'zod';
import { fieldProblems, type FieldProblem } from './errors.js';
import {
  LORA_TARGETS,
  type AdapterMethod,
  type DataFormat,
  type DataSettings,
  type DeviceChoice,
  type OptimizerName,
  type QuantizeChoice,
  type SchedulerName,
  type TrainJob,
} from './training.js';

export const ADAPTER_METHODS = ['lora', 'prompt-tuning'] as const satisfies readonly AdapterMethod[];
export const DEVICE_CHOICES = ['auto', 'cpu', 'webgpu', 'cuda', 'dml'] as const satisfies readonly DeviceChoice[];
export const QUANTIZE_CHOICES = ['none', 'nf4', 'fp4', 'int4'] as const satisfies readonly QuantizeChoice[];
export const DATA_FORMATS = [
  'messages',
  'sharegpt',
  'alpaca',
  'prompt-completion',
  'text',
  'tokens',
] as const satisfies readonly DataFormat[];
export const OPTIMIZERS = ['adamw', 'sgd'] as const satisfies readonly OptimizerName[];
export const SCHEDULERS = ['constant', 'linear', 'cosine'] as const satisfies readonly SchedulerName[];

/** The files a job reads and writes: the user's choice, never defaulted here. */
export interface JobPaths {
  modelDir: string;
  dataFile: string;
  outDir: string;
}

export function defaultDataSettings(): DataSettings {
  return {
    format: null, // detected from the first good rows
    columns: {}, // each format's own column names
    trainOn: 'completion', // loss on what the model should say, not on the prompts it is given
    pack: false, // one row per sequence: packing is an opt-in that changes what a step sees
    skipBadRows: false, // a malformed row is the user's to see before any training
    dropDuplicates: false, // repeated rows are the user's to see, counted and warned about, before they go
    chatTemplate: null, // the model's own, as its chat users will talk to it
  };
}

/** The defaults of every field: what a flag not given, or a field the wizard does not show, becomes. */
export function defaultTrainJob(method: AdapterMethod, paths: JobPaths): TrainJob {
  return {
    method,
    modelDir: paths.modelDir,
    dataFile: paths.dataFile,
    data: defaultDataSettings(),
    outDir: paths.outDir,
    lora: {
      rank: 16, // PEFT's examples and most recipes start here
      alpha: 32, // twice the rank: the usual update scale of 2
      dropout: 0.05, // the common light regularisation of LoRA recipes
      // the attention projections; the MLP learns more at more memory
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      useRslora: false, // PEFT's default; rsLoRA only matters at large ranks
    },
    promptTuning: {
      numVirtualTokens: 20, // PEFT's prompt-tuning examples use 20
      init: 'random', // as PEFT's default (N(0, 1)); text needs a prompt the user writes
      initText: null,
    },
    optimizer: {
      name: 'adamw', // the optimizer every LoRA recipe uses
      // Soft prompts need far larger steps than LoRA weights (PEFT's examples use 3e-2).
      learningRate: method === 'lora' ? 2e-4 : 3e-2,
      weightDecay: 0, // LoRA weights start at or near zero: there is little to decay
      beta1: 0.9, // torch.optim.AdamW's betas and eps
      beta2: 0.999,
      eps: 1e-8,
      momentum: 0, // SGD only: plain SGD unless asked
      // The Hugging Face Trainer's default: the rate falls to zero at the last step, so a run ends on small steps
      // instead of stopping mid-stride (and a too-high rate does less harm late).
      scheduler: 'linear',
      warmupSteps: 0, // adapters start as a no-op (B = 0): no early instability to warm up through
      maxGradNorm: 1, // the Trainer's default clipping
    },
    steps: null, // one pass over the data decides the length
    epochs: 1, // a first run should not memorise: more passes are the user's choice
    batchSize: 4, // fits a laptop CPU or a small GPU with the default sequence length
    gradAccum: 1,
    maxSeqLen: 512, // most chat rows fit; longer rows are cut, and counted
    seed: 0, // the same run twice gives the same losses
    shuffle: true,
    gradientCheckpointing: true, // a third slower, a fraction of the memory: fitting matters more on a laptop
    quantize: 'none', // the checkpoint's own precision; 4-bit when the memory plan says it must
    device: 'auto', // the fastest device this machine has
    threads: null, // every core: a second pool beside training only slows both
    initAdapterDir: null,
    evalDataFile: null,
    evalSplit: 0, // no rows held out unless asked: small datasets need every row
    evalEvery: 0, // validation after the last step only
    checkpointEvery: 50, // a crash or pause loses at most 50 steps
    keepCheckpoints: 3, // a few to go back to, without filling the disk
    keepBest: false, // the last step, as every trainer does unless asked
    earlyStoppingPatience: 0, // the steps asked for are the steps run
    overwriteOutput: false, // a folder holding another run's adapter is refused unless asked
  };
}

/** A number field's allowed values: `min` and `max` include the bound, `above` and `below` leave it out. */
export interface NumberBounds {
  integer: boolean;
  min?: number;
  above?: number;
  max?: number;
  below?: number;
}

/** The RNG keeps 32 bits of the seed (main/util/random.ts): a larger seed would repeat a smaller one's run. */
export const MAX_SEED = 2 ** 32 - 1;

/** The most CPU threads a job or a setting may ask for. */
export const MAX_THREADS = 256;

/** Every number of a TrainJob, by field path. */
export const JOB_BOUNDS = {
  // Past 512 an update is no longer low-rank for the models this engine trains, and costs as much as the weights.
  'lora.rank': { integer: true, min: 1, max: 512 },
  // The update is scaled by alpha / r: 0 turns it off, a negative alpha flips it.
  'lora.alpha': { integer: false, above: 0 },
  'lora.dropout': { integer: false, min: 0, below: 1 },
  // Virtual tokens come before every row: 512 already doubles a default-length sequence.
  'promptTuning.numVirtualTokens': { integer: true, min: 1, max: 512 },
  // A step as large as the weights themselves diverges with either optimizer.
  'optimizer.learningRate': { integer: false, above: 0, max: 1 },
  'optimizer.weightDecay': { integer: false, min: 0 },
  // Moment decay rates: 1 would never forget, and divides by zero in Adam's bias correction.
  'optimizer.beta1': { integer: false, min: 0, below: 1 },
  'optimizer.beta2': { integer: false, min: 0, below: 1 },
  'optimizer.eps': { integer: false, above: 0 },
  'optimizer.momentum': { integer: false, min: 0, below: 1 },
  'optimizer.warmupSteps': { integer: true, min: 0 },
  'optimizer.maxGradNorm': { integer: false, min: 0 },
  steps: { integer: true, min: 1 },
  epochs: { integer: true, min: 1 },
  batchSize: { integer: true, min: 1 },
  gradAccum: { integer: true, min: 1 },
  // A trained token needs one before it; 2^20 is past the longest context of any supported model (Qwen2.5-1M's
  // 1,010,000).
  maxSeqLen: { integer: true, min: 2, max: 2 ** 20 },
  seed: { integer: true, min: 0, max: MAX_SEED },
  // At most half held out: the rest must still be enough to train on.
  evalSplit: { integer: false, min: 0, max: 0.5 },
  evalEvery: { integer: true, min: 0 },
  checkpointEvery: { integer: true, min: 0 },
  earlyStoppingPatience: { integer: true, min: 0 },
  keepCheckpoints: { integer: true, min: 1 },
  // ONNX Runtime's pool: more threads than any desktop has cores only adds switching.
  threads: { integer: true, min: 1, max: MAX_THREADS },
} as const satisfies Record<string, NumberBounds>;

export type JobNumberField = keyof typeof JOB_BOUNDS;

/** A number checked against its bounds, each refusal said in words a CLI flag or a GUI label can stand before. */
export function numberSchema(bounds: NumberBounds): z.ZodNumber {
  let schema = z.number({ error: 'must be a number' });
  // zod's int() also refuses integers past 2^53, where doubles skip whole numbers.
  if (bounds.integer)
    schema = schema.int({
      error: (issue) =>
        issue.code === 'invalid_type'
          ? 'must be a whole number'
          : `must be a whole number of at most ${Number.MAX_SAFE_INTEGER}`,
    });
  if (bounds.min !== undefined) schema = schema.min(bounds.min, `must be at least ${bounds.min}`);
  if (bounds.above !== undefined) schema = schema.gt(bounds.above, `must be above ${bounds.above}`);
  if (bounds.max !== undefined) schema = schema.max(bounds.max, `must be at most ${bounds.max}`);
  if (bounds.below !== undefined) schema = schema.lt(bounds.below, `must be below ${bounds.below}`);
  return schema;
}

/** The attributes of a number input for a bounded field (the schema still checks what is typed). */
export function inputRange(bounds: NumberBounds): { min?: number; max?: number; step: number | 'any' } {
  return { min: bounds.min ?? bounds.above, max: bounds.max ?? bounds.below, step: bounds.integer ? 1 : 'any' };
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `must be one of ${values.join(', ')}` });
}

const bounded = (field: JobNumberField) => numberSchema(JOB_BOUNDS[field]);
const yesNo = z.boolean({ error: 'must be true or false' });

// Longer than any real path (Linux's PATH_MAX is 4096); Node's fs throws a TypeError on a NUL byte.
export const pathSchema = z
  .string({ error: 'must be a path' })
  .min(1, 'must not be empty')
  .max(4096, 'must be at most 4096 characters')
  .refine((p) => !p.includes('\0'), 'a path cannot contain a NUL byte');

// Checked as strings, not an enum: the types stay string[] for the UI's forms.
export const loraTargetsSchema = z
  .array(
    z.string().refine((name) => (LORA_TARGETS as readonly string[]).includes(name), {
      error: (issue) => `unknown LoRA target ${JSON.stringify(issue.input)}; allowed: ${LORA_TARGETS.join(', ')}`,
    }),
    { error: 'must be a list of module names' },
  )
  .min(1, 'choose at least one module');

/** Tokens per sequence: also what a dataset inspection cuts rows at. */
export const seqLenSchema = bounded('maxSeqLen');

export const dataSettingsSchema: z.ZodType<DataSettings> = z.strictObject({
  format: oneOf(DATA_FORMATS).nullable(),
  columns: z.record(z.string(), z.string()),
  trainOn: oneOf(['completion', 'all']),
  pack: yesNo,
  skipBadRows: yesNo,
  dropDuplicates: yesNo.default(false), // jobs recorded before it existed trained on every row
  chatTemplate: pathSchema.nullable().default(null), // and with the model's own template
});

export const trainJobSchema: z.ZodType<TrainJob> = z
  .strictObject({
    method: oneOf(ADAPTER_METHODS),
    modelDir: pathSchema,
    dataFile: pathSchema,
    data: dataSettingsSchema,
    outDir: pathSchema,
    lora: z.strictObject({
      rank: bounded('lora.rank'),
      alpha: bounded('lora.alpha'),
      dropout: bounded('lora.dropout'),
      targets: loraTargetsSchema,
      useRslora: yesNo,
    }),
    promptTuning: z.strictObject({
      numVirtualTokens: bounded('promptTuning.numVirtualTokens'),
      init: oneOf(['random', 'text']),
      initText: z.string().nullable(),
    }),
    optimizer: z.strictObject({
      name: oneOf(OPTIMIZERS),
      learningRate: bounded('optimizer.learningRate'),
      weightDecay: bounded('optimizer.weightDecay'),
      beta1: bounded('optimizer.beta1'),
      beta2: bounded('optimizer.beta2'),
      eps: bounded('optimizer.eps'),
      momentum: bounded('optimizer.momentum'),
      scheduler: oneOf(SCHEDULERS),
      warmupSteps: bounded('optimizer.warmupSteps'),
      maxGradNorm: bounded('optimizer.maxGradNorm'),
    }),
    steps: bounded('steps').nullable(),
    epochs: bounded('epochs'),
    batchSize: bounded('batchSize'),
    gradAccum: bounded('gradAccum'),
    maxSeqLen: seqLenSchema,
    seed: bounded('seed'),
    shuffle: yesNo,
    gradientCheckpointing: yesNo,
    quantize: oneOf(QUANTIZE_CHOICES).default('none'), // jobs recorded before 4-bit bases existed have none
    device: oneOf(DEVICE_CHOICES),
    threads: bounded('threads').nullable(),
    initAdapterDir: pathSchema.nullable(),
    evalDataFile: pathSchema.nullable(),
    evalSplit: bounded('evalSplit'),
    evalEvery: bounded('evalEvery'),
    checkpointEvery: bounded('checkpointEvery'),
    keepCheckpoints: bounded('keepCheckpoints'),
    keepBest: yesNo.default(false), // jobs recorded before it existed kept the last step
    earlyStoppingPatience: bounded('earlyStoppingPatience').default(0),
    overwriteOutput: yesNo.optional(),
  })
  .superRefine((job, context) => {
    if (job.promptTuning.init === 'text' && !job.promptTuning.initText) {
      context.addIssue({
        code: 'custom',
        path: ['promptTuning', 'initText'],
        message: 'needed to start the prompt from text',
      });
    }
    // The best step and early stopping follow the validation loss, measured during the run.
    const validated = job.evalDataFile !== null || job.evalSplit > 0;
    for (const [field, asked] of [
      ['keepBest', job.keepBest],
      ['earlyStoppingPatience', job.earlyStoppingPatience > 0],
    ] as const) {
      if (asked && (!validated || job.evalEvery === 0))
        context.addIssue({
          code: 'custom',
          path: [field],
          message: 'needs validation during the run: a validation split or file, and validation every N steps',
        });
    }
    // Validation data comes from one place: its own file, or rows held out of the training data.
    if (job.evalDataFile !== null && job.evalSplit > 0) {
      context.addIssue({
        code: 'custom',
        path: ['evalSplit'],
        message: 'must be 0 when there is a validation data file',
      });
    }
  });

/** How each front end names a field: its CLI flag (null where the CLI has none) and its GUI label. */
export interface FieldNames {
  flag: string | null;
  label: string;
}

/** Every field of a TrainJob, by path: one table for the CLI's flags and the GUI's labels. */
export const JOB_FIELDS = {
  method: { flag: '--method', label: 'Method' },
  modelDir: { flag: '--model', label: 'Model folder' },
  dataFile: { flag: '--data', label: 'Data file' },
  'data.format': { flag: '--format', label: 'Data format' },
  'data.columns': { flag: '--columns', label: 'Columns' },
  'data.trainOn': { flag: '--train-on', label: 'Train on' },
  'data.pack': { flag: '--pack', label: 'Packing' },
  'data.skipBadRows': { flag: '--skip-bad-rows', label: 'Skip bad rows' },
  'data.dropDuplicates': { flag: '--drop-duplicates', label: 'Drop duplicate rows' },
  'data.chatTemplate': { flag: '--chat-template', label: 'Chat template' },
  outDir: { flag: '--out', label: 'Adapter folder' },
  'lora.rank': { flag: '--rank', label: 'LoRA rank' },
  'lora.alpha': { flag: '--alpha', label: 'LoRA alpha' },
  'lora.dropout': { flag: '--lora-dropout', label: 'LoRA dropout' },
  'lora.targets': { flag: '--targets', label: 'Target modules' },
  'lora.useRslora': { flag: '--rslora', label: 'rsLoRA' },
  'promptTuning.numVirtualTokens': { flag: '--num-virtual-tokens', label: 'Virtual tokens' },
  'promptTuning.init': { flag: '--prompt-init', label: 'Prompt initialisation' },
  'promptTuning.initText': { flag: '--prompt-init-text', label: 'Initial prompt text' },
  'optimizer.name': { flag: '--optimizer', label: 'Optimizer' },
  'optimizer.learningRate': { flag: '--lr', label: 'Learning rate' },
  'optimizer.weightDecay': { flag: '--weight-decay', label: 'Weight decay' },
  'optimizer.beta1': { flag: null, label: 'Adam beta1' },
  'optimizer.beta2': { flag: null, label: 'Adam beta2' },
  'optimizer.eps': { flag: null, label: 'Adam epsilon' },
  'optimizer.momentum': { flag: null, label: 'SGD momentum' },
  'optimizer.scheduler': { flag: '--scheduler', label: 'Learning-rate schedule' },
  'optimizer.warmupSteps': { flag: '--warmup-steps', label: 'Warm-up steps' },
  'optimizer.maxGradNorm': { flag: '--max-grad-norm', label: 'Gradient clipping' },
  steps: { flag: '--steps', label: 'Steps' },
  epochs: { flag: '--epochs', label: 'Epochs' },
  batchSize: { flag: '--batch-size', label: 'Batch size' },
  gradAccum: { flag: '--grad-accum', label: 'Gradient accumulation' },
  maxSeqLen: { flag: '--max-seq-len', label: 'Max sequence length' },
  seed: { flag: '--seed', label: 'Seed' },
  shuffle: { flag: '--no-shuffle', label: 'Shuffle' },
  gradientCheckpointing: { flag: '--gradient-checkpointing', label: 'Gradient checkpointing' },
  quantize: { flag: '--quantize', label: 'Quantize base weights' },
  device: { flag: '--device', label: 'Device' },
  threads: { flag: '--threads', label: 'CPU threads' },
  initAdapterDir: { flag: '--init-adapter', label: 'Adapter to continue' },
  evalDataFile: { flag: '--eval-data', label: 'Validation data file' },
  evalSplit: { flag: '--eval-split', label: 'Validation split' },
  evalEvery: { flag: '--eval-every', label: 'Validate every' },
  checkpointEvery: { flag: '--checkpoint-every', label: 'Checkpoint every' },
  keepCheckpoints: { flag: '--keep-checkpoints', label: 'Checkpoints kept' },
  keepBest: { flag: '--keep-best', label: 'Keep the best validation step' },
  earlyStoppingPatience: { flag: '--early-stopping-patience', label: 'Early stopping patience (steps)' },
  overwriteOutput: { flag: '--overwrite', label: 'Overwrite the adapter' },
} as const satisfies Record<string, FieldNames>;

/** Everything wrong with a job, one problem per field, in the order of its fields; empty when it may run. */
export function jobProblems(job: unknown): FieldProblem[] {
  const checked = trainJobSchema.safeParse(job);
  return checked.success ? [] : fieldProblems(checked.error.issues, Object.keys(JOB_FIELDS));
}

/** The `peft-studio train` arguments that make a job again, and the settings no flag can give. */
export interface TrainCommand {
  args: string[];
  /** Non-default settings no flag can give (Adam's betas and epsilon, SGD momentum), each as "label value". */
  unexpressed: string[];
}

/**
 * `job` as `peft-studio train` arguments: the paths, then every setting that differs from the method's defaults, by
 * its flag in JOB_FIELDS (so a field added there is covered here). Settings of the other method are left out.
 */
export function trainCommand(job: TrainJob): TrainCommand {
  const defaults = defaultTrainJob(job.method, job);
  const args: string[] = [];
  const unexpressed: string[] = [];
  const otherMethod = job.method === 'lora' ? 'promptTuning.' : 'lora.';
  for (const [field, { flag, label }] of Object.entries(JOB_FIELDS)) {
    if (field.startsWith(otherMethod)) continue;
    const value = jobFieldValue(job, field);
    // The paths always; the method when it is not the CLI's own default.
    const always = ['modelDir', 'dataFile', 'outDir'].includes(field) || (field === 'method' && value !== 'lora');
    if (!always && JSON.stringify(value) === JSON.stringify(jobFieldValue(defaults, field))) continue;
    if (flag === null) unexpressed.push(`${label} ${String(value)}`);
    else args.push(...flagArguments(flag, value));
  }
  return { args, unexpressed };
}

/** The value of one JOB_FIELDS path (`optimizer.learningRate`) in `job`. */
export function jobFieldValue(job: TrainJob, field: string): unknown {
  return field.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown>)[key], job);
}

function flagArguments(flag: string, value: unknown): string[] {
  if (flag === '--no-shuffle') return value === false ? [flag] : [];
  if (flag === '--gradient-checkpointing') return [flag, value ? 'on' : 'off'];
  if (typeof value === 'boolean') return value ? [flag] : []; // --rslora, --pack, --skip-bad-rows, --drop-duplicates, --overwrite
  // nothing given: no step count, no text to start from, every core... (undefined: a job from before the field)
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return [flag, value.join(',')];
  if (typeof value === 'object') return [flag, columnsArgument(value as Record<string, string>)];
  return [flag, String(value)];
}

/** A column mapping as `--columns` takes it: field=column pairs separated by commas. */
export function columnsArgument(columns: Record<string, string>): string {
  return Object.entries(columns)
    .map(([field, column]) => `${field}=${column}`)
    .join(',');
}

/** Arguments as one line a POSIX shell reads back as they are: quoted where they need it. */
export function shellLine(args: readonly string[]): string {
  return args.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
}
