// peft-studio demo: the built-in demo end to end, headless. Trains a LoRA adapter on resources/demo's training rows,
// answers its held-out prompts as the base model and with the adapter, measures both on the held-out rows, and
// exports the adapter (PEFT folder, llama.cpp LoRA GGUF + Ollama Modelfile). Progress goes to stderr; stdout gets
// the report (with --json, one JSON object).
import { DEMO_RECIPE } from '../../shared/demo.js';
import fs from 'node:fs';
import path from 'node:path';
import type { HeldOutAnswer } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import { defaultTrainJob, jobProblems } from '../../shared/trainJob.js';
import type { DeviceChoice, EvalResult, TrainJob } from '../../shared/training.js';
import { exportForOllama } from '../adapter/ollamaExport.js';
import { DEMO_DATA_FILE, DEMO_HELD_OUT_FILE, DEMO_MODEL_DIR } from '../demo.js';
import { runEngine } from '../engine/process/host.js';
import { ANSWER_MARK, answerHeldOut, type HeldOutPrompt } from '../playground/heldOutAnswers.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import { flagNumber, flagString, json, refuseProblems, str, type Command } from './options.js';
import { printEvent } from './progress.js';
import { configuredHome, trainRecorded } from './runs.js';

/** Held-out prompts answered side by side (the loss covers all held-out rows). */
const SHOWN_PROMPTS = 3;
/** What a previous demo leaves in --out: such a folder may be written again. */
const DEMO_ENTRIES = new Set(['data', 'adapter', 'gguf']);

/** Training steps when --steps is not given: about a minute on a 2-core VM. */
const DEMO_STEPS = DEMO_RECIPE.steps;

/**
 * Copies the demo's train and held-out files into --out (the run's own data, beside its adapter) and returns the
 * held-out prompts to compare answers on: the same rows the studio's demo run holds out.
 */
function copyDemoData(trainFile: string, heldOutFile: string): HeldOutPrompt[] {
  fs.mkdirSync(path.dirname(trainFile), { recursive: true });
  writeFileAtomic(trainFile, [fs.readFileSync(DEMO_DATA_FILE)]);
  const heldOut = fs.readFileSync(DEMO_HELD_OUT_FILE, 'utf8');
  writeFileAtomic(heldOutFile, heldOut);
  const rows = heldOut.split('\n').filter((line) => line.trim() !== '');
  return rows.slice(0, SHOWN_PROMPTS).map((line) => {
    const text = (JSON.parse(line) as { text: string }).text;
    const cut = text.indexOf(ANSWER_MARK) + ANSWER_MARK.length;
    return { prompt: text.slice(0, cut), expected: text.slice(cut).trim() };
  });
}

/**
 * The demo's run: the defaults with the demo's recipe (shared/demo.ts), as the wizard's Quick preset on the demo model.
 */
export function demoJob(
  trainFile: string,
  adapterDir: string,
  steps: number,
  device: DeviceChoice,
  threads: number | null = null,
): TrainJob {
  const base = defaultTrainJob('lora', { modelDir: DEMO_MODEL_DIR, dataFile: trainFile, outDir: adapterDir });
  const { learningRate, scheduler, rank, alpha, dropout, targets, batchSize, maxSeqLen, gradientCheckpointing } =
    DEMO_RECIPE;
  return {
    ...base,
    gradientCheckpointing,
    lora: { ...base.lora, rank, alpha, dropout, targets: [...targets] },
    optimizer: { ...base.optimizer, learningRate, scheduler },
    steps,
    batchSize,
    maxSeqLen,
    device,
    threads,
    // A run of a minute or two: the adapter at its end is the only checkpoint worth keeping.
    checkpointEvery: 0,
    keepCheckpoints: 1,
    keepBest: false,
    earlyStoppingPatience: 0,
    // A previous demo's adapter may be written again (nothing but a studio-written adapter ever is).
    overwriteOutput: true,
  };
}

async function train(job: TrainJob, home: string | null, asJson: boolean): Promise<void> {
  // With a studio folder the run is recorded (and shows in the app's library); its summary line goes to stdout.
  if (home) return trainRecorded(job, home, asJson);
  const run = runEngine({ kind: 'train', job, checkpointDir: null, resume: false }, asJson ? () => {} : printEvent);
  const result = await run.result;
  if (result.status !== 'completed') throw new UserError(`the demo run stopped after step ${result.step}`);
}

/** The loss on the held-out rows, read as the training run read its own. */
async function heldOutLoss(
  trained: TrainJob,
  heldOutFile: string,
  adapterDir: string | null,
  asJson: boolean,
): Promise<number> {
  const { modelDir, data, batchSize, maxSeqLen, quantize, device, threads } = trained;
  const job = { modelDir, adapterDir, dataFile: heldOutFile, data, batchSize, maxSeqLen, quantize, device, threads };
  const result: EvalResult = await runEngine({ kind: 'eval', job }, asJson ? () => {} : printEvent).result;
  return result.loss;
}

/** Two columns, each answer wrapped to its width. */
function sideBySide(left: string, right: string, width: number): string[] {
  const wrap = (text: string) => {
    const lines: string[] = [];
    for (let rest = text || '(nothing)'; rest.length; rest = rest.slice(width)) lines.push(rest.slice(0, width));
    return lines;
  };
  const [a, b] = [wrap(left), wrap(right)];
  return Array.from(
    { length: Math.max(a.length, b.length) },
    (_, i) => `  ${(a[i] ?? '').padEnd(width)} | ${b[i] ?? ''}`,
  );
}

function report(
  out: string,
  adapterDir: string,
  exported: { gguf: string; modelfile: string },
  loss: { base: number; adapter: number },
  comparisons: HeldOutAnswer[],
  steps: number,
): string {
  const width = 38;
  const lines = [
    `Trained a LoRA adapter on the demo model for ${steps} steps (the demo's held-out rows never trained on).`,
    '',
  ];
  for (const c of comparisons) {
    lines.push(
      `${c.prompt.replace(/\n/g, ' ')}`,
      `  ${'base model'.padEnd(width)} | with the adapter`,
      ...sideBySide(c.base, c.adapter, width),
      `  expected: ${c.expected}`,
      '',
    );
  }
  lines.push(
    `held-out loss: base ${loss.base.toFixed(4)}, adapter ${loss.adapter.toFixed(4)} (lower is better)`,
    '',
    `wrote to ${out}:`,
    `  ${adapterDir}  PEFT adapter (PeftModel.from_pretrained loads it)`,
    `  ${exported.gguf}  llama.cpp LoRA adapter`,
    `  ${exported.modelfile}  Ollama Modelfile (ollama create demo -f Modelfile)`,
    `  ${path.join(out, 'data')}  the train and held-out rows`,
  );
  return lines.join('\n');
}

function checkOutFolder(out: string): void {
  if (!fs.existsSync(out)) return;
  if (!fs.statSync(out).isDirectory()) throw new UserError(`--out ${out}: is a file, expected a folder`);
  const foreign = fs.readdirSync(out).filter((entry) => !DEMO_ENTRIES.has(entry));
  if (foreign.length)
    throw new UserError(
      `--out ${out}: the folder holds other files (${foreign.slice(0, 3).join(', ')}); give an empty or new folder`,
    );
}

export const DEMO_COMMANDS: Record<string, Command> = {
  demo: {
    summary: 'the built-in demo, headless: train, compare base vs adapter on held-out prompts, export',
    usage: `peft-studio demo [--out ./peft-studio-demo] [--steps ${DEMO_STEPS}] [--device auto|cpu|webgpu|cuda|dml] [--threads N] [--home DIR] [--json]`,
    options: { out: str, steps: str, device: str, threads: str, home: str, json },
    async run(values) {
      const out = path.resolve((values.out as string | undefined) ?? 'peft-studio-demo');
      const asJson = values.json === true;
      const progress = (line: string) => {
        if (!asJson) process.stderr.write(`${line}\n`);
      };
      checkOutFolder(out);

      const [trainFile, heldOutFile] = [
        path.join(out, 'data', 'train.jsonl'),
        path.join(out, 'data', 'held-out.jsonl'),
      ];
      const adapterDir = path.join(out, 'adapter');
      const steps = flagNumber(values, 'steps') ?? DEMO_STEPS;
      // Checked before any file is written: a bad value is named by its flag.
      const job = demoJob(
        trainFile,
        adapterDir,
        steps,
        (flagString(values, 'device') ?? 'auto') as DeviceChoice,
        flagNumber(values, 'threads') ?? null,
      );
      refuseProblems(jobProblems(job), values);

      const prompts = copyDemoData(trainFile, heldOutFile);
      progress(`training on ${trainFile}`);
      await train(job, configuredHome(values), asJson);
      progress(`measuring both models on ${heldOutFile}`);
      const loss = {
        base: await heldOutLoss(job, heldOutFile, null, asJson),
        adapter: await heldOutLoss(job, heldOutFile, adapterDir, asJson),
      };
      progress('answering held-out prompts');
      const comparisons = await answerHeldOut(
        { modelDir: DEMO_MODEL_DIR, adapterDir, device: job.device, threads: job.threads },
        prompts,
      );
      const exported = exportForOllama(DEMO_MODEL_DIR, adapterDir, path.join(out, 'gguf', 'adapter.gguf'));

      if (asJson) {
        process.stdout.write(
          `${JSON.stringify({ out, steps, modelDir: DEMO_MODEL_DIR, trainFile, heldOutFile, adapterDir, ...exported, heldOutLoss: loss, comparisons })}\n`,
        );
      } else {
        process.stdout.write(`${report(out, adapterDir, exported, loss, comparisons, steps)}\n`);
      }
    },
  },
};
