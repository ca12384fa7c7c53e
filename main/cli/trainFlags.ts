// `peft-studio train`'s flags as a TrainJob: shared/trainJob.ts's defaults with each flag given set over them, then
// checked by the one schema, a refused value named by its flag. Reads no file: the engine checks the paths.
import path from 'node:path';
import { defaultTrainJob, jobProblems } from '../../shared/trainJob.js';
import type {
  AdapterMethod,
  DeviceChoice,
  QuantizeChoice,
  OptimizerName,
  PromptTuningSettings,
  SchedulerName,
  TrainJob,
} from '../../shared/training.js';
import { DEMO_DATA_FILE, DEMO_MODEL_DIR } from '../demo.js';
import { DATA_FLAGS, dataOptions, dataSettings } from './data.js';
import {
  choice,
  flagNumber,
  flagString,
  json,
  refuseProblems,
  str,
  UsageError,
  withGiven,
  type Values,
} from './options.js';

const flag = { type: 'boolean' } as const;

export const TRAIN_OPTIONS = {
  model: str,
  data: str,
  out: str,
  overwrite: flag,
  method: str,
  'num-virtual-tokens': str,
  'prompt-init': str,
  'prompt-init-text': str,
  rank: str,
  alpha: str,
  'lora-dropout': str,
  targets: str,
  rslora: flag,
  lr: str,
  optimizer: str,
  'weight-decay': str,
  scheduler: str,
  'warmup-steps': str,
  steps: str,
  epochs: str,
  'batch-size': str,
  'grad-accum': str,
  'max-seq-len': str,
  'max-grad-norm': str,
  seed: str,
  'no-shuffle': flag,
  'gradient-checkpointing': str,
  quantize: str,
  device: str,
  threads: str,
  'init-adapter': str,
  'eval-data': str,
  'eval-split': str,
  'eval-every': str,
  ...dataOptions,
  home: str,
  name: str,
  'checkpoint-every': str,
  'keep-checkpoints': str,
  'keep-best': flag,
  'early-stopping-patience': str,
  'dry-run': flag,
  json,
} as const;

export const TRAIN_USAGE = `peft-studio train [--model DIR] [--data FILE] [--out DIR] [--overwrite] [--method lora|prompt-tuning] [--num-virtual-tokens 20] [--prompt-init random|text] [--prompt-init-text TEXT] [--rank 16] [--alpha 32] [--lora-dropout 0.05] [--targets q_proj,k_proj,v_proj,o_proj] [--rslora] [--lr 2e-4] [--optimizer adamw|sgd] [--weight-decay 0] [--scheduler constant|linear|cosine] [--warmup-steps 0] [--steps N | --epochs N] [--batch-size 4] [--grad-accum 1] [--max-seq-len 512] [--max-grad-norm 1.0] [--seed 0] [--no-shuffle] [--gradient-checkpointing on|off] [--quantize none|nf4|fp4|int4] [--device auto|cpu|webgpu|cuda|dml] [--threads N] [--init-adapter DIR] [--eval-data FILE | --eval-split 0.1] [--eval-every N] [--home DIR] [--name TEXT] [--checkpoint-every 50] [--keep-checkpoints 3] [--keep-best] [--early-stopping-patience N] ${DATA_FLAGS} [--dry-run] [--json]`;

/**
 * The job the flags ask for; without --model or --data, the built-in demo's. Throws a UsageError naming the first bad
 * flag.
 */
export function trainJobFromFlags(values: Values): TrainJob {
  if (values.steps !== undefined && values.epochs !== undefined)
    throw new UsageError('give --steps or --epochs, not both');
  const n = (name: string) => flagNumber(values, name);
  const resolved = (name: string) => {
    const given = flagString(values, name);
    return given === undefined ? undefined : path.resolve(given);
  };
  // Anything the types do not allow is the schema's to refuse below, named by its flag.
  const given = <T extends string>(name: string) => flagString(values, name) as T | undefined;
  const base = defaultTrainJob(given<AdapterMethod>('method') ?? 'lora', {
    modelDir: resolved('model') ?? DEMO_MODEL_DIR,
    dataFile: resolved('data') ?? DEMO_DATA_FILE,
    outDir: resolved('out') ?? path.resolve('peft-studio-adapter'),
  });
  const initText = flagString(values, 'prompt-init-text');
  const targets = flagString(values, 'targets')
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const checkpointing =
    values['gradient-checkpointing'] === undefined
      ? undefined
      : choice(values, 'gradient-checkpointing', ['on', 'off'] as const, 'on') === 'on';
  const job = withGiven(base, {
    data: dataSettings(values),
    lora: withGiven(base.lora, {
      rank: n('rank'),
      alpha: n('alpha'),
      dropout: n('lora-dropout'),
      targets,
      useRslora: values.rslora === true || undefined,
    }),
    promptTuning: withGiven(base.promptTuning, {
      numVirtualTokens: n('num-virtual-tokens'),
      // A text to start from says how to start.
      init: given<PromptTuningSettings['init']>('prompt-init') ?? (initText === undefined ? undefined : 'text'),
      initText,
    }),
    optimizer: withGiven(base.optimizer, {
      name: given<OptimizerName>('optimizer'),
      learningRate: n('lr'),
      weightDecay: n('weight-decay'),
      scheduler: given<SchedulerName>('scheduler'),
      warmupSteps: n('warmup-steps'),
      maxGradNorm: n('max-grad-norm'),
    }),
    steps: n('steps'),
    epochs: n('epochs'),
    batchSize: n('batch-size'),
    gradAccum: n('grad-accum'),
    maxSeqLen: n('max-seq-len'),
    seed: n('seed'),
    shuffle: values['no-shuffle'] === true ? false : undefined,
    gradientCheckpointing: checkpointing,
    quantize: given<QuantizeChoice>('quantize'),
    device: given<DeviceChoice>('device'),
    threads: n('threads'),
    initAdapterDir: resolved('init-adapter'),
    evalDataFile: resolved('eval-data'),
    evalSplit: n('eval-split'),
    evalEvery: n('eval-every'),
    checkpointEvery: n('checkpoint-every'),
    keepCheckpoints: n('keep-checkpoints'),
    keepBest: values['keep-best'] === true || undefined,
    earlyStoppingPatience: n('early-stopping-patience'),
    // Only ever replaces an adapter PEFT Studio wrote: any other folder that is not empty stays refused.
    overwriteOutput: values.overwrite === true || undefined,
  });
  refuseProblems(jobProblems(job), values);
  return job;
}
