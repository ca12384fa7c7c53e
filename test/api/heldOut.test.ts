// runs.heldOut through the studio API (the built dist, as the app and `serve` run it): a real demo run's validation
// rows, the same ones the engine's seeded split held out, answered by the base model and with the adapter on a
// one-shot thread; kept in the run's folder until the adapter changes. A run that held out nothing is refused in words.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import { splitTrainValidation } from '../../main/data/packing.js';
import { DEMO_RECIPE } from '../../shared/demo.js';
import type { RunRecord } from '../../shared/runs.js';
import type { TrainJob } from '../../shared/training.js';
import { ROOT } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { DEMO_DATA, demoJob } from './jobs.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};

let work: string;
let api: StudioService;

beforeAll(() => {
  work = tempDir('held-out-api');
  api = createStudioApi({ home: path.join(work, 'home') });
});

afterAll(async () => {
  await api?.close();
});

async function trained(job: TrainJob): Promise<RunRecord> {
  const { id } = await api.call('runs.start', { job });
  const deadline = Date.now() + 300_000;
  for (;;) {
    const { run } = await api.call('runs.get', { id });
    if (['completed', 'failed', 'cancelled', 'interrupted'].includes(run.status)) {
      expect(run.status, run.error ?? '').toBe('completed');
      return run;
    }
    if (Date.now() > deadline) throw new Error(`run ${id} did not finish`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** runs.heldOut's answers, generated unless kept. */
async function answered(id: number, count?: number) {
  const answers = await api.call('runs.heldOut', count === undefined ? { id } : { id, count });
  if (!answers) throw new Error('runs.heldOut generated nothing');
  return answers;
}

/** The demo's recipe for a few dozen steps, with a tenth of the rows held out. */
function demoRun(outDir: string, steps: number, evalSplit: number): TrainJob {
  const job = demoJob(outDir, steps);
  const { learningRate, rank, alpha, targets, maxSeqLen } = DEMO_RECIPE;
  return {
    ...job,
    lora: { ...job.lora, rank, alpha, targets: [...targets] },
    optimizer: { ...job.optimizer, learningRate },
    batchSize: 4,
    maxSeqLen,
    evalSplit,
    evalEvery: evalSplit ? 10 : 0,
    checkpointEvery: 0,
    keepCheckpoints: 1,
    device: 'cpu',
  };
}

describe('runs.heldOut', () => {
  it("answers the run's validation rows both ways, keeps them in the run's folder, and recomputes for a new adapter", async () => {
    const run = await trained(demoRun(path.join(work, 'adapter'), 30, 0.1));

    // The rows the engine held out: the data file's rows through the same seeded split, cut after "Assistant:".
    const texts = fs
      .readFileSync(DEMO_DATA, 'utf8')
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => (JSON.parse(line) as { text: string }).text);
    const held = splitTrainValidation(texts, { validationFraction: 0.1, seed: run.job.seed }).validation.slice(0, 3);
    const cutAt = (text: string) => text.lastIndexOf('\nAssistant:') + '\nAssistant:'.length;

    // Nothing kept yet: a dashboard's first look answers null and generates nothing.
    expect(await api.call('runs.heldOut', { id: run.id, keptOnly: true })).toBeNull();
    const first = await answered(run.id);
    expect(first.note).toBeNull();
    expect(first.rows.map(({ prompt, expected }) => ({ prompt, expected }))).toEqual(
      held.map((text) => ({ prompt: text.slice(0, cutAt(text)), expected: text.slice(cutAt(text)).trim() })),
    );
    for (const row of first.rows) {
      expect(row.base).toEqual(expect.any(String));
      expect(row.adapter).toEqual(expect.any(String));
      expect(`${row.base}${row.adapter}`.length).toBeGreaterThan(0);
    }
    // 30 steps at the demo's rate move the adapter's answers away from the base model's.
    expect(first.rows.some((row) => row.adapter !== row.base)).toBe(true);

    // Kept in the run's folder: a second call reads them (a planted answer shows), without generating again.
    const cacheFile = path.join(run.runDir, 'held-out-answers.json');
    const cached = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { rows: { adapter: string }[] };
    cached.rows[0].adapter = 'planted';
    fs.writeFileSync(cacheFile, JSON.stringify(cached));
    const again = await answered(run.id);
    expect(again.rows[0].adapter).toBe('planted');
    expect(again.rows.slice(1)).toEqual(first.rows.slice(1));
    expect(await api.call('runs.heldOut', { id: run.id, keptOnly: true })).toEqual(again);

    // The adapter's weights rewritten (as a retrain would): answered again, the planted answer gone.
    const weights = path.join(run.job.outDir, 'adapter_model.safetensors');
    const later = new Date(Date.now() + 5_000);
    fs.utimesSync(weights, later, later);
    expect(await api.call('runs.heldOut', { id: run.id, keptOnly: true })).toBeNull();
    expect(await answered(run.id)).toEqual(first);

    // Fewer rows asked: the first of them.
    expect((await answered(run.id, 1)).rows).toEqual(first.rows.slice(0, 1));
  });

  it('cuts prompt-completion rows into the prompt and the trained answer', async () => {
    const data = path.join(work, 'support.csv');
    fs.writeFileSync(
      data,
      'question,answer\nWhere is my order?,It ships tomorrow.\nHi,Hello!\nCan I return it?,Yes within 30 days.\nDo you ship abroad?,Only within the EU.\n',
    );
    const job = demoRun(path.join(work, 'csv-adapter'), 2, 0.5);
    const run = await trained({
      ...job,
      dataFile: data,
      data: { ...job.data, format: 'prompt-completion', columns: { prompt: 'question', completion: 'answer' } },
    });
    const rows = [
      ['Where is my order?', 'It ships tomorrow.'],
      ['Hi', 'Hello!'],
      ['Can I return it?', 'Yes within 30 days.'],
      ['Do you ship abroad?', 'Only within the EU.'],
    ];
    const held = splitTrainValidation(rows, { validationFraction: 0.5, seed: run.job.seed }).validation;
    const answers = await answered(run.id);
    expect(answers.rows).toHaveLength(2);
    answers.rows.forEach((row, i) => {
      expect(row.prompt).toContain(held[i][0]);
      expect(row.expected).toBe(held[i][1]);
      expect(row.base).toEqual(expect.any(String));
    });
    expect(answers.note).toBe('the run held out 2 rows.');
  });

  it("answers the first rows of a run's validation file: the demo's held-out questions", async () => {
    const { heldOutFile } = await api.call('demo.paths', {});
    const run = await trained({ ...demoRun(path.join(work, 'file-adapter'), 2, 0), evalDataFile: heldOutFile });
    const texts = fs
      .readFileSync(heldOutFile, 'utf8')
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => (JSON.parse(line) as { text: string }).text);
    const answers = await answered(run.id);
    expect(answers.note).toBeNull();
    expect(answers.rows.map(({ prompt, expected }) => `${prompt} ${expected}`)).toEqual(texts.slice(0, 3));
  });

  it('says so, rather than guess, when held-out text rows have no prompt part', async () => {
    const data = path.join(work, 'notes.jsonl');
    const notes = [
      'Bikes need oil.',
      'Tyres wear out.',
      'Chains stretch.',
      'Brakes squeal.',
      'Lights help.',
      'Bells ring.',
    ];
    fs.writeFileSync(data, notes.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const run = await trained({ ...demoRun(path.join(work, 'notes-adapter'), 2, 0.5), dataFile: data });
    expect(await answered(run.id)).toEqual({
      rows: [],
      note: '3 held-out rows have no prompt part (plain text with no "User: ... Assistant:" turn), so not shown; the run held out 3 rows.',
    });
  });

  it('refuses a run that held out no rows, in words', async () => {
    const run = await trained(demoRun(path.join(work, 'no-eval-adapter'), 2, 0));
    await expect(api.call('runs.heldOut', { id: run.id })).rejects.toThrow(
      'this run held out no rows: set a validation split to compare answers',
    );
    await expect(api.call('runs.heldOut', { id: 999 })).rejects.toThrow('run 999: no such run');
  });
});
