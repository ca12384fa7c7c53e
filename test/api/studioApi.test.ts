// The studio API over the real parts: a SQLite file in a temp home, real engine runs on the demo model on the CPU,
// the real dataset pipeline, memory planner and exporters. Imports the built code (dist/), as the app runs it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gguf as parseGguf } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StudioEvent } from '../../shared/api.js';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import { defaultStudioHome } from '../../main/store/home.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';
import { ROOT } from '../support/cli.js';
import { DEMO_DATA, DEMO_MODEL, demoJob } from './jobs.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};

const CORES = engineThreads(null);
const TOKEN = `hf_${crypto.randomBytes(16).toString('hex')}`;
let root: string;
let api: StudioService;
const events: StudioEvent[] = [];
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-api-'));
  // The chosen storage folder is recorded under XDG_DATA_HOME: a temp one, not this machine's.
  api = createStudioApi({
    home: path.join(root, 'home'),
    homeEnvironment: { env: { XDG_DATA_HOME: path.join(root, 'data') }, platform: 'linux' },
  });
  api.subscribe((event) => events.push(event));
});
afterAll(async () => {
  await api?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

async function until<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 180_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('the studio API', () => {
  it('answers app, device, demo and settings calls; keeps the token in the main process', async () => {
    const info = await api.call('app.info', {});
    expect(info).toMatchObject({
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      home: path.join(root, 'home'),
      platform: process.platform,
    });
    const devices = await api.call('devices.list', {});
    expect(devices[0]).toMatchObject({ device: 'cpu', memoryBytes: os.totalmem() });
    // Without a GPU device file, Linux's WebGPU is Mesa's software Vulkan (which the WebGPU tests run on): named so,
    // and never the one auto picks.
    const renderNodes = fs.existsSync('/dev/dri') && fs.readdirSync('/dev/dri').some((n) => n.startsWith('renderD'));
    const software = process.platform === 'linux' && !renderNodes && !fs.existsSync('/dev/nvidia0');
    expect(devices.find((d) => d.device === 'webgpu')).toMatchObject(
      software
        ? { name: 'WebGPU in software, no GPU found (slower than the CPU)', preferred: false }
        : { name: 'GPU (WebGPU)' },
    );
    expect(await api.call('demo.paths', {})).toEqual({
      modelDir: DEMO_MODEL,
      dataFile: DEMO_DATA,
      heldOutFile: DEMO_DATA.replace(/data\.jsonl$/, 'held-out.jsonl'),
    });
    const folders = {
      storageFolder: path.join(root, 'home'),
      chosenStorageFolder: null,
      defaultStorageFolder: path.join(root, 'data', 'peft-studio'),
    };
    expect(await api.call('settings.get', {})).toEqual({
      device: 'auto',
      threads: null,
      defaultThreads: CORES,
      theme: 'system',
      hasToken: false,
      ...folders,
    });
    // The token stays set while the other tests run: the last one looks for it in every file the studio wrote.
    expect(await api.call('settings.set', { theme: 'dark', hfToken: TOKEN })).toEqual({
      device: 'auto',
      threads: null,
      defaultThreads: CORES,
      theme: 'dark',
      hasToken: true,
      ...folders,
    });
    // Another storage folder takes effect at the next start; this session stays where it is.
    const elsewhere = path.join(root, 'elsewhere');
    expect(await api.call('settings.set', { storageFolder: elsewhere })).toMatchObject({
      storageFolder: folders.storageFolder,
      chosenStorageFolder: elsewhere,
    });
    expect(fs.existsSync(elsewhere)).toBe(true);
    expect(defaultStudioHome({ env: { XDG_DATA_HOME: path.join(root, 'data') }, platform: 'linux' })).toBe(elsewhere);
    expect(
      defaultStudioHome({
        env: { XDG_DATA_HOME: path.join(root, 'data'), PEFT_STUDIO_HOME: '/env/home' },
        platform: 'linux',
      }),
    ).toBe('/env/home');
    const underFile = path.join(root, 'a-file', 'studio');
    fs.writeFileSync(path.join(root, 'a-file'), 'not a folder');
    await expect(api.call('settings.set', { storageFolder: underFile })).rejects.toThrow(
      `${underFile}: cannot be the storage folder (ENOTDIR); choose a folder you can write to`,
    );
    expect(await api.call('settings.set', { storageFolder: null })).toMatchObject({ chosenStorageFolder: null });
    expect(defaultStudioHome({ env: { XDG_DATA_HOME: path.join(root, 'data') }, platform: 'linux' })).toBe(
      folders.defaultStorageFolder,
    );
    expect(JSON.stringify(await api.call('settings.get', {}))).not.toContain(TOKEN);
    await expect(api.call('runs.get', { id: 99 })).rejects.toThrow('run 99: no such run');
    await expect(api.dispatch('runs.get', { id: 'x' })).rejects.toMatchObject({ name: 'ApiError' });
  });

  it('inspects the demo model and dataset', async () => {
    const model = await api.call('models.inspect', { source: DEMO_MODEL });
    expect(model).toMatchObject({ kind: 'local', architecture: 'llama', dtype: 'F32', supported: true, reason: null });
    expect(model.parameters).toBeGreaterThan(100_000);
    const notModel = await api.call('models.inspect', { source: root });
    expect(notModel).toMatchObject({ supported: false, reason: expect.stringContaining('config.json') });

    const data = await api.call('datasets.inspect', {
      file: DEMO_DATA,
      modelDir: DEMO_MODEL,
      data: { format: null, columns: {}, trainOn: 'completion', pack: false, skipBadRows: false },
    });
    expect(data.format).toBe('text');
    expect(data.stats).toMatchObject({ rows: 171, badRows: 0 });
    expect(data.previews).toHaveLength(3);
    expect(data.previews[0].tokens.some((t) => t.trained)).toBe(true);

    const bad = path.join(root, 'bad.jsonl');
    fs.writeFileSync(bad, '{"text": "User: hi\\nAssistant: hello"}\n{"text": 42}\nnot json\n');
    const inspected = await api.call('datasets.inspect', {
      file: bad,
      modelDir: DEMO_MODEL,
      data: { format: null, columns: {}, trainOn: 'all', pack: false, skipBadRows: false },
    });
    expect(inspected.badRows.map((r) => r.row)).toEqual([2, 3]);
  });

  it('plans memory: the demo fits; an impossible configuration does not, with the change that fixes it', async () => {
    const fit = await api.call('models.fit', { config: demoJob(path.join(root, 'x')) });
    expect(fit).toMatchObject({ device: 'cpu', availableBytes: os.totalmem(), fits: true, suggestion: null });
    expect(fit.totalBytes).toBe(Object.values(fit.parts).reduce((a, b) => a + b, 0));
    // Rows of 4096 tokens, enough of them that the saved hidden states alone outgrow this machine's memory.
    const batchSize = 2 ** Math.ceil(Math.log2(os.totalmem() / (4096 * 128 * 4)));
    const huge = await api.call('models.fit', {
      config: { ...demoJob(path.join(root, 'x')), batchSize, maxSeqLen: 4096, gradientCheckpointing: false },
    });
    expect(huge.fits).toBe(false);
    expect(huge.totalBytes).toBeGreaterThan(os.totalmem());
    expect(huge.suggestion).toMatch(/gradient checkpointing|batch size|sequence length/);
    expect(huge.suggestedBytes).toBeLessThanOrEqual(os.totalmem());
  });

  it('trains a run: run events, completion, chart points, the adapter listed, and exports it', async () => {
    const outDir = path.join(root, 'adapter');
    // The threads setting: a job that leaves them to the machine gets it, and the run records what its engine used.
    expect(await api.call('settings.set', { threads: 1 })).toMatchObject({ threads: 1 });
    const run = await api.call('runs.start', { job: demoJob(outDir) });
    expect(run).toMatchObject({ id: 1, status: 'queued' });
    const done = await until('the run to finish', async () => {
      const { run: current } = await api.call('runs.get', { id: run.id });
      return ['completed', 'failed', 'cancelled', 'interrupted'].includes(current.status) && current;
    });
    expect(done.status, done.error ?? '').toBe('completed');
    expect(done).toMatchObject({ threads: 1, job: { threads: 1 } });
    const runEvents = events.flatMap((e) => (e.kind === 'run' && e.event.runId === run.id ? [e.event] : []));
    expect(runEvents.filter((e) => e.type === 'status').map((e) => e.type === 'status' && e.status)).toEqual([
      'queued',
      'running',
      'completed',
    ]);
    expect(runEvents.filter((e) => e.type === 'engine' && e.event.type === 'step')).toHaveLength(4);

    const chart = await api.call('runs.chart', { id: run.id, maxPoints: 100 });
    expect(chart.loss.map((p) => p.step)).toEqual([1, 2, 3, 4]);
    expect(chart.eval.length).toBeGreaterThan(0);
    const details = await api.call('runs.get', { id: run.id });
    expect(details.latest).toMatchObject({ step: 4 });
    expect(details.checkpoints.length).toBeGreaterThan(0);
    expect(details.model).toMatchObject({ source: 'builtin', architecture: 'llama' });

    const adapters = await api.call('adapters.list', {});
    expect(adapters).toEqual([expect.objectContaining({ runId: run.id, folder: outDir, method: 'lora' })]);
    expect(await api.call('runs.list', {})).toHaveLength(1);
    expect((await api.call('models.list', {})).map((m) => m.folder)).toEqual([DEMO_MODEL]);

    const exported = await api.call('export.run', {
      adapterId: adapters[0].id,
      format: 'peft',
      destination: path.join(root, 'export-peft'),
    });
    expect(exported.files.map((f) => path.basename(f))).toEqual(
      expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors']),
    );
    expect(exported.record).toMatchObject({
      adapterId: adapters[0].id,
      format: 'peft',
      destination: path.join(root, 'export-peft'),
    });
    const gguf = await api.call('export.run', {
      adapterId: adapters[0].id,
      format: 'gguf',
      destination: path.join(root, 'export-gguf'),
    });
    expect(gguf.files.map((f) => path.basename(f))).toEqual(['adapter.gguf', 'Modelfile']);
    expect(gguf.ollamaCommand).toBe(`ollama create export-gguf -f ${path.join(root, 'export-gguf', 'Modelfile')}`);
    // One merged model file at 4 bits (llama.cpp's file type MOSTLY_Q4_0), recorded as such.
    const modelFile = await api.call('export.run', {
      adapterId: adapters[0].id,
      format: 'gguf-model',
      quant: 'q4_0',
      destination: path.join(root, 'export-model'),
    });
    expect(modelFile.files.map((f) => path.basename(f))).toEqual(['model.gguf', 'Modelfile']);
    expect(modelFile.ollamaCommand).toBe(
      `ollama create export-model -f ${path.join(root, 'export-model', 'Modelfile')}`,
    );
    expect(modelFile.record).toMatchObject({ format: 'gguf-model', destination: modelFile.path });
    const { metadata } = await parseGguf(modelFile.path, { allowLocalFile: true });
    expect(metadata['general.file_type']).toBe(2);
    expect(fs.readFileSync(path.join(root, 'export-model', 'Modelfile'), 'utf8')).toMatch(/^FROM \.\/model\.gguf$/m);
    const merged = await api.call('export.run', {
      adapterId: adapters[0].id,
      format: 'merged',
      destination: path.join(root, 'export-merged'),
    });
    expect(merged.files.map((f) => path.basename(f))).toEqual(
      expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']),
    );
    await expect(
      api.call('export.run', {
        adapterId: adapters[0].id,
        format: 'peft',
        destination: path.join(root, 'export-peft'),
      }),
    ).rejects.toThrow('must be a new or empty folder');

    // The playground streams tokens for its request id, base and adapter alike.
    const answer = await api.call('playground.generate', {
      requestId: 'g1',
      modelDir: DEMO_MODEL,
      adapterDir: outDir,
      input: { type: 'prompt', text: 'User: Hi!\nAssistant:' },
      sampling: { maxNewTokens: 8 },
      device: 'cpu',
    });
    expect(answer).toMatchObject({ requestId: 'g1', device: 'cpu', threads: 1 });
    await api.call('settings.set', { threads: null });
    const streamed = events.flatMap((e) => (e.kind === 'playground.token' && e.requestId === 'g1' ? [e.text] : []));
    expect(streamed.length).toBe(answer.newTokens);
    expect(streamed.join('')).toBe(answer.text);

    await expect(api.call('runs.delete', { id: run.id })).resolves.toEqual({ deleted: run.id });
    expect(fs.existsSync(run.runDir)).toBe(false);
    expect(fs.existsSync(outDir)).toBe(true);
  });

  it('pauses, resumes, cancels and deletes a run', async () => {
    const status = async (id: number) => (await api.call('runs.get', { id })).run;
    const run = await api.call('runs.start', {
      job: { ...demoJob(path.join(root, 'long-adapter'), 100_000), checkpointEvery: 0 },
    });
    await until('the first step', async () => (await status(run.id)).step >= 1);
    await api.call('runs.pause', { id: run.id });
    const paused = await until(
      'the pause',
      async () => (await status(run.id)).status === 'paused' && (await api.call('runs.get', { id: run.id })),
    );
    expect(paused.checkpoints).toHaveLength(1);
    await expect(api.call('runs.delete', { id: run.id })).resolves.toEqual({ deleted: run.id });

    const again = await api.call('runs.start', {
      job: { ...demoJob(path.join(root, 'long-adapter-2'), 100_000), checkpointEvery: 0 },
    });
    await until('the first step', async () => (await status(again.id)).step >= 1);
    await api.call('runs.pause', { id: again.id });
    await until('the pause', async () => (await status(again.id)).status === 'paused');
    // Queued, and at once claimed by the queue.
    expect(['queued', 'running']).toContain((await api.call('runs.resume', { id: again.id })).status);
    await until('the resumed run', async () => (await status(again.id)).status === 'running');
    // A chat beside the training run gets the cores training leaves (at least one), not a second full pool.
    expect(await status(again.id)).toMatchObject({ threads: CORES });
    const beside = await api.call('playground.generate', {
      requestId: 'beside-training',
      modelDir: DEMO_MODEL,
      adapterDir: null,
      input: { type: 'prompt', text: 'Hi' },
      sampling: { maxNewTokens: 2 },
      device: 'cpu',
    });
    expect(beside.threads).toBe(1); // training holds every core
    await expect(api.call('runs.delete', { id: again.id })).rejects.toThrow(
      `run ${again.id} is running: cancel it before deleting it`,
    );
    await api.call('runs.cancel', { id: again.id });
    expect(await until('the cancel', async () => (await status(again.id)).status === 'cancelled')).toBe(true);
    await expect(api.call('runs.resume', { id: again.id })).rejects.toThrow(
      'only paused, failed, interrupted runs can be resumed',
    );
  });

  it('stops and saves: a running run ends with its adapter, a paused one saves from its checkpoint', async () => {
    const details = (id: number) => api.call('runs.get', { id });
    const start = (name: string) =>
      api.call('runs.start', {
        job: { ...demoJob(path.join(root, name), 100_000), checkpointEvery: 0, evalSplit: 0.1, evalEvery: 0 },
      });

    const running = await start('stopped-adapter');
    await until('the second step', async () => (await details(running.id)).run.step >= 2);
    await api.call('runs.stop', { id: running.id });
    const stopped = await until(
      'the stop',
      async () => (await details(running.id)).run.status === 'completed' && details(running.id),
    );
    expect(stopped.run.step).toBeGreaterThanOrEqual(2);
    expect(stopped.run.step).toBeLessThan(100_000);
    expect(stopped.log.join('\n')).toMatch(/stopped after step \d+ of 100000: saving the adapter as it is now/);
    const adapter = stopped.adapters.at(-1)!;
    expect(adapter.metrics.steps).toBe(stopped.run.step);
    expect(adapter.metrics.evalLoss).not.toBeNull(); // validated at the stop, not only at a last step never reached
    expect(fs.existsSync(path.join(adapter.folder, 'adapter_model.safetensors'))).toBe(true);
    await expect(api.call('runs.stop', { id: running.id })).rejects.toThrow(
      `run ${running.id} is completed: only running, paused or interrupted runs can be stopped and saved`,
    );

    const paused = await start('paused-then-saved');
    await until('the first step', async () => (await details(paused.id)).run.step >= 1);
    await api.call('runs.pause', { id: paused.id });
    const atPause = await until(
      'the pause',
      async () => (await details(paused.id)).run.status === 'paused' && (await details(paused.id)).run.step,
    );
    await api.call('runs.stop', { id: paused.id });
    const saved = await until(
      'the save',
      async () => (await details(paused.id)).run.status === 'completed' && details(paused.id),
    );
    expect(saved.run.step).toBe(atPause); // no step after the checkpoint
    expect(saved.adapters.at(-1)!.metrics.steps).toBe(atPause);
  });

  it('stops a generation by request id', async () => {
    const generation = api.call('playground.generate', {
      requestId: 'long',
      modelDir: DEMO_MODEL,
      adapterDir: null,
      input: { type: 'messages', messages: [{ role: 'user', content: 'Hello' }] },
      sampling: { maxNewTokens: 4096, temperature: 1 },
      device: 'cpu',
    });
    await until('the first token', () => events.some((e) => e.kind === 'playground.token' && e.requestId === 'long'));
    expect(await api.call('playground.stop', { requestId: 'long' })).toEqual({ stopped: true });
    expect(await generation).toMatchObject({ finishReason: 'cancelled' });
    expect(await api.call('playground.stop', { requestId: 'long' })).toEqual({ stopped: false });
  });

  it('answers from an int4 copy of the base, made once in the studio folder and reused', async () => {
    const ask = (requestId: string) =>
      api.call('playground.generate', {
        requestId,
        modelDir: DEMO_MODEL,
        adapterDir: null,
        input: { type: 'prompt', text: 'User: Hi!\nAssistant:' },
        sampling: { maxNewTokens: 6 },
        device: 'cpu',
        quantize: 'int4',
      });
    expect((await ask('int4-first')).newTokens).toBeGreaterThan(0);
    const quantized = path.join(root, 'home', 'quantized');
    const [copy, ...others] = fs.readdirSync(quantized);
    expect(others).toEqual([]);
    const config = JSON.parse(fs.readFileSync(path.join(quantized, copy, 'config.json'), 'utf8'));
    expect(config.quantization_config.quant_method).toBe('peft-studio-int4');
    const written = fs.statSync(path.join(quantized, copy, 'model.safetensors')).mtimeMs;
    expect((await ask('int4-again')).newTokens).toBeGreaterThan(0);
    expect(fs.statSync(path.join(quantized, copy, 'model.safetensors')).mtimeMs).toBe(written);
  });

  it('never writes the Hub token: not to the database, its journal, the run logs, settings or any other file', async () => {
    const home = path.join(root, 'home');
    const files = (fs.readdirSync(home, { recursive: true }) as string[])
      .map((f) => path.join(home, f))
      .filter((f) => fs.statSync(f).isFile());
    expect(files.some((f) => f.endsWith('studio.db'))).toBe(true);
    expect(files.some((f) => f.endsWith('settings.json'))).toBe(true);
    for (const file of files) expect(fs.readFileSync(file).includes(TOKEN), file).toBe(false);
    expect((await api.call('settings.get', {})).hasToken).toBe(true);
    expect(await api.call('settings.set', { hfToken: null })).toMatchObject({
      device: 'auto',
      theme: 'dark',
      hasToken: false,
    });
  });
});
