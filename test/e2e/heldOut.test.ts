// The run dashboard's held-out answers in real Chromium against `peft-studio serve`, at 800 px wide: a demo run that
// held out the demo's held-out rows, as the wizard's runs on the demo data do, compares them on a click (prompt,
// expected, base model, with the adapter), and shows them at once when the dashboard opens again; a run that held out
// nothing says how to get such rows. Writes docs/screenshots/held-out.png with UPDATE_SCREENSHOTS=1. Needs
// `npm run build` and /usr/bin/chromium.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunDetails } from '../../shared/api.js';
import { DEMO_RECIPE } from '../../shared/demo.js';
import type { RunRecord } from '../../shared/runs.js';
import type { TrainJob } from '../../shared/training.js';
import type * as Demo from '../../main/cli/demo.js';
import { ROOT } from '../support/cli.js';
import { callApi } from '../support/serve.js';
import { launchStudioBrowser, type StudioBrowser } from '../support/studioBrowser.js';

let studio: StudioBrowser;
// The CLI demo's job (the built module: its resource paths are the served studio's).
const { demoJob } = (await import(path.join(ROOT, 'dist/main/cli/demo.js'))) as typeof Demo;
/** The screenshot shows the demo's whole recipe; the check itself needs answers, not good ones: a short run. */
const DEMO_STEPS = process.env.UPDATE_SCREENSHOTS ? DEMO_RECIPE.steps : 60;

async function api<T>(method: string, params: unknown): Promise<T> {
  const answer = await callApi(studio.served, method, params);
  if (answer.status !== 200) throw new Error(`${method}: ${answer.status} ${answer.body}`);
  return JSON.parse(answer.body) as T;
}

async function trained(job: TrainJob): Promise<RunRecord> {
  const run = await api<RunRecord>('runs.start', { job });
  const deadline = Date.now() + 600_000;
  while ((await api<RunDetails>('runs.get', { id: run.id })).run.status !== 'completed') {
    if (Date.now() > deadline) throw new Error(`run ${run.id} did not complete`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return run;
}

/**
 * The demo's whole recipe, as the wizard's Quick preset on the demo model and data runs it (validated on the demo's
 * held-out file), or validated on nothing; `steps` to shorten it.
 */
async function demoRun(name: string, validated: boolean, steps: number = DEMO_STEPS): Promise<TrainJob> {
  const { dataFile, heldOutFile } = await api<{ dataFile: string; heldOutFile: string }>('demo.paths', {});
  const job = demoJob(dataFile, path.join(studio.home, 'adapters', name), steps, 'cpu');
  return {
    ...job,
    evalSplit: 0,
    evalDataFile: validated ? heldOutFile : null,
    evalEvery: validated ? Math.max(1, Math.round(steps / 10)) : 0,
  };
}

beforeAll(async () => {
  studio = await launchStudioBrowser('held-out');
}, 60_000);
afterAll(async () => {
  await studio?.close();
});

describe('held-out answers on the run dashboard', () => {
  it('compares the held-out rows on a click, and shows them at once when the dashboard opens again', async () => {
    const run = await trained(await demoRun('demo', true));
    const page = await studio.openStudio(`#/runs/${run.id}`);
    await page.setViewportSize({ width: 800, height: 900 });
    const compare = page.getByRole('button', { name: 'Compare on held-out rows' });
    await compare.click();
    const table = page.getByTestId('held-out-answers');
    await table.waitFor({ timeout: 120_000 });
    expect(await table.locator('thead th').allTextContents()).toEqual([
      'Prompt',
      'Expected',
      'Base model',
      'With the adapter',
    ]);
    const rows = table.locator('tbody tr');
    expect(await rows.count()).toBe(3);
    for (let i = 0; i < 3; i++) {
      const cells = await rows.nth(i).locator('td').allTextContents();
      expect(cells[0]).toMatch(/^User: .+\nAssistant:$/);
      expect(cells[1].length).toBeGreaterThan(0);
      expect(cells[2].length).toBeGreaterThan(0);
      expect(cells[3].length).toBeGreaterThan(0);
    }
    expect(await page.getByRole('alert').count()).toBe(0);
    // Readable at 800 px: the table fits its panel, nothing scrolls sideways.
    expect(await table.evaluate((el) => el.scrollWidth <= el.parentElement!.clientWidth)).toBe(true);
    await screenshot(page, 'held-out');

    // Kept in the run's folder: opened again, the table is there without a click.
    const firstRows = await rows.allTextContents();
    await page.reload();
    await table.waitFor({ timeout: 10_000 });
    expect(await table.locator('tbody tr').allTextContents()).toEqual(firstRows);
    expect(await compare.count()).toBe(0);
    await page.close();
  }, 300_000);

  it('says how to get held-out rows when the run held out none', async () => {
    const run = await trained(await demoRun('no-split', false, 2));
    const page = await studio.openStudio(`#/runs/${run.id}`);
    const none = page.getByTestId('held-out-none');
    await expect.poll(() => none.textContent()).toMatch(/held out no rows.*Validation split above 0/s);
    expect(await page.getByRole('button', { name: 'Compare on held-out rows' }).count()).toBe(0);
    await page.close();
  }, 300_000);
});

/** As test/e2e/studio.test.ts: into docs/screenshots/ only when UPDATE_SCREENSHOTS=1. */
async function screenshot(page: Page, screen: string): Promise<void> {
  const folder =
    process.env.UPDATE_SCREENSHOTS === '1'
      ? path.join(ROOT, 'docs/screenshots')
      : fs.mkdtempSync(path.join(os.tmpdir(), 'peft-studio-screens-'));
  await page.locator('.held-out').screenshot({ path: path.join(folder, `${screen}.png`) });
  if (process.env.UPDATE_SCREENSHOTS !== '1') fs.rmSync(folder, { recursive: true, force: true });
}
