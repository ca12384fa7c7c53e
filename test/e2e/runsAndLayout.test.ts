// Runs you can tell apart, in real Chromium against `peft-studio serve`: a run renamed on its dashboard and shown by
// name in the library and the playground, a saved checkpoint opened in the playground, deletes kept in a "More" menu
// behind their question, a bad setting said beside its field (and no memory plan for it), and every screen at 800 px
// wide. Needs `npm run build` and /usr/bin/chromium. Screenshots at 800 px go to a temp folder (printed), or to
// docs/screenshots/ with UPDATE_SCREENSHOTS=1.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunDetails } from '../../shared/api.js';
import type { RunRecord } from '../../shared/runs.js';
import { demoJob } from '../api/jobs.js';
import { ROOT } from '../support/cli.js';
import { callApi } from '../support/serve.js';
import { launchStudioBrowser, type StudioBrowser } from '../support/studioBrowser.js';

const SCREENSHOTS =
  process.env.UPDATE_SCREENSHOTS === '1'
    ? path.join(ROOT, 'docs/screenshots')
    : fs.mkdtempSync(path.join(os.tmpdir(), 'peft-studio-800px-'));

let studio: StudioBrowser;
let kept: RunRecord;
let doomed: RunRecord;

async function api<T>(method: string, params: unknown): Promise<T> {
  const answer = await callApi(studio.served, method, params);
  if (answer.status !== 200) throw new Error(`${method}: ${answer.status} ${answer.body}`);
  return JSON.parse(answer.body) as T;
}

async function finished(id: number): Promise<void> {
  const deadline = Date.now() + 180_000;
  while ((await api<RunDetails>('runs.get', { id })).run.status !== 'completed') {
    if (Date.now() > deadline) throw new Error(`run ${id} did not complete`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

beforeAll(async () => {
  studio = await launchStudioBrowser('runs-layout');
  // A run with three saved checkpoints and validation every other step, and a second one to delete.
  const job = { ...demoJob(path.join(studio.home, 'adapters', 'kept'), 6), checkpointEvery: 2, keepCheckpoints: 3 };
  kept = await api<RunRecord>('runs.start', { job, name: 'first try' });
  await finished(kept.id);
  doomed = await api<RunRecord>('runs.start', {
    job: { ...job, steps: 2, outDir: path.join(studio.home, 'adapters', 'doomed') },
    name: 'throwaway',
  });
  await finished(doomed.id);
}, 400_000);
afterAll(async () => {
  await studio?.close();
  if (process.env.UPDATE_SCREENSHOTS !== '1') process.stdout.write(`800 px screenshots in ${SCREENSHOTS}\n`);
});

describe('runs you can tell apart', () => {
  it('renames a run on its dashboard, says a bad name beside the field, and shows the name everywhere', async () => {
    const page = await studio.openStudio(`#/runs/${kept.id}`);
    await expect.poll(() => page.getByTestId('run-name').textContent()).toBe('first try');
    await page.getByRole('button', { name: 'Rename' }).click();
    const field = page.getByLabel('Run name');
    await field.fill('   ');
    await page.getByRole('button', { name: 'Save name' }).click();
    await expect.poll(() => page.locator('#rename-error').textContent()).toBe('a run name cannot be empty');
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    await field.fill('support bot, rank 4');
    await page.getByRole('button', { name: 'Save name' }).click();
    await expect.poll(() => page.getByTestId('run-name').textContent()).toBe('support bot, rank 4');

    await page.goto(`${studio.served.url.href}#/library`);
    await expect
      .poll(() => page.getByTestId('run-name').allTextContents())
      .toEqual(['support bot, rank 4', 'throwaway']);
    await page.goto(`${studio.served.url.href}#/playground`);
    await expect.poll(() => page.getByRole('option', { name: /support bot, rank 4, step 6/ }).count()).toBe(1);
    await page.close();
  });

  it('opens a saved checkpoint in the playground, as an adapter of its own', async () => {
    const page = await studio.openStudio(`#/runs/${kept.id}`);
    const rows = page.getByTestId('checkpoints').locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    expect(await rows.locator('td:first-child').allTextContents()).toEqual(['2', '4', '6']);
    // Validation every 2 steps: each checkpoint has its own validation loss.
    expect(await rows.nth(1).locator('td').nth(1).textContent()).toMatch(/^\d+\.\d+$/);
    await rows.nth(1).getByRole('button', { name: 'Open in playground' }).click();
    await expect.poll(() => new URL(page.url()).hash).toMatch(/^#\/playground\/\d+$/);
    await expect
      .poll(() => page.getByLabel('Adapter').locator('option:checked').textContent())
      .toMatch(/from run \d+: support bot, rank 4, step 4 \(LoRA\), loss \d/);
    await page.close();
  });

  it('keeps deletes in a More menu, away from the other actions, behind their question', async () => {
    const page = await studio.openStudio('#/library');
    await page.getByTestId('runs-table').waitFor();
    const deleteButton = page.getByRole('button', { name: `Delete run ${doomed.id}` });
    expect(await deleteButton.count()).toBe(0);
    const more = page.getByRole('button', { name: `More actions for run ${doomed.id}` });
    await more.click();
    expect(await more.getAttribute('aria-expanded')).toBe('true');
    await deleteButton.click();
    const dialog = page.getByRole('dialog', { name: `Delete run ${doomed.id}` });
    expect(await dialog.textContent()).toContain(`Delete run ${doomed.id} and its checkpoints?`);
    await dialog.getByRole('button', { name: 'Keep it' }).click();
    await expect.poll(() => page.getByTestId('run-name').count()).toBe(2);
    // Escape closes the menu; a click elsewhere too.
    await page.keyboard.press('Escape');
    await expect.poll(() => deleteButton.count()).toBe(0);
    await more.click();
    await page.getByRole('heading', { name: 'Library' }).click();
    await expect.poll(() => deleteButton.count()).toBe(0);

    await more.click();
    await deleteButton.click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => page.getByTestId('run-name').allTextContents()).toEqual(['support bot, rank 4']);

    // The dashboard keeps its delete in the same menu.
    await page.goto(`${studio.served.url.href}#/runs/${kept.id}`);
    await page.getByTestId('run-status').waitFor();
    expect(await page.getByRole('button', { name: `Delete run ${kept.id}` }).count()).toBe(0);
    await page.getByRole('button', { name: `More actions for run ${kept.id}` }).click();
    expect(await page.getByRole('button', { name: `Delete run ${kept.id}` }).isEnabled()).toBe(true);
    await page.close();
  });

  it('says a bad setting beside its field, and plans memory only for settings a run accepts', async () => {
    const page = await studio.openStudio('#/new');
    await expect.poll(() => page.getByTestId('model-facts').textContent()).toContain('yes');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByTestId('dataset-facts').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Next' }).click();
    const plan = page.getByTestId('memory-plan');
    await expect.poll(() => plan.textContent(), { timeout: 60_000 }).toContain('Peak');

    const rank = page.getByLabel('LoRA rank');
    await rank.fill('0');
    await expect.poll(() => page.locator('#error-lora-rank').textContent()).toBe('must be at least 1');
    expect(await rank.getAttribute('aria-invalid')).toBe('true');
    expect(await rank.getAttribute('aria-describedby')).toBe('error-lora-rank');
    await expect.poll(() => plan.textContent()).toContain('Fix the settings marked in red first');
    expect(await plan.textContent()).not.toMatch(/fits/);
    expect(await page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await page.setViewportSize({ width: 800, height: 700 });
    await page.screenshot({ path: path.join(SCREENSHOTS, '800px-settings-error.png'), fullPage: true });

    await rank.fill('8');
    await expect.poll(() => page.locator('#error-lora-rank').count()).toBe(0);
    expect(await rank.getAttribute('aria-invalid')).toBe('false');
    await expect.poll(() => plan.textContent(), { timeout: 60_000 }).toContain('Peak');
    await page.close();
  });
});

/** What sticks out of the main column at the current width: elements whose right edge passes it (not inside a region
 * that scrolls on its own, such as a table wrapper or the log), named by tag, class and text. */
function overflowing(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const main = document.querySelector('main')!;
    const right = main.getBoundingClientRect().right;
    const scrolls = (el: Element | null): boolean => {
      for (let e = el; e && e !== main; e = e.parentElement) {
        const overflowX = getComputedStyle(e).overflowX;
        if (overflowX === 'auto' || overflowX === 'scroll') return true;
      }
      return false;
    };
    const found: string[] = [];
    for (const el of main.querySelectorAll('*')) {
      const box = el.getBoundingClientRect();
      if (box.width > 0 && box.right > right + 1 && !scrolls(el.parentElement))
        found.push(`${el.tagName.toLowerCase()}.${el.className} "${(el.textContent ?? '').trim().slice(0, 40)}"`);
    }
    return found;
  });
}

describe('the layout at 800 px wide', () => {
  it('fits every screen in the window: no horizontal scrolling, nothing cut off', async () => {
    const page = await studio.openStudio();
    await page.setViewportSize({ width: 800, height: 700 });
    const screens: [string, string, () => Promise<unknown>][] = [
      ['home', '#/', () => page.getByRole('heading', { name: 'Welcome to PEFT Studio' }).waitFor()],
      ['new', '#/new', () => page.getByTestId('model-facts').waitFor()],
      ['run', `#/runs/${kept.id}`, () => page.getByTestId('checkpoints').waitFor()],
      ['playground', '#/playground', () => page.getByRole('option').first().waitFor({ state: 'attached' })],
      ['library', '#/library', () => page.getByTestId('adapters-table').waitFor()],
      ['export', '#/export', () => page.getByRole('option').first().waitFor({ state: 'attached' })],
      ['settings', '#/settings', () => page.getByRole('heading', { name: 'Settings' }).waitFor()],
    ];
    const problems: string[] = [];
    for (const [name, hash, ready] of screens) {
      await page.goto(`${studio.served.url.href}${hash}`);
      await ready();
      await page.screenshot({ path: path.join(SCREENSHOTS, `800px-${name}.png`), fullPage: true });
      const { scrollWidth, clientWidth } = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        clientWidth: document.documentElement.clientWidth,
      }));
      if (scrollWidth > clientWidth)
        problems.push(`${name}: the page scrolls sideways (${scrollWidth} > ${clientWidth})`);
      for (const element of await overflowing(page)) problems.push(`${name}: ${element} passes the right edge`);
      // Tables may scroll in their panel when nothing else helps; at 800 px none needs to.
      const scrolled = await page.$$eval('.table-scroll', (boxes) =>
        boxes.filter((box) => box.scrollWidth > box.clientWidth).map((box) => box.textContent!.slice(0, 40)),
      );
      for (const table of scrolled) problems.push(`${name}: the table "${table}" scrolls sideways`);
    }
    expect(problems).toEqual([]);
    await page.close();
  });
});
