// Training checkpoints: everything a run needs to continue exactly where it was, written so that a crash at any
// moment leaves either the previous checkpoints or a complete new one, and damage is detected by checksum.
//
//   <dir>/step-00000040/state.safetensors   param.<i> (adapter tensors), optimizer.<i> (moment buffers), and
//                                           best.<i> (the best validated step's adapter tensors, when kept), fp32
//   <dir>/step-00000040/trainer.json        step, data position, RNG, schedule, totals, loss history, job fingerprint
//   <dir>/step-00000040/manifest.json       sha256 of the two files above
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type TensorToWrite } from '../../model/safetensors.js';
import { removeIfEmpty } from '../../adapter/adapterFiles.js';
import { writeFileAtomic } from '../../util/atomicWrite.js';
import { explainFileError } from '../../util/fileErrors.js';

/** The validated step with the lowest validation loss so far; its adapter tensors when the job keeps the best. */
export interface BestStep {
  step: number;
  loss: number;
  params?: Float32Array[];
}

export interface TrainingState {
  /** Optimizer steps done. */
  step: number;
  /** Micro-batches taken from the data stream so far: where the data order continues. */
  microBatches: number;
  /** Dropout masks of step s derive from rngSeed and s alone, so the seed is the whole RNG state between steps. */
  rngSeed: number;
  optimizerStep: number;
  tokens: number;
  elapsedSeconds: number;
  loss: number;
  evalLoss: number | null;
  /**
   * The training loss of each step done so far, for the adapter's training.json: a resumed run's record covers the
   * steps before the resume too. Absent in checkpoints written before it was kept; their history starts at the resume.
   */
  losses?: { step: number; loss: number }[];
  /** Trainable tensors in the stepper's fixed order. */
  params: Float32Array[];
  optimizerBuffers: Float32Array[];
  /** Absent before the first validation, and in checkpoints written before it was kept. */
  best?: BestStep;
  /** sha256 of the settings that shape the training trajectory; a checkpoint only resumes its own job. */
  jobFingerprint: string;
}

type TrainerJson = Omit<TrainingState, 'params' | 'optimizerBuffers' | 'best'> & {
  format: 1;
  paramCount: number;
  bufferCount: number;
  best?: { step: number; loss: number; paramCount: number };
};

const STATE_FILE = 'state.safetensors';
const TRAINER_FILE = 'trainer.json';
const MANIFEST_FILE = 'manifest.json';
const FOLDER = /^step-(\d{8})$/;
/** A step folder an interrupted write left; a checkpoint's files, with the temp files of their atomic writes. */
const PARTIAL_FOLDER = /^\.step-\d{8}\.partial-\d+$/;
const CHECKPOINT_FILE = /^(state\.safetensors|trainer\.json|manifest\.json)(\.tmp-\d+-\d+)?$/;

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function fsyncFolder(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Step folders in `dir`, oldest first. */
export function listCheckpoints(dir: string): { step: number; folder: string }[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((name) => FOLDER.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), folder: path.join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Writes `state` as `<dir>/step-NNNNNNNN`: files into a hidden temp folder, each fsynced, the folder renamed into
 * place, then the parent fsynced. Keeps the newest `keep` checkpoints. Returns the ones kept, oldest first.
 */
export function writeCheckpoint(dir: string, state: TrainingState, keep: number): { step: number; folder: string }[] {
  fs.mkdirSync(dir, { recursive: true });
  const name = `step-${String(state.step).padStart(8, '0')}`;
  const temp = path.join(dir, `.${name}.partial-${process.pid}`);
  const final = path.join(dir, name);
  fs.rmSync(temp, { recursive: true, force: true });
  try {
    fs.mkdirSync(temp);
    const tensors: Record<string, TensorToWrite> = {};
    state.params.forEach((p, i) => (tensors[`param.${i}`] = { dtype: 'F32', shape: [p.length], data: p }));
    state.optimizerBuffers.forEach(
      (b, i) => (tensors[`optimizer.${i}`] = { dtype: 'F32', shape: [b.length], data: b }),
    );
    state.best?.params?.forEach((p, i) => (tensors[`best.${i}`] = { dtype: 'F32', shape: [p.length], data: p }));
    writeSafetensors(path.join(temp, STATE_FILE), tensors);
    const { params, optimizerBuffers, best, ...rest } = state;
    const trainer: TrainerJson = {
      format: 1,
      ...rest,
      ...(best && { best: { step: best.step, loss: best.loss, paramCount: best.params?.length ?? 0 } }),
      paramCount: params.length,
      bufferCount: optimizerBuffers.length,
    };
    writeFileAtomic(path.join(temp, TRAINER_FILE), `${JSON.stringify(trainer, null, 1)}\n`);
    const manifest = {
      [STATE_FILE]: sha256(path.join(temp, STATE_FILE)),
      [TRAINER_FILE]: sha256(path.join(temp, TRAINER_FILE)),
    };
    writeFileAtomic(path.join(temp, MANIFEST_FILE), `${JSON.stringify({ sha256: manifest }, null, 1)}\n`);
    fsyncFolder(temp);
    // A checkpoint of this step from an earlier attempt (before a crash) is replaced by this one.
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(temp, final);
    fsyncFolder(dir);
  } catch (err) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw explainFileError(err, `checkpoint ${final}`) ?? err;
  }
  const all = listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep)))
    fs.rmSync(old.folder, { recursive: true, force: true });
  return all.slice(Math.max(0, all.length - keep));
}

/** Reads and verifies one checkpoint folder; throws with the reason when it is incomplete or damaged. */
export function readCheckpoint(folder: string): TrainingState {
  const manifest = JSON.parse(fs.readFileSync(path.join(folder, MANIFEST_FILE), 'utf8')) as {
    sha256: Record<string, string>;
  };
  for (const file of [STATE_FILE, TRAINER_FILE]) {
    if (sha256(path.join(folder, file)) !== manifest.sha256?.[file])
      throw new Error(`${file} does not match its checksum`);
  }
  const trainer = JSON.parse(fs.readFileSync(path.join(folder, TRAINER_FILE), 'utf8')) as TrainerJson;
  const tensors = readSafetensorsHeader(path.join(folder, STATE_FILE));
  const read = (prefix: string, count: number) =>
    Array.from({ length: count }, (_, i) => readTensorF32(tensors.get(`${prefix}.${i}`)!));
  const { format, paramCount, bufferCount, losses, best, ...rest } = trainer;
  const history = Array.isArray(losses) ? losses.filter((p) => p.step <= trainer.step) : undefined;
  return {
    ...rest,
    ...(history && { losses: history }),
    ...(best && {
      best: {
        step: best.step,
        loss: best.loss,
        ...(best.paramCount > 0 && { params: read('best', best.paramCount) }),
      },
    }),
    params: read('param', paramCount),
    optimizerBuffers: read('optimizer', bufferCount),
  };
}

/**
 * The newest checkpoint in `dir` that verifies and belongs to the job with `jobFingerprint`; the damaged or foreign
 * ones it passes over are reported through `onSkip`. Leftover temp folders of an interrupted write are removed.
 */
export function latestGoodCheckpoint(
  dir: string,
  jobFingerprint: string,
  onSkip: (folder: string, reason: string) => void,
): TrainingState | null {
  if (!fs.existsSync(dir)) return null;
  for (const name of fs.readdirSync(dir))
    if (name.startsWith('.step-')) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  for (const { folder } of listCheckpoints(dir).reverse()) {
    let state: TrainingState;
    try {
      state = readCheckpoint(folder);
    } catch (err) {
      onSkip(folder, (err as Error).message);
      continue;
    }
    if (state.jobFingerprint !== jobFingerprint) {
      onSkip(folder, 'it was written by a run with different settings');
      continue;
    }
    return state;
  }
  return null;
}

const isFolder = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false })?.isDirectory() === true;

/**
 * Deletes the checkpoints in `dir`: in each step folder (or one an interrupted write left) the files written here,
 * then each folder that leaves empty, and `dir` itself. Anything else stays, and links are not followed.
 */
export function removeCheckpoints(dir: string): void {
  if (!isFolder(dir)) return;
  for (const name of fs.readdirSync(dir)) {
    const folder = path.join(dir, name);
    if (!(FOLDER.test(name) || PARTIAL_FOLDER.test(name)) || !isFolder(folder)) continue;
    for (const file of fs.readdirSync(folder).filter((f) => CHECKPOINT_FILE.test(f))) {
      if (fs.lstatSync(path.join(folder, file)).isFile()) fs.unlinkSync(path.join(folder, file));
    }
    removeIfEmpty(folder);
  }
  removeIfEmpty(dir);
}
