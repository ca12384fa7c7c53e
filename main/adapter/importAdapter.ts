// Adapters trained elsewhere (a TRL/transformers run on another machine, a Hub repo), brought into the studio's
// adapter storage: the PEFT folder found (at the top of a trainer's output folder, else its newest checkpoint-N),
// checked for what the engine can load before anything is copied, then copied with the studio's manifest (written
// last) into a temp folder beside its place and renamed into it, so deleting it later removes exactly that copy.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import type { AdapterMethod } from '../../shared/training.js';
import { ADAPTER_TEMPLATE_FILE, readChatTemplateFile } from '../model/chatTemplate.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import { explainFileError } from '../util/fileErrors.js';
import {
  checkOutputFolder,
  MANIFEST_FILE,
  type AdapterManifest,
  type ManifestEntry,
  type ProtectedPlaces,
} from './adapterFiles.js';
import { adapterWeightsFile, readAdapterConfig, validateTargets } from './loraAdapter.js';

const CONFIG_FILE = 'adapter_config.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';
/** What a studio-written adapter (one pushed to the Hub and pulled back) carries for the model card. */
const TRAINING_FILE = 'training.json';
/** transformers' Trainer: the step and the loss history (trainer.save_state, and inside every checkpoint). */
const TRAINER_STATE_FILE = 'trainer_state.json';
/** The files an import copies when the source has them; anything else there (README, tokenizer, pickles) stays. */
export const IMPORTED_FILES = [CONFIG_FILE, WEIGHTS_FILE, ADAPTER_TEMPLATE_FILE, TRAINING_FILE] as const;

const CHECKPOINT_FOLDER = /^checkpoint-(\d+)$/;

/** What the trainer's log says about the run that made an adapter. */
export interface TrainerFacts {
  steps: number;
  losses: { step: number; loss: number }[];
  finalLoss: number | null;
  evalLoss: number | null;
}

export interface ForeignAdapter {
  /** The folder holding adapter_config.json and adapter_model.safetensors. */
  dir: string;
  /** The checkpoint-N folder it was taken from when the source had no adapter at its top; else null. */
  checkpoint: string | null;
  method: AdapterMethod;
  config: Record<string, unknown>;
  /** base_model_name_or_path as PEFT recorded it; null when it names none. */
  baseModel: string | null;
  trainer: TrainerFacts | null;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The checkpoint-N folders of `dir` that hold an adapter config, highest step first. */
function checkpointFolders(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => CHECKPOINT_FOLDER.test(name) && fs.existsSync(path.join(dir, name, CONFIG_FILE)))
    .sort((a, b) => Number(CHECKPOINT_FOLDER.exec(b)![1]) - Number(CHECKPOINT_FOLDER.exec(a)![1]));
}

/**
 * The PEFT adapter in `source`: the folder itself, else (a trainer's output folder without a final save) its newest
 * checkpoint-N; refused in one line when it is not one, or holds something the engine cannot load.
 */
export function findForeignAdapter(source: string): ForeignAdapter {
  const top = path.resolve(source);
  const stat = fs.statSync(top, { throwIfNoEntry: false });
  if (!stat) throw new UserError(`${top}: no such folder`);
  if (!stat.isDirectory()) throw new UserError(`${top}: a file, not an adapter folder`);
  let dir = top;
  let checkpoint: string | null = null;
  if (!fs.existsSync(path.join(top, CONFIG_FILE))) {
    const newest = checkpointFolders(top)[0];
    if (!newest)
      throw new UserError(
        `${top}: not a PEFT adapter folder: no ${CONFIG_FILE} (nor a checkpoint-N folder holding one)`,
      );
    dir = path.join(top, newest);
    checkpoint = newest;
  }
  const config = readAdapterConfig(dir);
  if (!isObject(config)) throw new UserError(`${path.join(dir, CONFIG_FILE)}: expected a JSON object`);
  if (!fs.existsSync(path.join(dir, WEIGHTS_FILE)) && !fs.existsSync(path.join(dir, 'adapter_model.bin')))
    throw new UserError(`${dir}: not a PEFT adapter folder: ${CONFIG_FILE} but no ${WEIGHTS_FILE}`);
  adapterWeightsFile(dir); // refuses a pickled adapter_model.bin, and a weights file linking out of the folder
  const method = supportedMethod(config, path.join(dir, CONFIG_FILE));
  const base = config.base_model_name_or_path;
  return {
    dir,
    checkpoint,
    method,
    config,
    baseModel: typeof base === 'string' && base.trim() ? base.trim() : null,
    trainer: readTrainerFacts([dir, top]),
  };
}

/** LoRA settings the engine's loader has no place for: each would change what the adapter computes. */
const UNSUPPORTED_LORA: [field: string, present: (value: unknown) => boolean, what: string][] = [
  ['use_dora', (v) => v === true, 'DoRA (use_dora)'],
  ['bias', (v) => v !== undefined && v !== null && v !== 'none', 'trained biases (bias)'],
  ['lora_bias', (v) => v === true, 'trained LoRA biases (lora_bias)'],
  ['modules_to_save', (v) => Array.isArray(v) && v.length > 0, 'fully trained modules (modules_to_save)'],
  ['rank_pattern', (v) => isObject(v) && Object.keys(v).length > 0, 'per-module ranks (rank_pattern)'],
  ['alpha_pattern', (v) => isObject(v) && Object.keys(v).length > 0, 'per-module alphas (alpha_pattern)'],
  ['layers_to_transform', (v) => v !== undefined && v !== null, 'LoRA on some layers only (layers_to_transform)'],
  ['fan_in_fan_out', (v) => v === true, 'transposed weights (fan_in_fan_out)'],
  ['target_parameters', (v) => Array.isArray(v) && v.length > 0, 'LoRA on parameters (target_parameters)'],
  [
    'trainable_token_indices',
    (v) => v !== undefined && v !== null,
    'trained token embeddings (trainable_token_indices)',
  ],
  ['layer_replication', (v) => v !== undefined && v !== null, 'replicated layers (layer_replication)'],
];

/** The method of an adapter the engine can load (anyAdapter.ts); anything else refused, naming the field. */
function supportedMethod(config: Record<string, unknown>, configFile: string): AdapterMethod {
  const taskType = config.task_type;
  if (taskType !== undefined && taskType !== null && taskType !== 'CAUSAL_LM')
    throw new UserError(
      `${configFile}: task_type ${JSON.stringify(taskType)} is not supported; the studio loads adapters of causal language models (CAUSAL_LM)`,
    );
  if (config.peft_type === 'PROMPT_TUNING') {
    const submodules = config.num_transformer_submodules;
    if (submodules !== undefined && submodules !== null && submodules !== 1)
      throw new UserError(
        `${configFile}: num_transformer_submodules ${JSON.stringify(submodules)} is not supported (1)`,
      );
    return 'prompt-tuning';
  }
  if (config.peft_type !== 'LORA')
    throw new UserError(
      `${configFile}: peft_type ${JSON.stringify(config.peft_type ?? null)} is not supported; the studio loads LORA and PROMPT_TUNING adapters`,
    );
  for (const [field, present, what] of UNSUPPORTED_LORA)
    if (present(config[field])) throw new UserError(`${configFile}: ${what} is not supported by the studio's engine`);
  const targets = config.target_modules;
  if (typeof targets === 'string')
    throw new UserError(
      `${configFile}: target_modules is the pattern ${JSON.stringify(targets)}; the studio loads a list of module names`,
    );
  if (!Array.isArray(targets)) throw new UserError(`${configFile}: field "target_modules" must be a list`);
  validateTargets(targets as string[], `${configFile}: target_modules`);
  return 'lora';
}

/** The first trainer_state.json among `dirs` (the adapter's folder, then the source's top) as facts; else null. */
function readTrainerFacts(dirs: string[]): TrainerFacts | null {
  for (const dir of dirs) {
    const file = path.join(dir, TRAINER_STATE_FILE);
    if (!fs.existsSync(file)) continue;
    let state: unknown;
    try {
      state = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      continue; // a damaged log says nothing about the adapter, which is checked on its own
    }
    if (!isObject(state)) continue;
    const log = (Array.isArray(state.log_history) ? state.log_history : []).filter(isObject);
    const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
    const losses = log
      .filter((e) => finite(e.loss) && finite(e.step))
      .map((e) => ({ step: e.step as number, loss: e.loss as number }));
    const evals = log.filter((e) => finite(e.eval_loss));
    return {
      steps: finite(state.global_step) ? state.global_step : (losses.at(-1)?.step ?? 0),
      losses,
      finalLoss: losses.at(-1)?.loss ?? null,
      evalLoss: (evals.at(-1)?.eval_loss as number | undefined) ?? null,
    };
  }
  return null;
}

function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export interface ImportCopy {
  /** Where the copy goes: a new folder (checked against the protected places first). */
  outDir: string;
  places: ProtectedPlaces;
  /** Whether its training rows went through the chat template; null when not known (recorded in the manifest). */
  chatTemplate: boolean | null;
  /** The chat template file the run rendered its rows with, copied as chat_template.jinja when the source has none. */
  chatTemplateFile: string | null;
  /** A training.json to write (the run's settings and the trainer's losses) when the source has none. */
  training: Record<string, unknown> | null;
}

/**
 * Copies the adapter's files (IMPORTED_FILES it has) and the studio's manifest of them into `copy.outDir`: built in a
 * temp folder beside it, renamed into place when whole. Returns the manifest as written, for the store.
 */
export function copyForeignAdapter(adapter: ForeignAdapter, copy: ImportCopy): string {
  const outDir = path.resolve(copy.outDir);
  if (fs.existsSync(outDir)) throw new UserError(`${outDir}: exists already; choose another name for the adapter`);
  checkOutputFolder({ outDir }, copy.places, null);
  const temp = path.join(path.dirname(outDir), `.${path.basename(outDir)}.importing-${process.pid}`);
  try {
    fs.rmSync(temp, { recursive: true, force: true });
    fs.mkdirSync(temp, { recursive: true, mode: 0o700 });
    const files: ManifestEntry[] = [];
    const add = (name: string) => {
      const file = path.join(temp, name);
      files.push({ path: name, size: fs.statSync(file).size, sha256: sha256File(file) });
    };
    for (const name of IMPORTED_FILES) {
      const from = path.join(adapter.dir, name);
      if (!fs.statSync(from, { throwIfNoEntry: false })?.isFile()) continue;
      fs.copyFileSync(from, path.join(temp, name));
      add(name);
    }
    if (copy.chatTemplateFile && !files.some((f) => f.path === ADAPTER_TEMPLATE_FILE)) {
      writeFileAtomic(path.join(temp, ADAPTER_TEMPLATE_FILE), readChatTemplateFile(copy.chatTemplateFile).text);
      add(ADAPTER_TEMPLATE_FILE);
    }
    if (copy.training && !files.some((f) => f.path === TRAINING_FILE)) {
      writeFileAtomic(path.join(temp, TRAINING_FILE), `${JSON.stringify(copy.training, null, 1)}\n`);
      add(TRAINING_FILE);
    }
    const manifest: AdapterManifest = { format: 1, run: null, chatTemplate: copy.chatTemplate, files };
    const text = `${JSON.stringify(manifest, null, 1)}\n`;
    writeFileAtomic(path.join(temp, MANIFEST_FILE), text);
    fs.mkdirSync(path.dirname(outDir), { recursive: true });
    fs.renameSync(temp, outDir);
    return text;
  } catch (err) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw explainFileError(err, outDir) ?? err;
  }
}
