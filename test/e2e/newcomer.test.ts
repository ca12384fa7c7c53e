// The newcomer's path, in real Chromium against `peft-studio serve`, with nothing but the GUI: a question,answer CSV
// (CRLF and LF mixed) mapped to its columns and seen row by row, a run stopped early with its adapter saved, a second
// run compared with it, a chat with the adapter, an export to GGUF and a push to the Hub stand-in, and a server
// restart that the open page rides out with every run kept. Needs `npm run build` and /usr/bin/chromium.
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { launchStudioBrowser, type StudioBrowser } from '../support/studioBrowser.js';

const HUB_TOKEN = 'hf_newcomer_write_token_abcdefghijklmn';
let hub: HubServer;
let studio: StudioBrowser;
let csv: string;

beforeAll(async () => {
  hub = await startHubServer();
  hub.addToken(HUB_TOKEN, { user: 'alice', role: 'write' });
  hub.addRepo('model', 'TestOrg/demo-base', { 'config.json': '{}' }, { cardData: { license: 'apache-2.0' } });
  studio = await launchStudioBrowser('newcomer', { HF_ENDPOINT: hub.url });
  csv = path.join(studio.home, 'support.csv');
  const rows = Array.from({ length: 24 }, (_, i) => `"Where is order ${i}?","Order ${i} ships on day ${i % 7}."`);
  // Rows pasted from two tools: CRLF and LF line ends mixed.
  fs.writeFileSync(csv, ['question,answer', ...rows].map((r, i) => r + (i % 2 ? '\r\n' : '\n')).join(''));
});

afterAll(async () => {
  await studio?.close();
  await hub?.close();
});

/** A screen of the sidebar (tables have links of the same names). */
const nav = (page: Page, screen: string) => page.getByRole('navigation').getByRole('link', { name: screen }).click();

/** The wizard from the demo model and the CSV, read as prompt/completion, to its review step. */
async function wizardToReview(page: Page, steps: string, seed: string): Promise<void> {
  await nav(page, 'New fine-tune');
  await expect.poll(() => page.getByTestId('model-facts').textContent()).toContain('yes');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('A file on this computer').check();
  await page.getByLabel('Data file').fill(csv);
  await page.getByRole('button', { name: 'Check data' }).click();
  // Its columns are guessed from the headers and applied on request; the rows are then there to see.
  await page.getByRole('button', { name: 'Read it that way' }).click();
  await expect.poll(() => page.getByTestId('dataset-facts').textContent()).toMatch(/prompt-completion/);
  await expect.poll(() => page.getByText(/rows 1–\d+ of 24/).count()).toBe(1);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('radio', { name: /^LoRA/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Steps', { exact: true }).fill(steps);
  await page.getByLabel('Device').selectOption('cpu');
  await page.getByText('More settings').click();
  await page.getByLabel('Seed').fill(seed);
  await expect.poll(() => page.getByTestId('memory-plan').textContent()).toMatch(/fits/);
  await page.getByRole('button', { name: 'Next' }).click();
}

describe('a newcomer with a CSV of their own', () => {
  it('maps it, trains, stops early, compares, chats, exports and pushes, and rides out a restart', async () => {
    // The restart at the end: Chromium logs each refused reconnect, and a request the stop cut short.
    const page = await studio.openStudio('', [/WebSocket connection .* failed/, /ERR_CONNECTION_(REFUSED|RESET)/]);

    // Run 1: a long run, stopped early from its dashboard with what it learned so far saved.
    await wizardToReview(page, '3000', '0');
    await page.getByLabel('Run name').fill('first try');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/#\/runs\/\d+$/);
    const first = page.url().match(/runs\/(\d+)$/)![1];
    await expect.poll(() => page.getByTestId('train-loss').textContent(), { timeout: 120_000 }).toMatch(/\d/);
    await page.getByRole('button', { name: 'Stop and save adapter' }).click();
    await expect.poll(() => page.getByTestId('run-status').textContent(), { timeout: 120_000 }).toBe('completed');

    // Run 2: a short one with another seed.
    await wizardToReview(page, '6', '3');
    await page.getByLabel('Run name').fill('second try');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(new RegExp(`#/runs/(?!${first}$)\\d+$`));
    const second = page.url().match(/runs\/(\d+)$/)![1];
    await expect.poll(() => page.getByTestId('run-status').textContent(), { timeout: 120_000 }).toBe('completed');

    // The Library tells them apart by name and compares their settings.
    await nav(page, 'Library');
    await expect
      .poll(() => page.getByTestId('run-name').allTextContents())
      .toEqual(expect.arrayContaining(['first try', 'second try']));
    await page.getByRole('checkbox', { name: `Compare run ${first}` }).check();
    await page.getByRole('checkbox', { name: `Compare run ${second}` }).check();
    const seed = page.getByTestId('settings-diff').locator('tr', { hasText: /^Seed/ });
    await expect.poll(() => seed.locator('td').allTextContents()).toEqual(['0', '3']);

    // A chat with the first run's adapter, beside the base model.
    await nav(page, 'Playground');
    await expect.poll(() => page.getByRole('option', { name: /first try/ }).count()).toBeGreaterThan(0);
    await page.getByText('Sampling').click();
    await page.getByLabel('Max new tokens').fill('8');
    await page.getByLabel('Message').fill('Where is order 3?');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => page.getByText(/tokens\/s on cpu/).count(), { timeout: 120_000 }).toBe(2);

    // Exports: a GGUF for llama.cpp / Ollama with its command, then the Hub with a token entered in Settings.
    await nav(page, 'Export');
    await page.getByLabel('GGUF adapter + Ollama Modelfile').check();
    const gguf = path.join(studio.home, 'exported-gguf');
    await page.getByLabel('Destination folder').fill(gguf);
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    await expect
      .poll(() => page.getByTestId('ollama-command').textContent(), { timeout: 60_000 })
      .toBe(`ollama create exported-gguf -f ${path.join(gguf, 'Modelfile')}`);
    await nav(page, 'Settings');
    await page.getByLabel('Token', { exact: true }).fill(HUB_TOKEN);
    await page.getByRole('button', { name: 'Save token' }).click();
    await expect.poll(() => page.getByText('A token is saved.').count()).toBe(1);
    await nav(page, 'Export');
    await page.getByLabel('Hugging Face Hub').check();
    await page.getByLabel('Repo name').fill('alice/order-bot');
    await page.getByLabel(/^Base model on the Hub/).fill('TestOrg/demo-base');
    await page.getByRole('button', { name: 'Push to the Hub' }).click();
    await page.getByTestId('push-result').waitFor({ timeout: 60_000 });
    const pushed = [...hub.repo('model', 'alice/order-bot').commits.values()].at(-1)!.files;
    expect([...pushed.keys()]).toEqual(expect.arrayContaining(['adapter_config.json', 'README.md']));

    // The server restarts while the page is open: it says so, reconnects by itself, and both runs are still there.
    await nav(page, 'Library');
    const names = () => page.getByTestId('run-name').allTextContents();
    await expect.poll(names).toEqual(expect.arrayContaining(['first try', 'second try']));
    const before = await names();
    await studio.restartServe(() =>
      expect.poll(() => page.getByTestId('disconnected').count(), { timeout: 30_000 }).toBe(1),
    );
    await expect.poll(() => page.getByTestId('disconnected').count(), { timeout: 30_000 }).toBe(0);
    await expect.poll(names).toEqual(before);
    await page.close();
  });
});
