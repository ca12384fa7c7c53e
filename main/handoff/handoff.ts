// "Run elsewhere": a run's job (or a recipe) written out as a self-contained Hugging Face TRL + accelerate project.
// The training data go over as the engine prepared them (token ids and labels after the column mapping, the chat
// template, the completion-only mask, truncation and packing), so TRL trains on the same tokens with the same mask;
// what TRL cannot do as we did is said in the caveats, which the README, the CLI and the GUI all show.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { HandoffResult } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import type { TrainJob } from '../../shared/training.js';
import { fromDataSettings, prepareDataset, type PreparedDataset } from '../data/dataset.js';
import { readSamples } from '../data/formats.js';
import type { TrainingSequence } from '../data/packing.js';
import type { Sample } from '../data/samples.js';
import { sha256File } from '../data/stats.js';
import { openModelFolder } from '../model/modelFolder.js';
import type { Store } from '../store/store.js';
import { AtomicFileStream, writeFileAtomic } from '../util/atomicWrite.js';
import { gpuAdvice } from './gpuAdvice.js';
import { ACCELERATE_CONFIGS, PINNED_REQUIREMENTS, readme, sbatchScript, skyTask, slug } from './projectFiles.js';
import { trainScript } from './trainScript.js';

/** What is handed off: a job, and the run it came from when there is one. */
export interface HandoffSource {
  job: TrainJob;
  run: {
    id: number;
    name: string;
    /** sha256 of the data file as the run read it, when the run got that far. */
    dataSha256: string | null;
    /** The base model's Hub id when the studio downloaded it from there. */
    hubModel: string | null;
  } | null;
}

export type { HandoffResult };

/** A run of the store as a handoff source: its job, its data's recorded hash, its model's Hub id. */
export function runHandoffSource(store: Store, id: number): HandoffSource {
  const run = store.run(id);
  if (!run) throw new UserError(`run ${id}: no such run in ${store.home}`);
  const dataset = run.datasetId === null ? null : store.dataset(run.datasetId);
  const model = store.model(run.modelId);
  return {
    job: run.job,
    run: {
      id,
      name: run.name,
      dataSha256: dataset?.sha256 ?? null,
      hubModel: model?.source === 'hub' ? model.location : null,
    },
  };
}

/** A recipe (a job not run here: `--recipe` or the wizard's) as a handoff source: its data are read as they are now. */
export function recipeHandoffSource(job: TrainJob): HandoffSource {
  return { job, run: null };
}

/** Refuses an output folder that exists and is not an empty folder. */
function checkOutputFolder(outDir: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(outDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new UserError(`${outDir}: a file, not a folder; choose a new or empty folder`);
    throw new UserError(`${outDir}: cannot read the output folder (${code ?? 'error'})`);
  }
  if (entries.length)
    throw new UserError(
      `${outDir}: the output folder is not empty (${entries.length} entries); choose a new or empty folder`,
    );
}

/** Refuses a data file that is no longer the one the run trained on. */
async function checkDataUnchanged(source: HandoffSource): Promise<void> {
  const recorded = source.run?.dataSha256;
  if (!source.run || !recorded) return;
  const file = source.job.dataFile;
  if (!fs.existsSync(file)) throw new UserError(`${file}: the data file of run ${source.run.id} is gone`);
  const now = await sha256File(file);
  if (now !== recorded)
    throw new UserError(
      `${file}: changed since run ${source.run.id} trained on it (sha256 now ${now.slice(0, 12)}, then ${recorded.slice(0, 12)}); restore the file the run saw, or hand off a recipe with this one`,
    );
}

/** A sample as a row `datasets` reads: the fields of its format after the column mapping. */
function sampleRecord(row: number, sample: Sample): Record<string, unknown> {
  switch (sample.kind) {
    case 'chat':
      return { row, messages: sample.messages };
    case 'completion':
      return { row, prompt: sample.prompt, completion: sample.completion };
    case 'text':
      return { row, text: sample.text };
    case 'tokens':
      return { row, input_ids: sample.inputIds, labels: sample.labels ?? sample.inputIds };
  }
}

/** Writes JSON lines atomically; returns the file's sha256. */
function writeJsonLines(file: string, records: Iterable<unknown>): string {
  const out = new AtomicFileStream(file);
  const hash = crypto.createHash('sha256');
  try {
    for (const record of records) {
      const line = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
      hash.update(line);
      out.write(line);
    }
    out.commit();
  } catch (err) {
    out.abort();
    throw err;
  }
  return hash.digest('hex');
}

/** A training sequence as TRL's collator takes it; a packed one keeps its samples' lengths (position ids). */
function* sequenceRecords(sequences: readonly TrainingSequence[]): Generator<Record<string, unknown>> {
  for (const s of sequences) {
    const record: Record<string, unknown> = { input_ids: Array.from(s.inputIds), labels: Array.from(s.labels) };
    if (s.segmentIds) {
      const lengths: number[] = [];
      for (let t = 0; t < s.segmentIds.length; t++) {
        if (t === 0 || s.segmentIds[t] !== s.segmentIds[t - 1]) lengths.push(0);
        lengths[lengths.length - 1]++;
      }
      record.seq_lengths = lengths;
    }
    yield record;
  }
}

/** The good rows of a data file after the column mapping, less the rows the run left out (bad, dropped duplicates). */
async function mappedRows(job: TrainJob, file: string, prepared: PreparedDataset): Promise<Record<string, unknown>[]> {
  const left = new Set([
    ...prepared.badRows.map((b) => b.row),
    ...(job.data.dropDuplicates ? prepared.duplicates.map((d) => d.row) : []),
  ]);
  const rows: Record<string, unknown>[] = [];
  for await (const item of readSamples(file, {
    format: prepared.format,
    mapping: fromDataSettings(job.data).mapping,
  })) {
    if (item.type === 'sample' && !left.has(item.row)) rows.push(sampleRecord(item.row, item.sample));
  }
  return rows;
}

/** What the TRL project does differently, said once for the README, the CLI and the GUI. */
function caveatsOf(job: TrainJob, source: HandoffSource, baseModel: string, prepared: PreparedDataset): string[] {
  const caveats: string[] = [];
  if (!source.run?.hubModel)
    caveats.push(
      `the base model is this computer's folder ${baseModel}: on another machine, set BASE_MODEL to its Hub id or a copy of the folder`,
    );
  if (source.run && !source.run.dataSha256)
    caveats.push(`run ${source.run.id} recorded no hash of its data file, so the data could not be checked against it`);
  if (job.shuffle)
    caveats.push(
      "the data order differs: TRL's sampler shuffles with torch's generator (seed " +
        `${job.seed}), the studio with its own; the same rows each epoch, in another order, so per-step losses differ (turn shuffling off for the same order)`,
    );
  if (job.method === 'lora' && !job.initAdapterDir)
    caveats.push(
      "a fresh LoRA adapter's A matrices are drawn by PEFT from torch's generator, not the studio's: B starts at zero on both sides, so the first loss is the same and the rest close but not equal",
    );
  if (job.method === 'prompt-tuning' && !job.initAdapterDir && job.promptTuning.init === 'random')
    caveats.push("the random virtual tokens are drawn by PEFT from torch's generator, not the studio's");
  if (job.lora.dropout > 0 && job.method === 'lora')
    caveats.push(
      `LoRA dropout (${job.lora.dropout}) draws its masks from torch's generator, not the studio's seeded ones`,
    );
  if (job.quantize === 'int4')
    caveats.push('int4 base weights have no bitsandbytes counterpart: train.py quantizes to nf4, the closest');
  if (job.quantize !== 'none')
    caveats.push(
      '4-bit base weights need bitsandbytes and a CUDA GPU; bitsandbytes is not in requirements.txt (not tested here)',
    );
  if (job.data.pack)
    caveats.push(
      'TRL warns that padding-free batches of packed rows want flash attention: with sdpa or eager attention transformers builds the per-sample mask from the position ids instead (the same losses), flash-attention 2 is faster',
    );
  if (job.keepBest && job.evalEvery === 0)
    caveats.push(
      'keeping the best adapter needs validation every few steps: train.py keeps the last one, as the run did after its only validation',
    );
  if ((job.keepBest || job.earlyStoppingPatience > 0) && job.evalEvery > 0 && job.checkpointEvery !== job.evalEvery)
    caveats.push(
      `transformers keeps the best adapter from its checkpoints, so train.py saves one at every validation (every ${job.evalEvery} steps) instead of every ${job.checkpointEvery}`,
    );
  if (job.earlyStoppingPatience > 0 && job.evalEvery > 0 && job.earlyStoppingPatience % job.evalEvery !== 0)
    caveats.push(
      `early stopping counts validations in transformers: ${job.earlyStoppingPatience} steps become ${Math.ceil(job.earlyStoppingPatience / job.evalEvery)} validations of ${job.evalEvery} steps`,
    );
  if (job.data.dropDuplicates && prepared.duplicates.length)
    caveats.push(
      `${prepared.duplicates.length} duplicate rows were dropped, as the run did; data/rows.jsonl leaves them out too`,
    );
  return caveats;
}

/** Copies a folder's plain files (an adapter folder: a few files, no subfolders needed). */
function copyFolder(from: string, to: string): string[] {
  const names = fs.readdirSync(from).filter((name) => fs.statSync(path.join(from, name)).isFile());
  for (const name of names) writeFileAtomic(path.join(to, name), [fs.readFileSync(path.join(from, name))]);
  return names;
}

/** Writes the project into `outDir` (new or empty); all of it or, on failure, nothing. */
export async function writeHandoff(source: HandoffSource, outDir: string): Promise<HandoffResult> {
  const { job } = source;
  const folder = path.resolve(outDir);
  checkOutputFolder(folder);
  await checkDataUnchanged(source);
  const model = openModelFolder(job.modelDir);
  const options = (validationFraction: number) => ({
    modelDir: job.modelDir,
    vocabSize: model.spec.vocabSize,
    maxSeqLen: job.maxSeqLen,
    ...fromDataSettings(job.data),
    validationFraction,
    seed: job.seed,
  });
  const prepared = await prepareDataset({ file: job.dataFile, ...options(job.evalDataFile ? 0 : job.evalSplit) });
  const evalPrepared = job.evalDataFile ? await prepareDataset({ file: job.evalDataFile, ...options(0) }) : null;
  const validation = evalPrepared ? evalPrepared.sequences : prepared.validation;

  const baseModel = source.run?.hubModel ?? path.resolve(job.modelDir);
  const title = source.run ? `Run ${source.run.id} "${source.run.name}"` : `Recipe for ${path.basename(job.dataFile)}`;
  const caveats = caveatsOf(job, source, baseModel, prepared);
  const advice = gpuAdvice(job, model.spec);

  // Built beside the destination, renamed into place when whole.
  const temp = `${folder}.partial-${process.pid}-${Date.now()}`;
  fs.mkdirSync(temp, { recursive: true });
  try {
    const files: string[] = [];
    const write = (name: string, text: string) => {
      writeFileAtomic(path.join(temp, name), text);
      files.push(name);
    };
    const dataFiles: { file: string; sha256: string; what: string }[] = [];
    const writeData = (name: string, records: Iterable<unknown>, what: string) => {
      dataFiles.push({ file: name, sha256: writeJsonLines(path.join(temp, name), records), what });
      files.push(name);
    };
    const packing = job.data.pack ? ', packed several to a sequence (seq_lengths)' : '';
    writeData(
      'data/train.jsonl',
      sequenceRecords(prepared.sequences),
      `what train.py trains on: ${prepared.sequences.length} sequences of token ids and labels (-100: no loss), as the studio's engine built them from ${path.basename(job.dataFile)}${packing}`,
    );
    if (validation.length)
      writeData(
        'data/eval.jsonl',
        sequenceRecords(validation),
        `the ${validation.length} validation sequences, the same way`,
      );
    writeData(
      'data/rows.jsonl',
      await mappedRows(job, job.dataFile, prepared),
      `the rows of ${path.basename(job.dataFile)} (${prepared.format}) after the column mapping, without the bad rows the run skipped; "row" is the line in the original file`,
    );
    if (job.evalDataFile && evalPrepared)
      writeData(
        'data/eval_rows.jsonl',
        await mappedRows(job, job.evalDataFile, evalPrepared),
        `the rows of the validation file ${path.basename(job.evalDataFile)}, the same way`,
      );
    write('data/SHA256SUMS', dataFiles.map((d) => `${d.sha256}  ${d.file}\n`).join(''));
    if (job.data.chatTemplate) write('chat_template.jinja', fs.readFileSync(job.data.chatTemplate, 'utf8'));
    if (job.initAdapterDir)
      files.push(...copyFolder(job.initAdapterDir, path.join(temp, 'init_adapter')).map((f) => `init_adapter/${f}`));
    write(
      'train.py',
      trainScript({
        job,
        title,
        baseModel,
        hasEval: validation.length > 0,
        hasChatTemplate: job.data.chatTemplate !== null,
        hasInitAdapter: job.initAdapterDir !== null,
      }),
    );
    for (const [name, text] of Object.entries(ACCELERATE_CONFIGS)) write(`accelerate/${name}`, text);
    write('requirements.txt', `${PINNED_REQUIREMENTS.join('\n')}\n`);
    const name = source.run ? `peft-studio-run-${source.run.id}` : slug(title);
    write('slurm.sbatch', sbatchScript(name));
    write('sky.yaml', skyTask(name, advice));
    write('job.json', `${JSON.stringify(job, null, 2)}\n`);
    write('README.md', readme({ title, job, runId: source.run?.id ?? null, baseModel, dataFiles, advice, caveats }));
    if (fs.existsSync(folder)) fs.rmdirSync(folder); // empty: checked above
    fs.renameSync(temp, folder);
    return { folder, caveats, files };
  } catch (err) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw err;
  }
}
