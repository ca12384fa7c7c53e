// A Hub model through the studio API, against the loopback Hub: before download its size and whether training fits
// (the engine's memory plan of the default settings against this computer's memory), the download with progress
// events into the shared cache, recorded in the store as a Hub model; then an adapter trained on it pushed back with
// the token entered in settings.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { StudioEvent } from '../../shared/api.js';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import { ROOT } from '../support/cli.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { hubFor, tinyModelFiles } from '../hub/helpers.js';
import { DEMO_DATA, demoJob } from './jobs.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};

let server: HubServer;
let root: string;
let api: StudioService;
const events: StudioEvent[] = [];

beforeAll(async () => {
  server = await startHubServer();
  server.addRepo('model', 'TestOrg/tiny', tinyModelFiles({ layers: 3, hidden: 64 }));
  // A 70B-class config: the plan is computed from config.json alone, nothing of its size is downloaded.
  const huge = tinyModelFiles({ layers: 2, hidden: 64 });
  const config = {
    ...JSON.parse(huge['config.json'].toString()),
    hidden_size: 8192,
    intermediate_size: 28672,
    num_hidden_layers: 80,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 128256,
    torch_dtype: 'bfloat16',
  };
  server.addRepo(
    'model',
    'TestOrg/huge',
    { ...huge, 'config.json': JSON.stringify(config) },
    { safetensorsTotal: 70_553_706_496 },
  );
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-hub-models-'));
  const cache = path.join(root, 'hf-cache');
  api = createStudioApi({ home: path.join(root, 'home'), hub: (token) => hubFor(server, cache, token) });
  api.subscribe((event) => events.push(event));
});

afterAll(async () => {
  await api?.close();
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

it('says before download how big a Hub model is and whether training it fits this computer', async () => {
  const tiny = await api.call('models.inspect', { source: 'TestOrg/tiny' });
  expect(tiny).toMatchObject({ kind: 'hub', architecture: 'llama', supported: true, gated: false, fits: true });
  expect(tiny.trainingBytes).toBeGreaterThan(50 * 2 ** 20);
  expect(tiny.trainingBytes).toBeLessThan(os.totalmem());

  const huge = await api.call('models.inspect', { source: 'TestOrg/huge' });
  expect(huge).toMatchObject({ kind: 'hub', parameters: 70_553_706_496, supported: true, fits: false });
  // At least the weights, kept 16-bit as the checkpoint stores them.
  expect(huge.trainingBytes).toBeGreaterThan(2 * 70e9);
});

it('downloads a Hub model with progress and records it as a Hub model', async () => {
  const model = await api.call('models.download', { repoId: 'TestOrg/tiny', requestId: 'dl-1' });
  expect(model).toMatchObject({
    source: 'hub',
    location: 'TestOrg/tiny',
    revision: expect.stringMatching(/^[0-9a-f]{40}$/),
    architecture: 'llama',
  });
  expect(model.folder).toContain(path.join(root, 'hf-cache', 'models--TestOrg--tiny', 'snapshots'));
  const progress = events.flatMap((e) => (e.kind === 'download.progress' && e.requestId === 'dl-1' ? [e] : []));
  expect(new Set(progress.map((p) => p.file))).toEqual(
    new Set(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']),
  );
  for (const file of new Set(progress.map((p) => p.file))) {
    const last = progress.filter((p) => p.file === file).at(-1)!;
    expect(last.fileBytes, file).toBe(last.fileSize);
  }
  expect(progress.map((p) => p.doneBytes)).toEqual([...progress.map((p) => p.doneBytes)].sort((a, b) => a - b));
  expect(progress.at(-1)).toMatchObject({ index: 5, count: 5, doneBytes: progress.at(-1)!.totalBytes });
  expect((await api.call('models.list', {})).map((m) => m.location)).toContain('TestOrg/tiny');
  // The downloaded folder is a model the studio reads like any local one.
  expect(await api.call('models.inspect', { source: model.folder })).toMatchObject({ kind: 'local', supported: true });
});

it('pushes an adapter trained on the downloaded model, with the token from settings, after a model card preview', async () => {
  const token = 'hf_studio_write_token_0123456789';
  server.addToken(token, { user: 'alice', role: 'write' });
  const base = (await api.call('models.list', {})).find((m) => m.location === 'TestOrg/tiny')!;
  const run = await api.call('runs.start', {
    job: { ...demoJob(path.join(root, 'tiny-adapter'), 3), modelDir: base.folder, dataFile: DEMO_DATA },
  });
  for (let i = 0; (await api.call('runs.get', { id: run.id })).run.status !== 'completed'; i++) {
    expect((await api.call('runs.get', { id: run.id })).run.error).toBeNull();
    expect(i, 'the run to complete').toBeLessThan(2000);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const adapter = (await api.call('adapters.list', {})).find((a) => a.runId === run.id)!;
  // The playground answers from the cache snapshot too (its weights are links into blobs/).
  const answer = await api.call('playground.generate', {
    requestId: 'gen-1',
    modelDir: base.folder,
    adapterDir: adapter.folder,
    input: { type: 'prompt', text: 'Hello' },
    sampling: { maxNewTokens: 4 },
  });
  expect(answer).toMatchObject({ requestId: 'gen-1', newTokens: expect.any(Number) });
  expect(answer.newTokens).toBeGreaterThan(0);

  const { markdown } = await api.call('export.modelCard', { adapterId: adapter.id, repoId: 'alice/tiny-lora' });
  expect(markdown).toMatch(/^---\n[\s\S]*library_name: peft[\s\S]*base_model: TestOrg\/tiny[\s\S]*\n---\n/);
  await expect(
    api.call('export.hub', { adapterId: adapter.id, repoId: 'alice/tiny-lora', requestId: 'push-1' }),
  ).rejects.toThrow(/no token/);

  await api.call('settings.set', { hfToken: token });
  const pushed = await api.call('export.hub', {
    adapterId: adapter.id,
    repoId: 'alice/tiny-lora',
    requestId: 'push-2',
  });
  expect(pushed).toMatchObject({
    repoId: 'alice/tiny-lora',
    created: true,
    record: { format: 'hub', destination: 'alice/tiny-lora', hubUrl: pushed.repoUrl },
  });
  const repo = server.repo('model', 'alice/tiny-lora');
  expect(repo.private).toBe(true);
  const files = [...[...repo.commits.values()].at(-1)!.files.keys()].sort();
  expect(files).toEqual(
    expect.arrayContaining(['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'loss.png']),
  );
  expect(
    JSON.parse([...repo.commits.values()].at(-1)!.files.get('adapter_config.json')!.toString()).base_model_name_or_path,
  ).toBe('TestOrg/tiny');
  const phases = events.flatMap((e) => (e.kind === 'push.progress' && e.requestId === 'push-2' ? [e.phase] : []));
  expect(phases[0]).toBe('checking');
  expect(phases).toContain('committing');
  await api.call('settings.set', { hfToken: null });
});
