// The typed contract of a training job: what the CLI, the renderer and the engine worker exchange.
// Pure TypeScript: no Node, no DOM.
import type { DatasetStats } from './data.js';
import type { WireError } from './errors.js';

export type DeviceChoice = 'auto' | 'cpu' | 'webgpu' | 'cuda' | 'dml';
/** Frozen base weights as the checkpoint has them, or quantized to 4 bits on load (QLoRA; bitsandbytes' formats). */
export type QuantizeChoice = 'none' | 'nf4' | 'fp4' | 'int4';
export type ExecutionDevice = Exclude<DeviceChoice, 'auto'>;
export type OptimizerName = 'adamw' | 'sgd';
export type SchedulerName = 'constant' | 'linear' | 'cosine';

/** The projections a LoRA adapter may target, by their PEFT module names. */
export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
  /** PEFT module names, from LORA_TARGETS. */
  targets: string[];
  /** Scale alpha / sqrt(r) instead of alpha / r. */
  useRslora: boolean;
}

export interface OptimizerSettings {
  name: OptimizerName;
  learningRate: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** SGD momentum (0 = plain SGD). */
  momentum: number;
  scheduler: SchedulerName;
  warmupSteps: number;
  /** Global-norm gradient clipping; 0 turns it off. */
  maxGradNorm: number;
}

export type AdapterMethod = 'lora' | 'prompt-tuning';

export interface PromptTuningSettings {
  numVirtualTokens: number;
  /** random: N(0, 1) as PEFT; text: embeddings of `initText`'s tokens, repeated or cut to numVirtualTokens. */
  init: 'random' | 'text';
  initText: string | null;
}

/** Row layouts the dataset pipeline reads (detected when null). */
export type DataFormat = 'messages' | 'sharegpt' | 'alpaca' | 'prompt-completion' | 'text' | 'tokens';

export interface DataSettings {
  format: DataFormat | null;
  /** Field to column renames, e.g. { prompt: 'question', completion: 'answer' }. */
  columns: Record<string, string>;
  /** completion: loss on assistant turns and completions only; all: on every token. */
  trainOn: 'completion' | 'all';
  /** Several short samples per sequence, attention kept within each. */
  pack: boolean;
  /** Train without malformed rows instead of refusing the dataset. */
  skipBadRows: boolean;
  /** Train on each distinct row once: rows whose rendered tokens and labels equal an earlier row's are skipped. */
  dropDuplicates: boolean;
  /** A Jinja chat template file that chat rows are rendered with instead of the model's own (null: the model's). */
  chatTemplate: string | null;
}

export interface TrainJob {
  method: AdapterMethod;
  modelDir: string;
  dataFile: string;
  data: DataSettings;
  outDir: string;
  lora: LoraSettings;
  promptTuning: PromptTuningSettings;
  optimizer: OptimizerSettings;
  /** Optimizer steps; when null, `epochs` decides. */
  steps: number | null;
  epochs: number;
  batchSize: number;
  gradAccum: number;
  maxSeqLen: number;
  seed: number;
  shuffle: boolean;
  gradientCheckpointing: boolean;
  /**
   * 4-bit base weights: `nf4`/`fp4` quantize a full-precision checkpoint on load (cached, with double quantization),
   * `int4` to llama.cpp's Q4_0 values, which generation multiplies by directly (the fastest to chat with); a
   * checkpoint that is already 4-bit is used as it is with `none`.
   */
  quantize: QuantizeChoice;
  device: DeviceChoice;
  /** CPU threads for each engine operator (ONNX Runtime's intra-op pool); null = every core this machine offers. */
  threads: number | null;
  /** Continue from this PEFT LoRA adapter; its r, alpha, targets and rsLoRA setting win. */
  initAdapterDir: string | null;
  /** Validation data: its own file, or this fraction of the training data held out (0 = none). */
  evalDataFile: string | null;
  evalSplit: number;
  /** Validate every N optimizer steps (0 = only after the last step). */
  evalEvery: number;
  /**
   * Checkpoint every N optimizer steps and after the last (0 = only after the last), when the run has a checkpoint
   * folder.
   */
  checkpointEvery: number;
  /** How many of the newest checkpoints to keep. */
  keepCheckpoints: number;
  /** The adapter written is the validated step with the lowest validation loss, not the last step. */
  keepBest: boolean;
  /** Stop early once this many steps passed without a lower validation loss (0: never). */
  earlyStoppingPatience: number;
  /**
   * Write into an output folder that holds an adapter PEFT Studio wrote for another run, replacing its files (anything
   * else there stays). Any other folder that is not empty is refused all the same.
   */
  overwriteOutput?: boolean;
}

/** Events the engine streams while it works. */
export type EngineEvent =
  | { type: 'log'; message: string }
  | { type: 'compile'; done: number; total: number }
  /** Base weights quantized to 4 bits, tensor by tensor (`cached`: an earlier run's copy was reused). */
  | { type: 'quantize'; done: number; total: number; cached: boolean }
  /** The device the engine runs on, and the CPU threads of each of its operators. */
  | { type: 'device'; device: ExecutionDevice; reason: string; threads: number }
  /** A dataset file was read: what it is, for the record of the run. */
  | { type: 'dataset'; role: 'train' | 'eval'; file: string; format: DataFormat; sha256: string; stats: DatasetStats }
  | { type: 'eval'; step: number; loss: number; perplexity: number; tokens: number }
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      loss: number;
      learningRate: number;
      gradNorm: number;
      tokens: number;
      tokensPerSecond: number;
      elapsedSeconds: number;
      memoryBytes: number;
    }
  /** A checkpoint of `step` is on disk; `kept` are all the checkpoint folders now kept, oldest first. */
  | { type: 'checkpoint'; step: number; kept: { step: number; folder: string }[] }
  /** Training continues after step `step` from `folder` (steps after it are recomputed). */
  | { type: 'resumed'; step: number; folder: string };

export interface TrainResult {
  status: 'completed';
  adapterDir: string;
  steps: number;
  finalLoss: number;
  /** Validation loss after the last step, when validation data was given. */
  evalLoss: number | null;
  tokens: number;
  tokensPerSecond: number;
  seconds: number;
  device: ExecutionDevice;
}

/** A run paused on request: its checkpoint of `step` is written and the device is free. */
export interface TrainPaused {
  status: 'paused';
  step: number;
}

export interface EvalJob {
  modelDir: string;
  adapterDir: string | null;
  dataFile: string;
  data: DataSettings;
  batchSize: number;
  maxSeqLen: number;
  /** As TrainJob.quantize. */
  quantize: QuantizeChoice;
  device: DeviceChoice;
  /** As TrainJob.threads. */
  threads: number | null;
}

export interface EvalResult {
  loss: number;
  tokens: number;
  perplexity: number;
}

export interface BenchJob {
  modelDir: string;
  seqLen: number;
  batchSize: number;
  steps: number;
  rank: number;
  gradientCheckpointing: boolean;
  /** As TrainJob.quantize. */
  quantize: QuantizeChoice;
  device: DeviceChoice;
  /** As TrainJob.threads. */
  threads: number | null;
}

export interface BenchResult {
  device: ExecutionDevice;
  threads: number;
  tokensPerSecond: number;
  secondsPerStep: number;
  /** Peak resident memory of the process that ran the benchmark. */
  peakRssBytes: number;
  loadSeconds: number;
  gradientCheckpointing: boolean;
}

/** A request to the engine worker; each kind has its own result type. */
export type EngineRequest =
  | { kind: 'train'; job: TrainJob; checkpointDir: string | null; resume: boolean }
  | { kind: 'eval'; job: EvalJob }
  | { kind: 'bench'; job: BenchJob };

export interface EngineResults {
  train: TrainResult | TrainPaused;
  eval: EvalResult;
  bench: BenchResult;
}

/**
 * What the host may tell the engine while it works: pause = checkpoint after the current step, then stop; stop = end
 * the run after the current step and write its adapter as the weights are then (validated first).
 */
export type EngineControl = { type: 'pause' } | { type: 'stop' };

/** What the engine worker posts back: events while it works, then exactly one result or error. */
export type EngineReply =
  | { type: 'event'; event: EngineEvent }
  | { type: 'result'; result: EngineResults[EngineRequest['kind']] }
  | { type: 'error'; error: WireError };

/** Where a training step's peak memory goes, in bytes (main/engine/compile/memoryPlan.ts says how each is counted). */
export interface MemoryParts {
  weights: number;
  checkpoints: number;
  layerWorkingSet: number;
  logits: number;
  optimizerState: number;
  runtime: number;
}
