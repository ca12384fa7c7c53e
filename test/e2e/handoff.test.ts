// "Run elsewhere" in real Chromium against `peft-studio serve`: a finished run's dashboard writes its TRL project
// into the folder typed, shows the folder and what TRL does differently, and says a folder that is not empty in
// words. Needs `npm run build` and /usr/bin/chromium.
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
});
