// adapters.import through the studio API (the built dist, as the app and `serve` run it): an adapter PEFT wrote,
// imported as the adapter of the run that was handed over, then the run's page, the playground, the model card and a
// merged export all take it as a local run's; a Hub import reports download progress; deleting it removes its copy.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StudioEvent } from '../../shared/api.js';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { ROOT } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { hubFor } from '../hub/helpers.js';
import { DEMO_DATA, DEMO_MODEL, demoJob } from './jobs.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'peft_import');
const TRAINER_OUT = path.join(FIXTURES, 'trainer-out');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  prompt: string;
  lora: { greedy_ids: number[] };
};

let work: string;
let server: HubServer;
let api: StudioService;
const events: StudioEvent[] = [];

beforeAll(async () => {
  work = tempDir('import-api');
  server = await startHubServer();
  const files = (dir: string, names = fs.readdirSync(dir)) =>
    Object.fromEntries(names.map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  server.addRepo('model', 'peft-studio/demo-tiny', files(DEMO_MODEL));
  server.addRepo(
    'model',
    'someone/tiny-lora',
    files(TRAINER_OUT, ['adapter_config.json', 'adapter_model.safetensors']),
  );
  const cacheDir = path.join(work, 'hub-cache');
  api = createStudioApi({ home: path.join(work, 'home'), autoStart: false, hub: () => hubFor(server, cacheDir) });
  api.subscribe((event) => events.push(event));
});

afterAll(async () => {
  await api?.close();
  await server?.close();
});

describe('adapters.import', () => {
  it("becomes the handed-over run's adapter: run page, playground, model card and export take it", async () => {
    const base = await api.call('models.download', { repoId: 'peft-studio/demo-tiny', requestId: 'base' });
    const queued = await api.call('runs.start', {
      job: { ...demoJob(path.join(work, 'local-out')), modelDir: base.folder, dataFile: DEMO_DATA },
      name: 'handed over',
    });
    // The run went to the cluster instead: cancelled here.
    await expect(api.call('adapters.import', { source: TRAINER_OUT, runId: queued.id })).rejects.toThrow(
      `run ${queued.id} is queued here: cancel it before importing the adapter trained elsewhere`,
    );
    await api.call('runs.cancel', { id: queued.id });
    const adapter = await api.call('adapters.import', { source: TRAINER_OUT, runId: queued.id });
    expect(adapter).toMatchObject({ runId: queued.id, baseModelId: base.id, origin: TRAINER_OUT, method: 'lora' });

    const details = await api.call('runs.get', { id: queued.id });
    expect(details.adapters.map((a) => a.id)).toEqual([adapter.id]);
    expect((await api.call('adapters.list', {})).map((a) => a.id)).toContain(adapter.id);

    const answer = await api.call('playground.generate', {
      requestId: 'imported',
      modelDir: base.folder,
      adapterDir: adapter.folder,
      input: { type: 'prompt', text: expected.prompt },
      sampling: { maxNewTokens: 4, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, stop: [] },
    });
    expect(answer.newTokens).toBe(4);
    expect(answer.text).toBe(loadTokenizer(base.folder).decode(expected.lora.greedy_ids.slice(0, 4)));

    const { markdown } = await api.call('export.modelCard', { adapterId: adapter.id, repoId: 'me/support-lora' });
    expect(markdown).toContain('base_model: peft-studio/demo-tiny');
    expect(markdown).toContain('| run | handed over |');
    expect(markdown).toContain(`| lora.rank | ${details.run.job.lora.rank} |`);

    const merged = await api.call('export.run', {
      adapterId: adapter.id,
      format: 'merged',
      destination: path.join(work, 'merged'),
    });
    expect(merged.files).toContain(path.join(work, 'merged', 'config.json'));
  });

  it('reports a Hub import as download progress, and refuses bad input in words', async () => {
    const adapter = await api.call('adapters.import', { source: 'someone/tiny-lora', requestId: 'pull' });
    expect(adapter.origin).toMatch(/^hub:someone\/tiny-lora@[0-9a-f]{40}$/);
    const progress = events.filter((e) => e.kind === 'download.progress' && e.requestId === 'pull');
    expect(progress.map((e) => e.kind === 'download.progress' && e.file)).toContain('adapter_model.safetensors');

    await expect(api.call('adapters.import', { source: path.join(work, 'merged') })).rejects.toThrow(
      `${path.join(work, 'merged')}: not a PEFT adapter folder: no adapter_config.json`,
    );
    await expect(api.call('adapters.import', { source: 'not a repo' })).rejects.toThrow(
      'neither an adapter folder (give its full path) nor a Hub repo id',
    );
    await expect(api.call('adapters.import', { source: '' })).rejects.toThrow(
      'adapters.import: params.source: must not be empty',
    );
  });

  it('deletes the imported copy and nothing of the source', async () => {
    const adapter = await api.call('adapters.import', { source: TRAINER_OUT, name: 'short-lived' });
    const before = fs.readdirSync(TRAINER_OUT).sort();
    expect(await api.call('adapters.delete', { id: adapter.id, deleteFiles: true })).toEqual({
      deleted: adapter.id,
      kept: [],
    });
    expect(fs.existsSync(adapter.folder)).toBe(false);
    expect(fs.readdirSync(TRAINER_OUT).sort()).toEqual(before);
  });
});
