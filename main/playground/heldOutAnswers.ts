// Held-out answers: prompts a run never trained on, answered greedily by the base model and with the adapter from one
// inference session, beside the expected answer. The CLI demo prints them; the studio's run dashboard shows them for
// a run's validation rows.
import type { HeldOutAnswer } from '../../shared/api.js';
import type { DeviceChoice, TrainJob } from '../../shared/training.js';
import { loadAdapter } from '../adapter/anyAdapter.js';
import { fromDataSettings, prepareDataset } from '../data/dataset.js';
import type { TrainingSequence } from '../data/packing.js';
import { IGNORE_INDEX } from '../data/render.js';
import { InferenceModel } from '../engine/runtime/inferenceModel.js';
import { chooseDevice } from '../engine/runtime/runtime.js';
import { engineThreads } from '../engine/runtime/threads.js';
import { openModelFolder } from '../model/modelFolder.js';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.js';
import { generate, type GenerateOptions } from './generate.js';

/**
 * Greedy answers, one line long, the same settings for the base model and the adapter. No repetition penalty: an
 * answer learned word for word repeats its subword tokens, and a penalty on them garbles it (the demo's held-out
 * answers, 14 of 18 in clean words without one, fewer with 1.1).
 */
export const ANSWER_SAMPLING: GenerateOptions = {
  maxNewTokens: 64,
  temperature: 0,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1,
  seed: 0,
  stop: ['\n'],
  ignoreEos: false,
  adapterScale: 1,
};

/** Text rows in the demo's dialogue form, `User: ...\nAssistant: ...`: the prompt ends where the answer starts. */
export const ANSWER_MARK = '\nAssistant:';

export interface HeldOutPrompt {
  prompt: string;
  expected: string;
  /** The prompt's tokens as the run saw them (a chat template's marks included); else `prompt` is encoded. */
  promptIds?: number[];
}

export interface AnsweringModel {
  modelDir: string;
  adapterDir: string;
  device: DeviceChoice;
  threads: number | null;
}

/** Answers each prompt as the base model (adapter scale 0) and with the adapter (scale 1). */
export async function answerHeldOut(
  { modelDir, adapterDir, device, threads }: AnsweringModel,
  prompts: HeldOutPrompt[],
): Promise<HeldOutAnswer[]> {
  const folder = openModelFolder(modelDir);
  const tokenizer = loadTokenizer(folder.dir);
  // One session answers both ways: the adapter stays unmerged and scale 0 turns it off.
  const model = await InferenceModel.load(folder, chooseDevice(device).device, loadAdapter(adapterDir, folder.spec), {
    threads: engineThreads(threads),
  });
  const answer = async (promptIds: number[], adapterScale: number) => {
    const tokens = generate(model, tokenizer, promptIds, { ...ANSWER_SAMPLING, adapterScale });
    let next = await tokens.next();
    while (!next.done) next = await tokens.next();
    return next.value.text.trim();
  };
  try {
    const answers: HeldOutAnswer[] = [];
    for (const { prompt, expected, promptIds } of prompts) {
      const ids = promptIds ?? tokenizer.encode(prompt);
      answers.push({ prompt, expected, base: await answer(ids, 0), adapter: await answer(ids, 1) });
    }
    return answers;
  } finally {
    await model.close();
  }
}

export interface RunHeldOutPrompts {
  prompts: HeldOutPrompt[];
  /** What the user should know about the rows shown (some left out, fewer than asked); null when nothing. */
  note: string | null;
  /** Validation rows the run had. */
  validationRows: number;
}

/**
 * The first `count` validation rows of a run, read through the same pipeline and seed as the engine's split (its
 * evalDataFile when it has one), each cut into prompt and expected answer. Rows without a prompt part are left out.
 */
export async function runHeldOutPrompts(job: TrainJob, count: number): Promise<RunHeldOutPrompts> {
  const folder = openModelFolder(job.modelDir);
  const prepared = await prepareDataset({
    file: job.evalDataFile ?? job.dataFile,
    modelDir: folder.dir,
    vocabSize: folder.spec.vocabSize,
    maxSeqLen: job.maxSeqLen,
    ...fromDataSettings(job.data),
    // Packing comes after the split and does not change which rows are held out; unpacked, a sequence is one row.
    pack: false,
    validationFraction: job.evalDataFile ? 0 : job.evalSplit,
    seed: job.seed,
  });
  // With an evalDataFile every row of that file is held out (the engine reads it with no split).
  const heldOut = job.evalDataFile ? prepared.sequences : prepared.validation;
  const tokenizer = loadTokenizer(folder.dir);
  const prompts: HeldOutPrompt[] = [];
  const isText = prepared.format === 'text';
  let withoutPrompt = 0;
  for (const sample of heldOut) {
    if (prompts.length === count) break;
    const cut = cutSample(sample, isText, tokenizer);
    if (cut) prompts.push(cut);
    else withoutPrompt++;
  }
  const notes: string[] = [];
  if (withoutPrompt) {
    const why = isText ? 'plain text with no "User: ... Assistant:" turn' : 'trained on every token';
    notes.push(
      `${withoutPrompt} held-out row${withoutPrompt > 1 ? 's have' : ' has'} no prompt part (${why}), so not shown`,
    );
  }
  if (prompts.length < count && heldOut.length)
    notes.push(`the run held out ${heldOut.length} row${heldOut.length > 1 ? 's' : ''}`);
  return { prompts, note: notes.length ? `${notes.join('; ')}.` : null, validationRows: heldOut.length };
}

/**
 * A row's prompt and expected answer. Rows with a prompt part (chat, alpaca, prompt-completion): the tokens before
 * the first trained one, and the first run of trained tokens. Text rows: split after the last `\nAssistant:`, or
 * null when there is none.
 */
function cutSample(sample: TrainingSequence, isText: boolean, tokenizer: ModelTokenizer): HeldOutPrompt | null {
  const ids = Array.from(sample.inputIds);
  const decode = (part: number[]) => tokenizer.decode(part, { skipSpecialTokens: true });
  if (isText) {
    const text = decode(ids);
    const at = text.lastIndexOf(ANSWER_MARK);
    if (at < 0) return null;
    const cut = at + ANSWER_MARK.length;
    return { prompt: text.slice(0, cut), expected: text.slice(cut).trim() };
  }
  const start = sample.labels.findIndex((label) => label !== IGNORE_INDEX);
  if (start <= 0) return null;
  let end = start;
  while (end < ids.length && sample.labels[end] !== IGNORE_INDEX) end++;
  const promptIds = ids.slice(0, start);
  return { prompt: decode(promptIds), expected: decode(ids.slice(start, end)).trim(), promptIds };
}
