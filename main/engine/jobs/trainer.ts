// The training, evaluation and benchmark jobs: data in, steps of forward/backward/optimizer, adapter out.
// Runs inside the engine worker; everything it has to say goes through `emit`.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../../shared/errors.js';
import type {
  BenchJob,
  BenchResult,
  DataSettings,
  DeviceChoice,
  EngineEvent,
  EvalJob,
  EvalResult,
  ExecutionDevice,
  OptimizerSettings,
  QuantizeChoice,
  TrainJob,
  TrainPaused,
  TrainResult,
} from '../../../shared/training.js';
import {
  checkOutputFolder,
  jobPlaces,
  writeAdapterChatTemplate,
  writeAdapterFolder,
  type AdapterOwner,
} from '../../adapter/adapterFiles.js';
import { loadAdapter } from '../../adapter/anyAdapter.js';
import { initLoraWeights, loraScale, saveLoraAdapter, type LoraWeights } from '../../adapter/loraAdapter.js';
import { savePromptTuningAdapter } from '../../adapter/promptTuningAdapter.js';
import { loadTokenizer } from '../../model/tokenizer.js';
import { readTensorF32 } from '../../model/safetensors.js';
import { fromDataSettings, prepareDataset } from '../../data/dataset.js';
import { batches, countBatches, type TrainingSequence } from '../../data/packing.js';
import type { ModelFolder } from '../../model/modelFolder.js';
import { duplicatesWarning, passesWarning } from '../../../shared/data.js';
import { overfittingWarning } from '../../../shared/runs.js';
import { openBaseModel } from '../../model/quant/quantizeOnLoad.js';
import { quantizedCacheRoot } from '../../store/home.js';
import { Rng } from '../../util/random.js';
import { writeFileAtomic } from '../../util/atomicWrite.js';
import { explainFileError } from '../../util/fileErrors.js';
import { HUB_REPO_ID } from '../../hub/access.js';
import { latestGoodCheckpoint, writeCheckpoint, type BestStep, type TrainingState } from './checkpoint.js';
import { clipGradNorm, createOptimizer, scheduleFactor, type Optimizer } from './optimizer.js';
import { chooseDevice, sessionThreads } from '../runtime/runtime.js';
import { engineThreads } from '../runtime/threads.js';
import {
  countLabelTokens,
  TrainableModel,
  withVirtualTokens,
  type MicroBatch,
  type VirtualTokens,
} from '../runtime/trainableModel.js';

export type Emit = (event: EngineEvent) => void;

/**
 * The model a job runs on: the checkpoint as it is, or its 4-bit copy in the studio's cache (quantized now, or reused
 * when an intact copy of the same checkpoint is there).
 */
function baseFolder(job: { modelDir: string; quantize: QuantizeChoice }, emit: Emit): Promise<ModelFolder> {
  return openBaseModel(job.modelDir, job.quantize, quantizedCacheRoot(), (p) => emit({ type: 'quantize', ...p }));
}

/** Gradient buffers shaped like `weights`, zeroed. */
function zerosLike(weights: LoraWeights): LoraWeights {
  return {
    ...weights,
    layers: weights.layers.map(
      (pairs) =>
        new Map([...pairs].map(([t, p]) => [t, { a: new Float32Array(p.a.length), b: new Float32Array(p.b.length) }])),
    ),
  };
}

/** Every LoRA tensor in a fixed order (layer, target, A then B), for the optimizer. */
export function flatTensors(weights: LoraWeights): Float32Array[] {
  return weights.layers.flatMap((pairs) => [...pairs.values()].flatMap((p) => [p.a, p.b]));
}

/**
 * One optimizer step at a time over the trainable parameters (LoRA weights, or prompt-tuning virtual tokens):
 * forward/backward over the micro-batches, clipping, schedule, update.
 */
export class AdapterStepper {
  readonly grads: LoraWeights;
  private readonly params: Float32Array[];
  private readonly gradTensors: Float32Array[];
  private readonly optimizer: Optimizer;
  private readonly virtualCount: number;

  constructor(
    private readonly model: TrainableModel,
    readonly lora: LoraWeights,
    private readonly settings: OptimizerSettings,
    private readonly totalSteps: number,
    readonly virtual?: VirtualTokens,
  ) {
    this.grads = zerosLike(lora);
    this.params = [...flatTensors(lora), ...(virtual ? [virtual.embeddings] : [])];
    this.gradTensors = [...flatTensors(this.grads), ...(virtual ? [virtual.grad] : [])];
    this.optimizer = createOptimizer(
      settings,
      this.params.map((p) => p.length),
    );
    this.virtualCount = virtual ? virtual.embeddings.length / model.folder.spec.hiddenSize : 0;
  }

  /** The trainable tensors and optimizer state, copied, for a checkpoint. */
  snapshot(): Pick<TrainingState, 'params' | 'optimizerBuffers' | 'optimizerStep'> {
    const { step, buffers } = this.optimizer.state();
    return {
      params: this.params.map((p) => p.slice()),
      optimizerBuffers: buffers.map((b) => b.slice()),
      optimizerStep: step,
    };
  }

  restore(state: Pick<TrainingState, 'params' | 'optimizerBuffers' | 'optimizerStep'>): void {
    if (state.params.length !== this.params.length || state.params.some((p, i) => p.length !== this.params[i].length)) {
      throw new UserError("checkpoint: its adapter tensors do not match this run's adapter");
    }
    this.params.forEach((p, i) => p.set(state.params[i]));
    this.optimizer.loadState({ step: state.optimizerStep, buffers: state.optimizerBuffers });
  }

  /** Runs optimizer step `step` (0-based) on `microBatches`; dropout masks derive from `dropoutKey`. */
  async step(
    step: number,
    microBatches: MicroBatch[],
    dropoutKey: number,
  ): Promise<{ loss: number; gradNorm: number; learningRate: number }> {
    const lossTokens = microBatches.reduce(
      (sum, b) => sum + countLabelTokens(withVirtualTokens(b, this.virtualCount)),
      0,
    );
    for (const g of this.gradTensors) g.fill(0);
    let loss = 0;
    // A step whose micro-batches hold no label token has nothing to learn from: zero gradients, loss 0.
    if (lossTokens > 0) {
      for (let k = 0; k < microBatches.length; k++) {
        loss += await this.model.forwardBackward(
          microBatches[k],
          this.lora,
          this.grads,
          lossTokens,
          dropoutKey * 64 + k,
          this.virtual,
        );
      }
    }
    const gradNorm = clipGradNorm(this.gradTensors, this.settings.maxGradNorm);
    const learningRate =
      this.settings.learningRate *
      scheduleFactor(this.settings.scheduler, step, this.settings.warmupSteps, this.totalSteps);
    this.optimizer.step(this.params, this.gradTensors, learningRate);
    return { loss, gradNorm, learningRate };
  }
}

async function openTrainable(
  folder: ModelFolder,
  lora: LoraWeights | null,
  { device, threads }: EngineDevice,
  checkpointing: boolean,
  emit: Emit,
  virtualTokens = 0,
): Promise<TrainableModel> {
  const settings = lora?.settings;
  return TrainableModel.load(folder, {
    device,
    virtualTokens,
    lora: {
      rank: settings?.rank ?? 0,
      scale: settings ? loraScale(settings) : 0,
      targets: lora?.targets ?? [],
      dropout: (settings?.dropout ?? 0) > 0,
    },
    dropoutProbability: settings?.dropout ?? 0,
    gradientCheckpointing: checkpointing,
    tuning: { threads },
    onCompile: (done, total) => emit({ type: 'compile', done, total }),
  });
}

interface EngineDevice {
  device: ExecutionDevice;
  threads: number;
}

function resolveDevice(job: { device: DeviceChoice; threads: number | null }, emit: Emit): EngineDevice {
  const decision = chooseDevice(job.device);
  // `?? null`: jobs stored before the thread setting existed have none.
  const threads = engineThreads(job.threads ?? null);
  emit({ type: 'device', device: decision.device, reason: decision.reason, threads });
  return { device: decision.device, threads };
}

/** Loss and perplexity over `examples`, without dropout and without touching gradients. */
async function validationLoss(
  model: TrainableModel,
  lora: LoraWeights | null,
  examples: TrainingSequence[],
  batchSize: number,
  virtual?: VirtualTokens,
): Promise<{ loss: number; tokens: number }> {
  let lossSum = 0;
  let tokens = 0;
  for (const batch of batches(examples, { batchSize, seed: 0, shuffle: false, padId: 0 })) {
    const result = await model.loss(batch, lora, virtual);
    lossSum += result.lossSum;
    tokens += result.tokens;
  }
  return { loss: tokens ? lossSum / tokens : NaN, tokens };
}

/** Reads a dataset for this model with the job's data settings, reporting what it found. */
async function loadDataset(
  file: string,
  role: 'train' | 'eval',
  data: DataSettings,
  folder: ModelFolder,
  maxSeqLen: number,
  validationFraction: number,
  seed: number,
  emit: Emit,
) {
  const prepared = await prepareDataset({
    file,
    modelDir: folder.dir,
    vocabSize: folder.spec.vocabSize,
    maxSeqLen,
    ...fromDataSettings(data),
    validationFraction,
    seed,
  });
  const { stats } = prepared;
  emit({ type: 'dataset', role, file, format: prepared.format, sha256: prepared.sourceSha256, stats: { ...stats } });
  emit({
    type: 'log',
    message: `${file}: ${prepared.format}, ${stats.rows} rows, ${stats.tokens} tokens (${stats.trainedTokens} trained), ${stats.truncatedRows} truncated, sha256 ${prepared.sourceSha256.slice(0, 12)}`,
  });
  for (const bad of prepared.badRows) emit({ type: 'log', message: `skipped ${file}:${bad.row}: ${bad.reason}` });
  if (prepared.badRows.length) emit({ type: 'log', message: `skipped ${prepared.badRows.length} bad rows` });
  const duplicates = prepared.duplicates.length;
  if (data.dropDuplicates && duplicates) emit({ type: 'log', message: `dropped ${duplicates} duplicate rows` });
  const repeated = data.dropDuplicates ? null : duplicatesWarning(stats);
  if (repeated) emit({ type: 'log', message: `warning: ${repeated}` });
  return prepared;
}

/**
 * What training starts from: LoRA weights (fresh or continued), or prompt-tuning virtual tokens beside an empty LoRA.
 */
function initialAdapter(
  job: TrainJob,
  folder: ModelFolder,
  rng: Rng,
  emit: Emit,
): { lora: LoraWeights; virtual?: VirtualTokens } {
  const { spec } = folder;
  const start = job.initAdapterDir ? loadAdapter(job.initAdapterDir, spec) : null;
  if (start) {
    const what =
      start.kind === 'lora'
        ? `LoRA r=${start.lora.settings.rank} alpha=${start.lora.settings.alpha} targets=${start.lora.targets.join(',')}`
        : `prompt tuning, ${start.prompt.numVirtualTokens} virtual tokens`;
    emit({ type: 'log', message: `continuing from ${job.initAdapterDir}: ${what}` });
    if ((start.kind === 'lora') !== (job.method === 'lora'))
      throw new UserError(`${job.initAdapterDir}: a ${start.kind} adapter cannot continue as ${job.method}`, {
        field: 'initAdapterDir',
      });
  }
  if (job.method === 'lora')
    return { lora: start?.kind === 'lora' ? start.lora : initLoraWeights(spec, job.lora, () => rng.uniform()) };

  const n = job.promptTuning.numVirtualTokens;
  const noLora: LoraWeights = {
    settings: { ...job.lora, targets: [], dropout: 0 },
    targets: [],
    layers: Array.from({ length: spec.numLayers }, () => new Map()),
  };
  let embeddings: Float32Array;
  if (start?.kind === 'prompt-tuning') {
    embeddings = start.prompt.embeddings;
  } else if (job.promptTuning.init === 'text') {
    // As PEFT: tokenize the text, repeat or cut the ids to n, start from their word embeddings.
    const text = job.promptTuning.initText;
    if (!text) throw new UserError('needed to start the prompt from text', { field: 'promptTuning.initText' });
    const ids = loadTokenizer(folder.dir).encode(text);
    const table = readTensorF32(folder.tensors.get('model.embed_tokens.weight')!);
    const C = spec.hiddenSize;
    embeddings = new Float32Array(n * C);
    for (let i = 0; i < n; i++)
      embeddings.set(table.subarray(ids[i % ids.length] * C, (ids[i % ids.length] + 1) * C), i * C);
  } else {
    // PEFT's torch.nn.Embedding starts at N(0, 1).
    embeddings = Float32Array.from({ length: n * spec.hiddenSize }, () => rng.normal());
  }
  return { lora: noLora, virtual: { embeddings, grad: new Float32Array(embeddings.length) } };
}

/** How the host steers a training run: where checkpoints go, whether to continue from them, and when to stop. */
export interface TrainControl {
  checkpointDir: string | null;
  resume: boolean;
  /** Polled after every step; true = write a checkpoint and return paused. */
  pauseRequested(): boolean;
  /** Polled before every step but the run's first; true = end now and write the adapter ("stop and save"). */
  stopRequested(): boolean;
}

const NO_CONTROL: TrainControl = {
  checkpointDir: null,
  resume: false,
  pauseRequested: () => false,
  stopRequested: () => false,
};

/**
 * sha256 of what shapes a run's trajectory (not where it writes, nor the device): a checkpoint resumes only its own
 * job.
 */
function jobFingerprint(job: TrainJob, dataSha256: string): string {
  // Keeping the best step and stopping early change which weights are written and when the run ends, not its steps.
  const {
    outDir,
    overwriteOutput,
    device,
    threads,
    checkpointEvery,
    keepCheckpoints,
    keepBest,
    earlyStoppingPatience,
    quantize,
    ...rest
  } = job;
  // Full precision, every row kept and the model's own chat template hash as before 4-bit bases, dropping duplicates
  // and template files existed, so older checkpoints still resume.
  const { dropDuplicates, chatTemplate, ...data } = rest.data;
  const trained = dropDuplicates || chatTemplate ? rest : { ...rest, data };
  const trajectory = quantize === 'none' ? trained : { ...trained, quantize };
  return crypto.createHash('sha256').update(JSON.stringify({ trajectory, dataSha256 })).digest('hex');
}

/**
 * Out-of-memory and lost-device errors from ONNX Runtime, and a full or read-only disk, said in words the user can act
 * on.
 */
function explainEngineError(err: unknown, device: ExecutionDevice): unknown {
  const fileError = explainFileError(err);
  if (fileError) return fileError;
  const message = (err as Error).message ?? '';
  if (/bad_alloc|Failed to allocate|out of memory|OOM/i.test(message)) {
    return new UserError(
      `out of memory on ${device}: lower the batch size or sequence length, or turn gradient checkpointing on; resume continues from the last checkpoint`,
    );
  }
  if (/device (was )?lost|DeviceLost/i.test(message)) {
    return new UserError(
      `the ${device} device was lost (driver reset or GPU removed); resume continues from the last checkpoint`,
    );
  }
  return err;
}

export async function runTraining(
  job: TrainJob,
  emit: Emit,
  control: TrainControl = NO_CONTROL,
): Promise<TrainResult | TrainPaused> {
  // The adapter's folder is checked before anything else, and again once the job's fingerprint is known (a folder
  // holding this run's adapter from an earlier attempt is written again) and before the adapter is written.
  const places = jobPlaces(job, control.checkpointDir);
  const checkpoints = control.checkpointDir ? path.resolve(control.checkpointDir) : null;
  let owner: AdapterOwner | null = checkpoints ? { checkpoints, fingerprint: null } : null;
  checkOutputFolder(job, places, owner);
  const folder = await baseFolder(job, emit);
  const { spec } = folder;
  const dataset = await loadDataset(
    job.dataFile,
    'train',
    job.data,
    folder,
    job.maxSeqLen,
    job.evalDataFile ? 0 : job.evalSplit,
    job.seed,
    emit,
  );
  const examples = dataset.sequences;
  const validation = job.evalDataFile
    ? (await loadDataset(job.evalDataFile, 'eval', job.data, folder, job.maxSeqLen, 0, job.seed, emit)).sequences
    : dataset.validation;
  const rng = new Rng(job.seed);
  const { lora, virtual } = initialAdapter(job, folder, rng, emit);
  const microPerEpoch = countBatches(examples.length, job.batchSize);
  const stepsPerEpoch = Math.max(1, Math.ceil(microPerEpoch / job.gradAccum));
  const totalSteps = job.steps ?? stepsPerEpoch * job.epochs;
  if (totalSteps <= 0)
    throw new UserError(`nothing to train (${totalSteps} steps)`, { field: job.steps === null ? 'epochs' : 'steps' });
  const overtraining = passesWarning(totalSteps, job.batchSize * job.gradAccum, examples.length);
  if (overtraining) emit({ type: 'log', message: `warning: ${overtraining}` });
  const fingerprint = jobFingerprint(job, dataset.sourceSha256);
  if (owner) owner = { ...owner, fingerprint };
  checkOutputFolder(job, places, owner);

  const engine = resolveDevice(job, emit);
  const model = await openTrainable(
    folder,
    lora,
    engine,
    job.gradientCheckpointing,
    emit,
    virtual ? virtual.embeddings.length / spec.hiddenSize : 0,
  );
  try {
    const stepper = new AdapterStepper(model, lora, job.optimizer, totalSteps, virtual);
    let firstStep = 0;
    let tokens = 0;
    let elapsedBefore = 0;
    let loss = NaN;
    let evalLoss: number | null = null;
    const losses: { step: number; loss: number }[] = [];
    // The validated step with the lowest loss so far, with its weights when the job keeps the best.
    let best: BestStep | null = null;
    if (control.resume && control.checkpointDir) {
      const state = latestGoodCheckpoint(control.checkpointDir, fingerprint, (skipped, reason) =>
        emit({ type: 'log', message: `skipping checkpoint ${skipped}: ${reason}` }),
      );
      if (state) {
        stepper.restore(state);
        ({ step: firstStep, tokens, loss, evalLoss } = state);
        best = state.best ?? null;
        elapsedBefore = state.elapsedSeconds;
        losses.push(...(state.losses ?? []));
        const at = path.join(control.checkpointDir, `step-${String(state.step).padStart(8, '0')}`);
        emit({ type: 'resumed', step: state.step, folder: at });
        emit({ type: 'log', message: `resumed from ${at} (step ${state.step} of ${totalSteps})` });
        if (!state.losses && state.step > 0)
          emit({
            type: 'log',
            message: `the checkpoint predates loss history: training.json's loss curve starts after step ${state.step}`,
          });
      } else {
        emit({ type: 'log', message: 'no usable checkpoint: training starts from step 0' });
        emit({ type: 'resumed', step: 0, folder: control.checkpointDir });
      }
    }

    // An endless stream of micro-batches, reshuffled each epoch with its own seed, starting `skip` micro-batches in.
    function* stream(skip: number): Generator<MicroBatch> {
      for (let epoch = Math.floor(skip / microPerEpoch); ; epoch++) {
        let index = 0;
        for (const batch of batches(examples, {
          batchSize: job.batchSize,
          seed: job.seed + epoch,
          shuffle: job.shuffle,
          padId: 0,
        })) {
          if (epoch * microPerEpoch + index++ >= skip) yield batch;
        }
      }
    }
    const micro = stream(firstStep * job.gradAccum);
    const started = performance.now();
    const elapsed = () => elapsedBefore + (performance.now() - started) / 1000;
    const checkpoint = (step: number) => {
      if (!control.checkpointDir) return;
      const kept = writeCheckpoint(
        control.checkpointDir,
        {
          ...stepper.snapshot(),
          step,
          microBatches: step * job.gradAccum,
          rngSeed: job.seed,
          tokens,
          elapsedSeconds: elapsed(),
          loss,
          evalLoss,
          losses,
          ...(best && { best }),
          jobFingerprint: fingerprint,
        },
        job.keepCheckpoints,
      );
      emit({ type: 'checkpoint', step, kept });
    };
    const evals: { step: number; loss: number }[] = []; // this session's validations
    const evaluate = async (step: number) => {
      const result = await validationLoss(model, lora, validation, job.batchSize, virtual);
      evalLoss = result.loss;
      emit({ type: 'eval', step, loss: result.loss, perplexity: Math.exp(result.loss), tokens: result.tokens });
      evals.push({ step, loss: result.loss });
      if (!best || result.loss < best.loss)
        best = { step, loss: result.loss, ...(job.keepBest && { params: stepper.snapshot().params }) };
      const warning = overfittingWarning(losses, evals);
      if (warning) emit({ type: 'log', message: `warning: ${warning}` });
    };
    let tokensThisSession = 0;
    let stepsDone = firstStep;
    // Why the run ends before its last step: asked to stop and save, or no better validation for `patience` steps.
    let endedEarly: 'stop' | 'patience' | null = null;
    for (let step = firstStep; step < totalSteps; step++) {
      // Stop and save: the weights as they are now (after at least one step) become the adapter.
      if (step > 0 && control.stopRequested()) {
        endedEarly = 'stop';
        break;
      }
      const group = Array.from({ length: job.gradAccum }, () => micro.next().value as MicroBatch);
      const result = await stepper.step(step, group, job.seed * 1_000_003 + step);
      loss = result.loss;
      losses.push({ step: step + 1, loss });
      const groupTokens = group.reduce((sum, b) => sum + b.batchSize * b.seqLen, 0);
      tokens += groupTokens;
      tokensThisSession += groupTokens;
      const seconds = (performance.now() - started) / 1000;
      emit({
        type: 'step',
        step: step + 1,
        totalSteps,
        loss,
        learningRate: result.learningRate,
        gradNorm: result.gradNorm,
        tokens,
        tokensPerSecond: tokensThisSession / seconds,
        elapsedSeconds: elapsed(),
        memoryBytes: process.memoryUsage().rss,
      });
      stepsDone = step + 1;
      const last = step + 1 === totalSteps;
      const validateNow = validation.length > 0 && (last || (job.evalEvery > 0 && (step + 1) % job.evalEvery === 0));
      if (validateNow) await evaluate(step + 1);
      if (last || (job.checkpointEvery > 0 && (step + 1) % job.checkpointEvery === 0)) checkpoint(step + 1);
      const since = best ? step + 1 - best.step : 0;
      if (!last && validateNow && job.earlyStoppingPatience > 0 && since >= job.earlyStoppingPatience) {
        emit({
          type: 'log',
          message: `stopping early: no lower validation loss in the ${since} steps since step ${best!.step} (${best!.loss.toFixed(4)})`,
        });
        endedEarly = 'patience';
        break;
      }
      // Let a pause message from the host in: session runs alone never yield to the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      if (!last && control.pauseRequested()) {
        if (job.checkpointEvery === 0 || (step + 1) % job.checkpointEvery !== 0) checkpoint(step + 1);
        emit({ type: 'log', message: `paused after step ${step + 1}` });
        return { status: 'paused', step: step + 1 };
      }
    }
    if (endedEarly === 'stop') {
      emit({
        type: 'log',
        message: `stopped after step ${stepsDone} of ${totalSteps}: saving the adapter as it is now`,
      });
      const validatedThen = job.evalEvery > 0 && stepsDone % job.evalEvery === 0;
      if (validation.length && !validatedThen) await evaluate(stepsDone);
    }
    if (job.keepBest && best?.params && best.step !== stepsDone) {
      stepper.restore({ ...stepper.snapshot(), params: best.params });
      evalLoss = best.loss;
      loss = losses.find((p) => p.step === best!.step)?.loss ?? loss;
      emit({
        type: 'log',
        message: `the adapter is step ${best.step}'s, the lowest validation loss (${best.loss.toFixed(4)}), not step ${stepsDone}'s`,
      });
    }
    const seconds = (performance.now() - started) / 1000;
    const baseModel = adapterBaseModel(path.resolve(job.modelDir));
    writeAdapterFolder(job, places, { run: owner, chatTemplate: dataset.chatTemplate }, (dir) => {
      const origin =
        job.promptTuning.init === 'text'
          ? { init: 'TEXT' as const, initText: job.promptTuning.initText, tokenizer: folder.dir }
          : undefined;
      const prompt = virtual && { numVirtualTokens: job.promptTuning.numVirtualTokens, embeddings: virtual.embeddings };
      const files = prompt
        ? savePromptTuningAdapter(dir, prompt, spec, baseModel, origin)
        : saveLoraAdapter(dir, lora, baseModel);
      return [
        ...files,
        ...writeAdapterChatTemplate(dir, job.data.chatTemplate),
        writeTrainingRecord(job, dataset.sourceSha256, losses, loss, evalLoss),
      ];
    });
    return {
      status: 'completed',
      adapterDir: path.resolve(job.outDir),
      steps: stepsDone,
      finalLoss: loss,
      evalLoss,
      tokens,
      tokensPerSecond: tokensThisSession / seconds,
      seconds: elapsed(),
      device: engine.device,
    };
  } catch (err) {
    throw explainEngineError(err, engine.device);
  } finally {
    await model.close();
  }
}

/**
 * `training.json` beside the adapter: the settings, the data's name and hash, and the loss curve, for the model card.
 * The curve of a resumed run includes the steps before the resume, which its checkpoint carries (one written before
 * checkpoints kept the history starts at the resume; the studio's database still holds the whole curve).
 */
function writeTrainingRecord(
  job: TrainJob,
  dataSha256: string,
  losses: { step: number; loss: number }[],
  finalLoss: number,
  evalLoss: number | null,
): string {
  const { outDir, overwriteOutput, modelDir, dataFile, evalDataFile, initAdapterDir, ...settings } = job;
  const record = {
    settings,
    baseModel: path.basename(modelDir),
    dataset: { name: path.basename(dataFile), sha256: dataSha256 },
    finalLoss,
    evalLoss,
    losses,
  };
  writeFileAtomic(path.join(job.outDir, 'training.json'), `${JSON.stringify(record, null, 1)}\n`);
  return 'training.json';
}

export async function runEvaluation(job: EvalJob, emit: Emit): Promise<EvalResult> {
  const folder = await baseFolder(job, emit);
  const adapter = job.adapterDir ? loadAdapter(job.adapterDir, folder.spec) : null;
  const lora = adapter?.kind === 'lora' ? adapter.lora : null;
  if (lora) lora.settings.dropout = 0;
  const virtual =
    adapter?.kind === 'prompt-tuning'
      ? { embeddings: adapter.prompt.embeddings, grad: new Float32Array(adapter.prompt.embeddings.length) }
      : undefined;
  const examples = (await loadDataset(job.dataFile, 'eval', job.data, folder, job.maxSeqLen, 0, 0, emit)).sequences;
  const engine = resolveDevice(job, emit);
  const model = await openTrainable(
    folder,
    lora,
    engine,
    true,
    emit,
    virtual ? virtual.embeddings.length / folder.spec.hiddenSize : 0,
  );
  try {
    const { loss, tokens } = await validationLoss(model, lora, examples, job.batchSize, virtual);
    if (tokens === 0) throw new UserError(`${job.dataFile}: no label tokens to evaluate`);
    return { loss, tokens, perplexity: Math.exp(loss) };
  } finally {
    await model.close();
  }
}

/** Training throughput on random tokens: one warm-up step, then `steps` timed LoRA steps (q, k, v, o; AdamW). */
const BENCH_OPTIMIZER: OptimizerSettings = {
  name: 'adamw',
  learningRate: 1e-4,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  momentum: 0,
  scheduler: 'constant',
  warmupSteps: 0,
  maxGradNorm: 1,
};

export async function runBenchmark(job: BenchJob, emit: Emit): Promise<BenchResult> {
  const folder = await baseFolder(job, emit);
  const rng = new Rng(0);
  const settings = {
    rank: job.rank,
    alpha: 2 * job.rank,
    dropout: 0,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
    useRslora: false,
  };
  const lora = initLoraWeights(folder.spec, settings, () => rng.uniform());
  const engine = resolveDevice(job, emit);
  const loadStarted = performance.now();
  const model = await openTrainable(folder, lora, engine, job.gradientCheckpointing, emit);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  try {
    const n = job.batchSize * job.seqLen;
    const inputIds = new Int32Array(n).map(() => rng.int(folder.spec.vocabSize));
    const batch: MicroBatch = { batchSize: job.batchSize, seqLen: job.seqLen, inputIds, labels: inputIds };
    const stepper = new AdapterStepper(model, lora, BENCH_OPTIMIZER, job.steps + 1);
    await stepper.step(0, [batch], 0); // warm-up: first-run allocations and kernel selection
    const started = performance.now();
    for (let i = 0; i < job.steps; i++) {
      const { loss } = await stepper.step(i + 1, [batch], 0);
      const elapsedSeconds = (performance.now() - started) / 1000;
      emit({
        type: 'step',
        step: i + 1,
        totalSteps: job.steps,
        loss,
        learningRate: 1e-4,
        gradNorm: 0,
        tokens: n * (i + 1),
        tokensPerSecond: (n * (i + 1)) / elapsedSeconds,
        elapsedSeconds,
        memoryBytes: process.memoryUsage().rss,
      });
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      device: engine.device,
      threads: Math.max(...model.sessions.map(sessionThreads)),
      tokensPerSecond: (n * job.steps) / seconds,
      secondsPerStep: seconds / job.steps,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      loadSeconds,
      gradientCheckpointing: job.gradientCheckpointing,
    };
  } finally {
    await model.close();
  }
}

/**
 * The base an adapter names, as PEFT does for QLoRA: the model the user chose, not our 4-bit copy of it; for a
 * checkpoint that was 4-bit already (a `*-bnb-4bit` download), the model its config.json names (`_name_or_path`)
 * where that is a Hub repo id or a folder here, else the checkpoint itself.
 */
export function adapterBaseModel(chosenDir: string): string {
  let config: { quantization_config?: unknown; _name_or_path?: unknown };
  try {
    config = JSON.parse(fs.readFileSync(path.join(chosenDir, 'config.json'), 'utf8'));
  } catch {
    return chosenDir; // opening the model has reported what is wrong with it
  }
  const named = config._name_or_path;
  if (!config.quantization_config || typeof named !== 'string') return chosenDir;
  if (HUB_REPO_ID.test(named)) return named;
  return path.isAbsolute(named) && fs.existsSync(path.join(named, 'config.json')) ? named : chosenDir;
}
