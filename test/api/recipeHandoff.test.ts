// recipes.handoff through the studio API (the built dist, as the app and `serve` run it): the wizard's job, never run
// here, written as a TRL project with its data read as a run would (the CSV's column mapping, the bad row skipped);
// no run is recorded and nothing is trained. Bad input is refused in one line: a used folder, a bad row not skipped
// (named by its field), a job the contract refuses.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import type { TrainJob } from '../../shared/training.js';
import { ROOT } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { demoJob } from './jobs.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};

let work: string;
let api: StudioService;
let recipe: TrainJob;

beforeAll(() => {
  work = tempDir('recipe-handoff-api');
  api = createStudioApi({ home: path.join(work, 'home'), autoStart: false });
  const data = path.join(work, 'support.csv');
  // Row 4 has no question: a bad row, which this recipe skips.
  fs.writeFileSync(
    data,
    'question,answer\nWhere is my order?,It ships tomorrow.\nHi,Hello!\n"",Nothing asked.\nCan I return it?,Yes within 30 days.\n',
  );
  const job = demoJob(path.join(work, 'adapter'), 3);
  recipe = {
    ...job,
    dataFile: data,
    data: {
      ...job.data,
      format: 'prompt-completion',
      columns: { prompt: 'question', completion: 'answer' },
      skipBadRows: true,
    },
    shuffle: false,
    evalSplit: 0,
    evalEvery: 0,
  };
});

afterAll(async () => {
  await api?.close();
});

const rowsOf = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('recipes.handoff', () => {
  it('writes the recipe as a TRL project with its rows after the column mapping, and runs nothing here', async () => {
    const out = path.join(work, 'project');
    const result = await api.call('recipes.handoff', { job: recipe, outDir: out });
    expect(result.folder).toBe(out);
    for (const file of ['train.py', 'README.md', 'requirements.txt', 'data/train.jsonl', 'data/rows.jsonl', 'job.json'])
      expect(result.files, file).toContain(file);
    expect(result.files).not.toContain('data/eval.jsonl'); // no validation split in this recipe
    expect(rowsOf(path.join(out, 'data/rows.jsonl'))).toEqual([
      { row: 2, prompt: 'Where is my order?', completion: 'It ships tomorrow.' },
      { row: 3, prompt: 'Hi', completion: 'Hello!' },
      { row: 5, prompt: 'Can I return it?', completion: 'Yes within 30 days.' },
    ]);
    // Three sequences of ids and labels, the prompt's tokens masked.
    const train = rowsOf(path.join(out, 'data/train.jsonl')) as { input_ids: number[]; labels: number[] }[];
    expect(train).toHaveLength(3);
    for (const sequence of train) {
      expect(sequence.labels).toHaveLength(sequence.input_ids.length);
      expect(sequence.labels[0]).toBe(-100);
      expect(sequence.labels.some((label) => label !== -100)).toBe(true);
    }
    const script = fs.readFileSync(path.join(out, 'train.py'), 'utf8');
    expect(script).toMatch(/SFTTrainer/);
    expect(script).toMatch(/r=4,\n\s+lora_alpha=8,/);
    expect(script).toMatch(/max_steps=3,/);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'job.json'), 'utf8'))).toEqual(recipe);
    const readme = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(readme).toMatch(/Recipe for support\.csv/);
    // A recipe has no run to link the adapter to: the import line names none.
    expect(readme.trim().split('\n').slice(-2)[0]).toBe('peft-studio import output');
    expect(result.caveats.join('\n')).toMatch(/fresh LoRA adapter/);
    expect(result.caveats.join('\n')).not.toMatch(/order differs/); // shuffling is off
    expect(await api.call('runs.list', {})).toEqual([]);
    expect(fs.existsSync(recipe.outDir)).toBe(false);
  });

  it('refuses a used folder, a bad row the recipe does not skip, and a job the contract refuses, one line each', async () => {
    const used = path.join(work, 'used');
    fs.mkdirSync(used);
    fs.writeFileSync(path.join(used, 'notes.txt'), 'mine');
    await expect(api.call('recipes.handoff', { job: recipe, outDir: used })).rejects.toThrow(
      `${used}: the output folder is not empty (1 entries); choose a new or empty folder`,
    );
    expect(fs.readdirSync(used)).toEqual(['notes.txt']);

    const unskipped = { ...recipe, data: { ...recipe.data, skipBadRows: false } };
    const refused = await api.call('recipes.handoff', { job: unskipped, outDir: path.join(work, 'x') }).then(
      () => null,
      (err: unknown) => err as { message: string; field?: string },
    );
    expect(refused?.message).toMatch(/support\.csv:4: .*\(1 bad row; fix them or skip them\)$/);
    expect(refused?.field).toBe('data.skipBadRows');
    // Nothing half-written beside the folder either.
    expect(fs.readdirSync(work).filter((name) => name.startsWith('x'))).toEqual([]);

    await expect(
      api.dispatch('recipes.handoff', {
        job: { ...recipe, lora: { ...recipe.lora, rank: 0 } },
        outDir: path.join(work, 'y'),
      }),
    ).rejects.toThrow(/^recipes\.handoff: params\.job\.lora\.rank: /);
  });
});
