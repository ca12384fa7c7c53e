// Importing an adapter trained elsewhere from the Library, in real Chromium against `peft-studio serve`: a folder that
// is not an adapter is refused in words beside the field, a trainer's output folder written by real PEFT
// (test/fixtures/peft_import) comes in as the adapter of a run that was handed over, and a Hub repo from the loopback
// Hub comes in on its own. The base model is in the Hub cache, downloaded as the studio downloads models. Needs
// `npm run build` and /usr/bin/chromium.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunRecord } from '../../shared/runs.js';
import { demoJob } from '../api/jobs.js';
import { hubFor } from '../hub/helpers.js';
import { downloadModel } from '../../main/hub/modelDownload.js';
import { ROOT } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { callApi } from '../support/serve.js';
import { launchStudioBrowser, type StudioBrowser } from '../support/studioBrowser.js';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'peft_import');
const TRAINER_OUT = path.join(FIXTURES, 'trainer-out');
const DEMO_MODEL = path.join(ROOT, 'resources', 'demo', 'model');

let hub: HubServer;
let studio: StudioBrowser;
let work: string;
let baseFolder: string;

async function api<T>(method: string, params: unknown): Promise<T> {
  const answer = await callApi(studio.served, method, params);
  if (answer.status !== 200) throw new Error(`${method}: ${answer.status} ${answer.body}`);
  return JSON.parse(answer.body) as T;
}

beforeAll(async () => {
  work = tempDir('e2e-import');
  hub = await startHubServer();
  const files = (dir: string, names = fs.readdirSync(dir)) =>
    Object.fromEntries(names.map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  hub.addRepo('model', 'peft-studio/demo-tiny', files(DEMO_MODEL));
  hub.addRepo('model', 'someone/tiny-lora', files(TRAINER_OUT, ['adapter_config.json', 'adapter_model.safetensors']));
  const cacheDir = path.join(work, 'hub-cache');
  baseFolder = await downloadModel(hubFor(hub, cacheDir), 'peft-studio/demo-tiny');
  studio = await launchStudioBrowser('import', { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir });
}, 120_000);

afterAll(async () => {
  await studio?.close();
  await hub?.close();
});

it("imports a folder as a handed-over run's adapter and a Hub repo, and says a bad folder in words", async () => {
  // The run that went to the cluster: started here on the same base, then cancelled.
  const run = await api<RunRecord>('runs.start', {
    job: { ...demoJob(path.join(work, 'local-out')), modelDir: baseFolder },
    name: 'Sent to the cluster',
  });
  await api('runs.cancel', { id: run.id });

  const page = await studio.openStudio('#/library', [/status of 422 \(Unprocessable/]);
  const form = page.getByTestId('import-adapter');
  const field = form.getByLabel('Adapter folder or Hub repo');
  const empty = path.join(work, 'not-an-adapter');
  fs.mkdirSync(empty);
  await field.fill(empty);
  await form.getByRole('button', { name: 'Import' }).click();
  const error = form.getByRole('alert');
  await expect
    .poll(() => error.textContent())
    .toBe(`${empty}: not a PEFT adapter folder: no adapter_config.json (nor a checkpoint-N folder holding one)`);
  expect(await field.getAttribute('aria-invalid')).toBe('true');

  await field.fill(TRAINER_OUT);
  await form.getByLabel('Trained for run').selectOption({ label: `Run ${run.id}: Sent to the cluster` });
  await form.getByRole('button', { name: 'Import' }).click();
  await expect.poll(() => form.getByRole('status').textContent()).toContain('Imported as adapter 1.');
  expect(await error.count()).toBe(0);
  const table = page.getByTestId('adapters-table');
  const row = table.getByRole('row').filter({ hasText: `imported from ${TRAINER_OUT}` });
  await expect.poll(() => row.count()).toBe(1);
  expect(await row.textContent()).toContain(`Adapter 1 from run ${run.id}: Sent to the cluster, step 4 (LoRA)`);
  expect(await row.getByRole('link', { name: `run ${run.id}` }).count()).toBe(1);
  // The run's page: finished, its adapter the imported one, as for a run trained here.
  await row.getByRole('link', { name: `run ${run.id}` }).click();
  await expect
    .poll(() => page.getByText('Done. The adapter is in').textContent())
    .toBe(`Done. The adapter is in ${path.join(studio.home, 'adapters', 'imported-trainer-out')}.`);
  await page.goBack();

  await field.fill('someone/tiny-lora');
  await form.getByLabel('Trained for run').selectOption({ label: 'None: an adapter on its own' });
  await form.getByRole('button', { name: 'Import' }).click();
  await expect.poll(() => form.getByRole('status').textContent()).toContain('Imported as adapter 2.');
  await expect
    .poll(() => table.getByRole('row').filter({ hasText: 'imported from hub:someone/tiny-lora@' }).count())
    .toBe(1);

  // A Hub id with no repo behind it: the Hub's words for the GUI (Settings, not HF_TOKEN).
  await field.fill('someone/missing');
  await form.getByRole('button', { name: 'Import' }).click();
  await expect.poll(() => error.textContent()).toContain('look up adapter someone/missing: not authorized (401)');
  expect(await error.textContent()).toContain('in Settings');

  // Long origins (a Hub commit, a deep folder) wrap: at 800 px nothing scrolls sideways.
  await page.setViewportSize({ width: 800, height: 700 });
  const widths = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    tables: [...document.querySelectorAll('.table-scroll')].map((box) => box.scrollWidth - box.clientWidth),
  }));
  expect(widths).toEqual({ page: 0, tables: [0, 0] });
  await page.close();
}, 120_000);
