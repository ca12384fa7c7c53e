// The Data step's view of a real file in a real browser: every row, a page at a time, tokenized with the trained
// tokens highlighted; the rows cut and why; the duplicates counted, warned about and removed. Needs `npm run build`
// (dist/) and /usr/bin/chromium.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli.js';
import { launchStudioBrowser, type StudioBrowser } from '../support/studioBrowser.js';

let studio: StudioBrowser;

beforeAll(async () => {
  studio = await launchStudioBrowser('data-table');
});

afterAll(async () => {
  await studio?.close();
});

/**
 * 30 rows on lines 2..31, CRLF and LF mixed: rows 24..31 repeat rows 2..9 (8 of 30, above a fifth), and line 12 has
 * one field too many.
 */
function writeSupportCsv(file: string): void {
  const rows = Array.from({ length: 22 }, (_, i) => `"Question ${i + 2}?","Answer ${i + 2}."`);
  rows[12 - 2] = 'one,two,three';
  rows.push(...rows.slice(0, 8));
  const lines = ['question,answer', ...rows];
  fs.writeFileSync(file, lines.map((line, i) => line + (i % 3 ? '\n' : '\r\n')).join(''));
}

describe('the Data step shows the data', () => {
  it('pages through every row, lists the cut rows, and removes the duplicates it warns about', async () => {
    const dataFile = path.join(studio.home, 'support.csv');
    writeSupportCsv(dataFile);
    const page = await studio.openStudio();
    await page.getByRole('link', { name: 'New fine-tune' }).click();
    await expect.poll(() => page.getByTestId('model-facts').textContent()).toContain('yes');
    await page.getByRole('button', { name: 'Next', exact: true }).click();
    await page.getByLabel('A file on this computer').check();
    await page.getByLabel('Data file').fill(dataFile);
    await page.getByTestId('data-format').selectOption('prompt-completion');
    await page.getByTestId('column-prompt').fill('question');
    await page.getByTestId('column-completion').fill('answer');
    await page.getByRole('button', { name: 'Check data' }).click();
    await page.getByTestId('dataset-facts').waitFor();

    // Every row, 20 at a time, as the model sees it; the answers are the trained tokens.
    const range = page.getByTestId('data-table-range');
    await expect.poll(() => range.textContent()).toBe('rows 1–20 of 30');
    const table = page.getByTestId('data-table');
    expect(await table.locator('[data-testid=token-preview]').count()).toBe(19); // and the broken row
    const trained = await table.locator('[data-testid=token-preview]').first().locator('.trained').allTextContents();
    expect(trained.join('')).toContain('Answer 2.');
    expect(trained.join('')).not.toContain('Question 2?');
    expect(await table.textContent()).toContain('Row 12: 3 fields, but the header has 2');
    await page.getByRole('button', { name: 'Later rows' }).click();
    await expect.poll(() => range.textContent()).toBe('rows 21–30 of 30');
    expect(await page.getByRole('button', { name: 'Later rows' }).isDisabled()).toBe(true);
    expect(await table.textContent()).toContain('the same as row 2');

    // The rows cut, with why; the duplicates, warned about above a fifth of the file.
    const cutRows = page.getByTestId('cut-rows');
    expect(await cutRows.locator('tbody tr').allTextContents()).toEqual(['123 fields, but the header has 2']);
    expect(await page.getByTestId('duplicates-warning').textContent()).toMatch(
      /^8 of the 30 rows \(27%\) repeat an earlier row/,
    );
    await screenshot(page, 'wizard-data-table');

    await page.getByRole('button', { name: 'Remove 8 duplicates' }).click();
    await expect.poll(() => page.getByTestId('duplicate-rows').textContent()).toContain('skipped in training');
    expect(await page.getByTestId('duplicates-warning').count()).toBe(0);
    const cut = await cutRows.locator('tbody tr td:first-child').allTextContents();
    expect(cut).toEqual(['12', ...Array.from({ length: 8 }, (_, i) => String(i + 24))]);
    expect(await cutRows.textContent()).toContain('the same as row 9: dropped');
    await expect.poll(() => range.textContent()).toBe('rows 1–20 of 30');
    await page.close();
  });
});

/** As test/e2e/studio.test.ts: into docs/screenshots/ only when UPDATE_SCREENSHOTS=1. */
async function screenshot(page: Page, screen: string): Promise<void> {
  const folder =
    process.env.UPDATE_SCREENSHOTS === '1'
      ? path.join(ROOT, 'docs/screenshots')
      : fs.mkdtempSync(path.join(os.tmpdir(), 'peft-studio-screens-'));
  await page.screenshot({ path: path.join(folder, `${screen}.png`), fullPage: true });
  if (process.env.UPDATE_SCREENSHOTS !== '1') fs.rmSync(folder, { recursive: true, force: true });
}
