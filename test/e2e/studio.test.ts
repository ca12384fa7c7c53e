// The studio in a real browser: Debian's Chromium driven by playwright-core against `peft-studio serve`, through the
// demo fine-tune from the wizard to an exported adapter, plus a file with bad rows and a configuration that does not
// fit. Each screen's screenshot goes to docs/screenshots/. Needs `npm run build` (dist/) and /usr/bin/chromium.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_RECIPE } from '../../shared/demo.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/main/cli/bin.js');
// Every run takes the screenshots; they replace the committed ones in docs/ only when asked (UPDATE_SCREENSHOTS=1),
// so a test run leaves the working tree as it was.
const SCREENSHOTS =
  process.env.UPDATE_SCREENSHOTS === '1'
    ? path.join(ROOT, 'docs/screenshots')
    : fs.mkdtempSync(path.join(os.tmpdir(), 'peft-studio-screens-'));
const CHROMIUM = '/usr/bin/chromium';
const HUB_TOKEN = 'hf_e2e_write_token_abcdefghijklmnop';
let hub: HubServer;
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/**
 * Training steps of the demo run: the Quick preset on the demo model fills in the demo's own recipe; the screenshots
 * show that run. The check itself only shortens it, to a run of seconds that still draws a chart.
 */
const DEMO_STEPS = process.env.UPDATE_SCREENSHOTS ? DEMO_RECIPE.steps : 120;
/** The dashboard charts at most 400 points: buckets of consecutive steps past that (Store.lossChart). */
const CHART_POINTS = Math.ceil(DEMO_STEPS / Math.ceil(DEMO_STEPS / 400));

let home: string;
let server: ChildProcess;
let serveEnv: NodeJS.ProcessEnv;
let studioUrl: string;
let browser: Browser;

/** Starts `peft-studio serve` on `port` (0: a free one); its first stdout line is the URL with the token. */
async function startServe(env: NodeJS.ProcessEnv, port = '0'): Promise<string> {
  serveEnv = env;
  server = spawn(process.execPath, [CLI, 'serve', '--port', port, '--home', home], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stderr = '';
  server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = readline.createInterface({ input: server.stdout! });
  const exited = new Promise<never>((_, reject) =>
    server.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`))),
  );
  const firstLine = new Promise<string>((resolve) => lines.once('line', resolve));
  return Promise.race([firstLine, exited]);
}

/** Stops `peft-studio serve` as a user would (Ctrl+C), and waits for it to exit. */
async function stopServe(): Promise<void> {
  if (server.exitCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await exited;
}

/** A page on the studio; `expectedErrors`: console errors a test causes on purpose (the others fail it). */
async function openStudio(hash = '', expectedErrors: RegExp[] = []): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (message) => {
    // A 422 is a refusal the user must read (the API's one-line UserError); tests assert the alert that shows it.
    const expected = [/status of 422 \(Unprocessable/, ...expectedErrors];
    if (message.type() === 'error' && !expected.some((pattern) => pattern.test(message.text())))
      errors.push(message.text());
  });
  // Any script error, CSP report or failed request fails the test that met it.
  page.on('close', () => expect(errors, 'errors in the page').toEqual([]));
  await page.goto(studioUrl + hash);
  return page;
}

async function screenshot(page: Page, screen: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${screen}.png`), fullPage: true });
}

/** Runs the wizard's model and data steps with the demo model and the given data (the demo's when null). */
async function chooseModelAndData(page: Page, dataFile: string | null): Promise<void> {
  await page.getByRole('link', { name: 'New fine-tune' }).click();
  await expect.poll(() => page.getByTestId('model-facts').textContent()).toContain('yes');
  await page.getByRole('button', { name: 'Next' }).click();
  if (dataFile !== null) {
    await page.getByLabel('A file on this computer').check();
    await page.getByLabel('Data file').fill(dataFile);
    await page.getByRole('button', { name: 'Check data' }).click();
  }
  await page.getByTestId('dataset-facts').waitFor();
}

beforeAll(async () => {
  for (const needed of [CLI, path.join(ROOT, 'dist/renderer/index.html')]) {
    if (!fs.existsSync(needed)) throw new Error(`${needed} is missing: run npm run build first`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-studio-e2e-'));
  // The Hub is the loopback one; the base model the demo stands for is there, with its license.
  hub = await startHubServer();
  hub.addToken(HUB_TOKEN, { user: 'alice', role: 'write' });
  hub.addRepo('model', 'TestOrg/demo-base', { 'config.json': '{}' }, { cardData: { license: 'apache-2.0' } });
  const { HF_TOKEN: _token, HF_TOKEN_PATH: _tokenPath, ...env } = process.env;
  // XDG_DATA_HOME: a storage folder chosen in Settings is recorded there, not in this machine's data folder.
  studioUrl = await startServe({
    ...env,
    HF_ENDPOINT: hub.url,
    HF_HOME: path.join(home, 'hf-home'),
    XDG_DATA_HOME: path.join(home, 'xdg-data'),
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  if (server) await stopServe();
  await hub?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
  if (process.env.UPDATE_SCREENSHOTS !== '1') fs.rmSync(SCREENSHOTS, { recursive: true, force: true });
});

describe('the studio in a browser', () => {
  it('fine-tunes the demo from the wizard, compares it in the playground and exports it', async () => {
    const page = await openStudio();
    await expect.poll(() => page.getByTestId('devices').textContent()).toContain('cpu');
    // Keyboard first: Tab lands on the navigation.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Home');
    await screenshot(page, 'home');

    // Model: the demo is the default choice.
    await page.getByRole('button', { name: 'Try the demo' }).click();
    await expect.poll(() => page.getByTestId('model-facts').textContent()).toContain('llama');
    await screenshot(page, 'wizard-model');
    await page.getByRole('button', { name: 'Next' }).click();

    // Data: the demo set, its stats and the token preview with trained tokens marked.
    await page.getByTestId('dataset-facts').waitFor();
    expect(await page.getByTestId('dataset-facts').textContent()).toContain('text');
    expect(await page.locator('[data-testid=token-preview] .trained').count()).toBeGreaterThan(0);
    await screenshot(page, 'wizard-data');
    await page.getByRole('button', { name: 'Next' }).click();

    // Method: LoRA, Quick.
    await page.getByRole('radio', { name: /^LoRA/ }).check();
    await page.getByRole('radio', { name: /^Quick/ }).check();
    await screenshot(page, 'wizard-method');
    await page.getByRole('button', { name: 'Next' }).click();

    // Settings: the preset's short run, on the CPU, with the memory plan answering.
    expect(await page.getByLabel('Steps', { exact: true }).inputValue()).toBe(String(DEMO_RECIPE.steps));
    await page.getByLabel('Steps', { exact: true }).fill(String(DEMO_STEPS));
    await page.getByLabel('Device').selectOption('cpu');
    await expect.poll(() => page.getByTestId('memory-plan').textContent()).toMatch(/fits/);
    // Which catalogue models fit these settings in 4 to 24 GB: a table with headers, planned on a worker thread.
    const catalogue = page.getByTestId('catalogue-fit').getByRole('table');
    await expect.poll(() => catalogue.getByRole('row').count(), { timeout: 60_000 }).toBe(1 + 15);
    expect(await catalogue.getByRole('columnheader').allTextContents()).toEqual([
      'Model',
      '4 GB',
      '6 GB',
      '8 GB',
      '12 GB',
      '16 GB',
      '24 GB',
    ]);
    const smallest = catalogue.getByRole('row', { name: /^SmolLM2 135M / });
    expect(await smallest.getByRole('cell').allTextContents()).toEqual(Array(6).fill('fits'));
    expect(await smallest.getByRole('cell').first().getAttribute('title')).toMatch(
      /^Fits as chosen: peak .+ of 4\.0 GiB$/,
    );
    const llama8b = catalogue.getByRole('row', { name: /^Llama 3\.1 8B / });
    expect(await llama8b.getByRole('cell').first().textContent()).not.toBe('fits');
    await screenshot(page, 'wizard-settings');
    await page.getByRole('button', { name: 'Next' }).click();

    await expect.poll(() => page.getByTestId('review').textContent()).toContain(`${DEMO_STEPS} steps`);
    await screenshot(page, 'wizard-review');
    // Count how many different curves the chart draws while the run goes (the hash route keeps this document).
    await page.evaluate(() => {
      const curves = new Set<number>();
      Object.assign(window, { chartCurves: curves });
      new MutationObserver(() => {
        const d = document
          .querySelector('[data-testid=loss-chart] path[data-series="training loss"]')
          ?.getAttribute('d');
        if (d) curves.add(d.split(' ').length);
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['d'] });
    });
    await page.getByRole('button', { name: 'Start training' }).click();

    // Dashboard: the chart grows while the run goes, then the run completes.
    await page.waitForURL(/#\/runs\/\d+$/);
    const chartSegments = () =>
      page
        .locator('[data-testid=loss-chart] path[data-series="training loss"]')
        .getAttribute('d')
        .then((d) => (d ?? '').split(' ').length)
        .catch(() => 0);
    await expect.poll(() => page.getByTestId('run-status').textContent(), { timeout: 600_000 }).toBe('completed');
    // Completion reads the stored chart again, in buckets past 400 steps: the live points give way to it.
    await expect.poll(chartSegments).toBe(CHART_POINTS);
    const curvesDrawn = await page.evaluate(() => (window as unknown as { chartCurves: Set<number> }).chartCurves.size);
    expect(curvesDrawn, 'the chart grew step by step').toBeGreaterThan(CHART_POINTS / 4);
    await screenshot(page, 'run');

    // The same run as a terminal command: the real CLI, through a shell, reads it back as this run's job.
    const line = (await page.getByTestId('train-command').textContent())!;
    expect(line).toMatch(/^peft-studio train --model \S+ --data \S+ --out \S+/);
    const dryRun = spawnSync(
      'sh',
      ['-c', `"${process.execPath}" "${CLI}" ${line.slice('peft-studio '.length)} --dry-run --json`],
      {
        encoding: 'utf8',
      },
    );
    expect(dryRun.status, dryRun.stderr).toBe(0);
    expect(JSON.parse(dryRun.stdout.trim().split('\n').at(-1)!)).toMatchObject({ method: 'lora', steps: DEMO_STEPS });

    // A reload shows the same run, finished, with its whole chart.
    await page.reload();
    await expect.poll(() => page.getByTestId('run-status').textContent()).toBe('completed');
    await expect.poll(chartSegments).toBe(CHART_POINTS);

    // Playground: a conversation with the base model and with the adapter, side by side, each keeping its own replies.
    await page.getByRole('link', { name: 'Try it in the playground' }).click();
    // The demo trains on plain text: the chat template starts off, and ticking it warns.
    const template = page.getByLabel("Use the model's chat template");
    await expect.poll(() => page.getByRole('option', { name: /Adapter \d+ from run/ }).count()).toBeGreaterThan(0);
    expect(await template.isChecked()).toBe(false);
    expect(await page.getByTestId('template-warning').count()).toBe(0);
    await template.check();
    await expect
      .poll(() => page.getByTestId('template-warning').textContent())
      .toContain('This adapter was trained without the chat template');
    await template.uncheck();
    await expect.poll(() => page.getByTestId('template-warning').count()).toBe(0);
    await page.getByText('Sampling').click();
    await page.getByLabel('Max new tokens').fill('32');
    await page.getByLabel('Message').fill('Hello there!');
    await expect.poll(() => page.getByRole('button', { name: 'Send' }).isEnabled()).toBe(true);
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => page.getByText(/tokens\/s on cpu/).count(), { timeout: 120_000 }).toBe(2);
    await page.getByLabel('Message').fill('Who are you?');
    await page.getByLabel('Message').press('Enter');
    await expect.poll(() => page.getByText(/tokens\/s on cpu/).count(), { timeout: 120_000 }).toBe(4);
    for (const side of ['base-output', 'adapter-output']) {
      const turns = page.getByTestId(side).locator('li');
      await expect.poll(() => turns.count()).toBe(2);
      expect(await turns.nth(1).textContent()).toContain('You: Who are you?');
    }
    await screenshot(page, 'playground');

    // The same chat from a 4-bit (int4) copy of the base, made on the first message: choosing it starts afresh.
    await page.getByLabel('Base weights').selectOption('int4');
    await expect.poll(() => page.getByText(/tokens\/s on cpu/).count()).toBe(0);
    await page.getByLabel('Message').fill('Hello there!');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => page.getByText(/tokens\/s on cpu/).count(), { timeout: 120_000 }).toBe(2);

    // A long answer stops on request (hot sampling rarely ends a reply early; one side may).
    await page.getByRole('button', { name: 'New conversation' }).click();
    await page.getByLabel('Max new tokens').fill('4000');
    await page.getByLabel('Temperature (0 = greedy)').fill('5');
    await page.getByLabel('Message').fill('Tell me everything.');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('button', { name: 'Stop' }).click();
    await expect.poll(() => page.getByText(/\(cancelled\)/).count(), { timeout: 60_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);

    // Export: the PEFT folder lands where asked.
    const destination = path.join(home, 'exported-adapter');
    await page.getByRole('link', { name: 'Export' }).click();
    await page.getByLabel('Destination folder').fill(destination);
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    await page.getByTestId('export-result').waitFor({ timeout: 60_000 });
    expect(fs.existsSync(path.join(destination, 'adapter_config.json'))).toBe(true);
    expect(fs.existsSync(path.join(destination, 'adapter_model.safetensors'))).toBe(true);
    await screenshot(page, 'export');

    // GGUF for llama.cpp and Ollama: the exact `ollama create` command is shown.
    const ggufDestination = path.join(home, 'exported-gguf');
    await page.getByLabel('GGUF adapter + Ollama Modelfile').check();
    await page.getByLabel('Destination folder').fill(ggufDestination);
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    await expect
      .poll(() => page.getByTestId('ollama-command').textContent(), { timeout: 60_000 })
      .toBe(`ollama create exported-gguf -f ${path.join(ggufDestination, 'Modelfile')}`);
    expect(fs.existsSync(path.join(ggufDestination, 'adapter.gguf'))).toBe(true);
    // Or the adapter merged into one model file, at the size chosen in words.
    const modelDestination = path.join(home, 'exported-model');
    await page.getByLabel('One model file for Ollama').check();
    await page.getByLabel('Size and quality').selectOption('q4_0');
    await page.getByLabel('Destination folder').fill(modelDestination);
    await page.getByRole('button', { name: 'Export', exact: true }).click();
    await expect
      .poll(() => page.getByTestId('ollama-command').textContent(), { timeout: 60_000 })
      .toBe(`ollama create exported-model -f ${path.join(modelDestination, 'Modelfile')}`);
    expect(fs.existsSync(path.join(modelDestination, 'model.gguf'))).toBe(true);
    await screenshot(page, 'export-model-gguf');

    // The Hub: the token goes in through Settings, then the adapter, its card and chart are pushed from Export.
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByLabel('Token', { exact: true }).fill(HUB_TOKEN);
    await page.getByRole('button', { name: 'Save token' }).click();
    await expect.poll(() => page.getByText('A token is saved.').count()).toBe(1);
    await page.getByRole('link', { name: 'Export' }).click();
    await page.getByLabel('Hugging Face Hub').check();
    await page.getByLabel('Repo name').fill('alice/northwind-lora');
    await page.getByLabel(/^Base model on the Hub/).fill('TestOrg/demo-base');
    await page.getByRole('button', { name: 'Preview model card' }).click();
    await expect
      .poll(() => page.getByTestId('model-card').textContent())
      .toMatch(/library_name: peft[\s\S]*base_model: TestOrg\/demo-base/);
    await page.getByRole('button', { name: 'Push to the Hub' }).click();
    await page.getByTestId('push-result').waitFor({ timeout: 60_000 });
    await screenshot(page, 'export-hub');
    const pushedRepo = hub.repo('model', 'alice/northwind-lora');
    expect(pushedRepo.private).toBe(true);
    const pushedFiles = [...pushedRepo.commits.values()].at(-1)!.files;
    expect([...pushedFiles.keys()]).toEqual(
      expect.arrayContaining(['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'loss.png']),
    );
    expect(pushedFiles.get('README.md')!.toString()).toMatch(/license: apache-2.0/);

    // Library: the run, ticked for the loss comparison, and its adapter with its lineage.
    await page.getByRole('link', { name: 'Library' }).click();
    await page
      .getByRole('checkbox', { name: /^Compare run/ })
      .first()
      .check();
    await page.locator('[data-testid=loss-chart] path').first().waitFor();
    expect(await page.getByTestId('adapters-table').textContent()).toContain('run 1');
    await screenshot(page, 'library');
    // A model that runs were trained on cannot be forgotten; an adapter can, with its folder.
    // Deletes sit in each row's "More" menu, away from its primary actions.
    await page.getByRole('button', { name: 'More actions for model 1' }).click();
    await page.getByRole('button', { name: 'Forget model 1' }).click();
    await page.getByRole('dialog', { name: 'Forget model 1' }).getByRole('button', { name: 'Forget' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toMatch(/^model 1 is the base of runs 1(, \d+)* and adapters 1: delete those first$/);
    const adapterFolder = (await page.getByTestId('adapters-table').locator('code').first().textContent())!;
    expect(fs.existsSync(adapterFolder)).toBe(true);
    await page.getByRole('button', { name: 'More actions for adapter 1' }).click();
    await page.getByRole('button', { name: 'Delete adapter 1 and its files' }).click();
    await page
      .getByRole('dialog', { name: 'Delete adapter 1 and its files' })
      .getByRole('button', { name: 'Delete' })
      .click();
    await expect.poll(() => page.getByText('No adapters yet.').count()).toBe(1);
    expect(fs.existsSync(adapterFolder)).toBe(false);

    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByLabel('Theme').waitFor();
    await screenshot(page, 'settings');
    const nextHome = path.join(home, 'next-home');
    await page.getByLabel('Another storage folder').fill(nextHome);
    await page.getByRole('button', { name: 'Use from the next start' }).click();
    await expect.poll(() => page.getByTestId('storage-facts').textContent()).toContain(nextHome);
    expect(fs.readFileSync(path.join(home, 'xdg-data', 'peft-studio', 'storage-folder.txt'), 'utf8')).toBe(
      `${nextHome}\n`,
    );
    await page.getByRole('button', { name: 'Back to the default' }).click();
    await expect.poll(() => page.getByTestId('storage-facts').textContent()).toContain('(the default)');
    await page.getByLabel('Theme').selectOption('dark');
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await page.getByLabel('Theme').selectOption('system');
    // Headless Chromium prefers light: 'system' resolves to it.
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset.theme)).toBe('light');
    await expect.poll(() => page.getByRole('status').textContent()).toBe('Theme saved.');
    await page.close();
  });

  it('says when the server is gone, reconnects by itself when it is back, and loses no run', async () => {
    // Chromium logs each refused reconnect while the server is away, and a request the stop cut short.
    const page = await openStudio('#/library', [/ERR_CONNECTION_(REFUSED|RESET)|WebSocket connection to .* failed/]);
    const rows = page.getByTestId('runs-table').locator('tbody tr');
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    const before = await rows.allTextContents();
    expect(await page.getByTestId('disconnected').count()).toBe(0);

    await stopServe();
    await expect.poll(() => page.getByTestId('disconnected').count()).toBe(1);
    await screenshot(page, 'disconnected');
    // Back on the same address, with the token the studio folder keeps: the open page needs no reload.
    const restarted = await startServe(serveEnv, new URL(studioUrl).port);
    expect(restarted).toBe(studioUrl);
    await expect.poll(() => page.getByTestId('disconnected').count(), { timeout: 30_000 }).toBe(0);
    await expect.poll(() => rows.allTextContents()).toEqual(before);
    await page.getByTestId('run-name').first().click();
    await expect.poll(() => page.getByTestId('run-status').textContent()).toMatch(/completed|cancelled|paused/);
    await page.close();
  });

  it('pauses, resumes, and stops a run from the dashboard keeping its adapter', async () => {
    const page = await openStudio();
    await chooseModelAndData(page, null);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Steps', { exact: true }).fill('5000');
    await page.getByLabel('Device').selectOption('cpu');
    await page.getByText('More settings').click();
    await page.getByLabel('Seed').fill('3');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.waitForURL(/#\/runs\/\d+$/);
    const status = () => page.getByTestId('run-status').textContent();
    await expect.poll(() => page.getByTestId('train-loss').textContent(), { timeout: 120_000 }).toMatch(/\d/);

    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(status, { timeout: 120_000 }).toBe('paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(status, { timeout: 120_000 }).toBe('running');
    // Cancel asks first, saying what is lost; keeping it changes nothing.
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const question = page.getByRole('dialog');
    expect(await question.textContent()).toContain('what it learned since its last checkpoint is lost');
    await question.getByRole('button', { name: 'Keep it' }).click();
    expect(await status()).toBe('running');
    // Stop and save: the run ends now, and its adapter is what it learned so far.
    await page.getByRole('button', { name: 'Stop and save adapter' }).click();
    await expect.poll(status, { timeout: 120_000 }).toBe('completed');
    await expect.poll(() => page.getByText('Done. The adapter is in').count()).toBe(1);
    expect(await page.getByRole('link', { name: 'Try it in the playground' }).count()).toBe(1);

    // The Library tells it from the demo run: its data, and the settings in which the two differ.
    const runId = page.url().match(/runs\/(\d+)$/)![1];
    await page.getByRole('link', { name: 'Library' }).click();
    const row = page.getByTestId('runs-table').locator('tbody tr', { hasText: `Run ${runId}` });
    await expect.poll(() => row.textContent()).toMatch(/data\.jsonl.*completed.*\d+ s/);
    await page.getByRole('checkbox', { name: 'Compare run 1' }).check();
    await page.getByRole('checkbox', { name: `Compare run ${runId}` }).check();
    const steps = page.getByTestId('settings-diff').locator('tr', { hasText: /^Steps/ });
    await expect.poll(() => steps.locator('td').allTextContents()).toEqual([String(DEMO_STEPS), '5000']);
    const seed = page.getByTestId('settings-diff').locator('tr', { hasText: /^Seed/ });
    expect(await seed.locator('td').allTextContents()).toEqual(['0', '3']);

    // The Library deletes it, after asking.
    await page.getByRole('button', { name: `More actions for run ${runId}` }).click();
    await page.getByRole('button', { name: `Delete run ${runId}` }).click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.textContent()).toContain(`Delete run ${runId} and its checkpoints?`);
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => page.getByRole('checkbox', { name: `Compare run ${runId}` }).count()).toBe(0);
    await page.close();
  });

  it('lists the bad rows of a data file', async () => {
    const dataFile = path.join(home, 'with-bad-rows.jsonl');
    const good = (i: number) => JSON.stringify({ text: `User: question ${i}?\nAssistant: answer ${i}.` });
    fs.writeFileSync(
      dataFile,
      [good(1), '{not json', good(2), JSON.stringify({ unrelated: 5 }), good(3)].join('\n') + '\n',
    );
    const page = await openStudio();
    await chooseModelAndData(page, dataFile);
    const badRows = page.getByTestId('cut-rows');
    await badRows.waitFor();
    const rows = await badRows.locator('tbody tr td:first-child').allTextContents();
    expect(rows).toContain('2');
    expect(await page.getByText(/bad rows?: fix the file, or choose to skip them/).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await screenshot(page, 'wizard-bad-rows');

    // Skipping them lets the wizard go on.
    await page.getByLabel('Skip the bad rows and train on the rest').check();
    expect(await page.getByRole('button', { name: 'Next' }).isEnabled()).toBe(true);
    await page.close();
  });

  it('reads a question,answer CSV: guesses its columns, maps them on request, and warns about quoted answers', async () => {
    const dataFile = path.join(home, 'support.csv');
    // CRLF and LF mixed, as rows pasted from two tools leave them; one answer keeps literal (doubled) quotes.
    const rows = ['question,answer', '"Reset?","Hold the button."', 'Hours?,"""9 to 5"""', '"Where?","At the back."'];
    fs.writeFileSync(dataFile, `${rows[0]}\r\n${rows[1]}\n${rows[2]}\r\n${rows[3]}\n`);
    const page = await openStudio();
    await page.getByRole('link', { name: 'New fine-tune' }).click();
    await expect.poll(() => page.getByTestId('model-facts').textContent()).toContain('yes');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('A file on this computer').check();
    await page.getByLabel('Data file').fill(dataFile);
    await page.getByRole('button', { name: 'Check data' }).click();
    // Refused in words (no CLI flags), with the mapping its headers suggest.
    const alert = page.getByRole('alert');
    await expect.poll(() => alert.textContent()).toMatch(/they look like prompt-completion/);
    expect(await alert.textContent()).not.toMatch(/--/);
    const suggestion = page.getByTestId('data-suggestion');
    expect((await suggestion.textContent())?.replace(/\s+/g, ' ')).toMatch(
      /prompt-completion \(prompt: question, completion: answer\)/,
    );
    await page.getByRole('button', { name: 'Read it that way' }).click();
    await page.getByTestId('dataset-facts').waitFor();
    expect(await page.getByTestId('data-format').inputValue()).toBe('prompt-completion');
    expect(await page.getByTestId('column-prompt').inputValue()).toBe('question');
    const facts = await page.getByTestId('dataset-facts').textContent();
    expect(facts).toMatch(/prompt-completion/);
    expect(await page.getByTestId('quoted-warning').textContent()).toMatch(
      /^1 row has a text wrapped in double quotes/,
    );
    expect(await page.getByRole('button', { name: 'Next' }).isEnabled()).toBe(true);
    await screenshot(page, 'wizard-csv-columns');
    await page.close();
  });

  it('says a configuration does not fit and suggests the change that would', async () => {
    const page = await openStudio();
    await chooseModelAndData(page, null);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Next' }).click();
    // Thousands of full-length rows without checkpointing: hundreds of GiB.
    await page.getByLabel('Device').selectOption('cpu');
    await page.getByLabel('Sequence length (tokens)').fill('2048');
    await page.getByLabel('Batch size (rows)').fill('512');
    await page.getByRole('checkbox', { name: /^Gradient checkpointing/ }).uncheck();
    await expect.poll(() => page.getByTestId('memory-plan').textContent()).toContain('does not fit');
    expect(await page.getByTestId('fit-suggestion').textContent()).toMatch(/Suggested change: .+/);
    await screenshot(page, 'wizard-does-not-fit');

    // A 4-bit base, beside checkpointing: the plan follows the choice, and the review says it.
    const before = await page.getByTestId('memory-plan').textContent();
    expect(await page.getByLabel('Quantize base weights').inputValue()).toBe('none');
    await page.getByLabel('Quantize base weights').selectOption({ label: 'nf4 (4-bit, QLoRA)' });
    await expect.poll(() => page.getByTestId('memory-plan').textContent()).not.toBe(before);
    expect(await page.getByTestId('memory-plan').textContent()).toContain('does not fit');
    await page.getByRole('button', { name: 'Next' }).click();
    await expect
      .poll(() => page.getByTestId('review').textContent())
      .toMatch(/Quantize base weights\s*nf4 \(4-bit, QLoRA\)/);
    await page.close();
  });
});
