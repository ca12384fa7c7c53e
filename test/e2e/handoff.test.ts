// "Run elsewhere" in real Chromium against `peft-studio serve`: a finished run's dashboard writes its TRL project
// into the folder typed, shows the folder and what TRL does differently, and says a folder that is not empty in
// words; the new-run wizard's review step hands off its recipe (a CSV read through its column mapping, a bad row
// skipped) without training it. Needs `npm run build` and /usr/bin/chromium.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunDetails } from '../../shared/api.js';
import type { RunRecord } from '../../shared/runs.js';
import { demoJob } from '../api/jobs.js';
import { callApi } from '../support/serve.js';
import { launchStudioBrowser, type StudioBrowser } from '../support/studioBrowser.js';

let studio: StudioBrowser;
let run: RunRecord;

async function api<T>(method: string, params: unknown): Promise<T> {
  const answer = await callApi(studio.served, method, params);
  if (answer.status !== 200) throw new Error(`${method}: ${answer.status} ${answer.body}`);
  return JSON.parse(answer.body) as T;
}

beforeAll(async () => {
  studio = await launchStudioBrowser('handoff');
  run = await api<RunRecord>('runs.start', { job: demoJob(path.join(studio.home, 'adapters', 'demo'), 2) });
  const deadline = Date.now() + 180_000;
  while ((await api<RunDetails>('runs.get', { id: run.id })).run.status !== 'completed') {
    if (Date.now() > deadline) throw new Error(`run ${run.id} did not complete`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}, 300_000);
afterAll(async () => {
  await studio?.close();
});

describe('run elsewhere', () => {
  it('writes the run as a TRL project into the folder chosen, with its caveats; a used folder is refused', async () => {
    const page = await studio.openStudio(`#/runs/${run.id}`);
    await page.getByRole('button', { name: 'Run elsewhere…' }).click();
    const used = path.join(studio.home, 'used');
    fs.mkdirSync(used);
    fs.writeFileSync(path.join(used, 'notes.txt'), 'mine');
    await page.getByLabel('Project folder').fill(used);
    await page.getByRole('button', { name: 'Write the project' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/the output folder is not empty/);

    const project = path.join(studio.home, 'elsewhere');
    await page.getByLabel('Project folder').fill(project);
    await page.getByRole('button', { name: 'Write the project' }).click();
    const result = page.getByTestId('handoff-result');
    await expect.poll(() => result.textContent(), { timeout: 60_000 }).toContain(`Written to ${project}`);
    // The demo run shuffled its rows and started from a fresh adapter: both said, in words.
    const caveats = await result.locator('li').allTextContents();
    expect(caveats.some((c) => /the data order differs/.test(c))).toBe(true);
    expect(caveats.some((c) => /fresh LoRA adapter/.test(c))).toBe(true);
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(fs.readFileSync(path.join(project, 'train.py'), 'utf8')).toMatch(/SFTTrainer/);
    expect(fs.readFileSync(path.join(project, 'README.md'), 'utf8')).toMatch(
      new RegExp(`peft-studio import output --run ${run.id}\\n`),
    );
    await page.close();
  });

  it("hands off the wizard's recipe without training it: the CSV's rows as mapped, the bad row skipped", async () => {
    const csv = path.join(studio.home, 'support.csv');
    const questions = ['Where is my order?', 'Can I return it?', 'Do you ship abroad?', 'How do I pay?'];
    const answers = ['It ships tomorrow.', 'Yes within 30 days.', 'To most countries.', 'By card or transfer.'];
    // Line 3 asks nothing: a bad row, which the wizard is told to skip.
    const lines = questions.map((q, i) => `${q},${answers[i]}`);
    lines.splice(1, 0, '"",Nothing asked.');
    fs.writeFileSync(csv, ['question,answer', ...lines].join('\n') + '\n');

    const page = await studio.openStudio('#/new');
    await expect.poll(() => page.getByTestId('model-facts').textContent()).toContain('yes');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('A file on this computer').check();
    await page.getByLabel('Data file').fill(csv);
    await page.getByRole('button', { name: 'Check data' }).click();
    await page.getByRole('button', { name: 'Read it that way' }).click();
    await expect.poll(() => page.getByTestId('dataset-facts').textContent()).toMatch(/prompt-completion/);
    await page.getByLabel('Skip the bad rows and train on the rest').check();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('radio', { name: /^LoRA/ }).check();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Steps', { exact: true }).fill('7');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('button', { name: 'Run elsewhere…' }).click();
    await page.getByRole('button', { name: 'Write the project' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toBe('Choose a new or empty folder for the project.');
    const project = path.join(studio.home, 'recipe-elsewhere');
    await page.getByLabel('Project folder').fill(project);
    await page.getByRole('button', { name: 'Write the project' }).click();
    const result = page.getByTestId('handoff-result');
    await expect.poll(() => result.textContent(), { timeout: 60_000 }).toContain(`Written to ${project}`);
    expect(await result.textContent()).toContain('Where the TRL run differs from training here');
    expect(await page.getByRole('alert').count()).toBe(0);

    const script = fs.readFileSync(path.join(project, 'train.py'), 'utf8');
    expect(script).toMatch(/SFTTrainer/);
    expect(script).toMatch(/max_steps=7,/);
    const rows = fs
      .readFileSync(path.join(project, 'data/rows.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    expect(rows).toEqual(questions.map((prompt, i) => ({ row: i === 0 ? 2 : i + 3, prompt, completion: answers[i] })));
    // Each good row is one sequence (no packing), for training or validation.
    const sequences = (file: string) =>
      fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').length : 0;
    expect(sequences(path.join(project, 'data/train.jsonl')) + sequences(path.join(project, 'data/eval.jsonl'))).toBe(
      questions.length,
    );
    const readme = fs.readFileSync(path.join(project, 'README.md'), 'utf8');
    expect(readme).toMatch(/^# Recipe for support\.csv/);
    expect(readme).toMatch(/peft-studio import output\n/);
    // Handed off, not trained: the wizard stays open and the run above is still the only one.
    expect(page.url()).toMatch(/#\/new$/);
    expect((await api<RunRecord[]>('runs.list', {})).map((r) => r.id)).toEqual([run.id]);
    await page.close();
  });
});
