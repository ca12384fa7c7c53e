// Runs named and renamed, and saved checkpoints opened as adapters, through the studio API over its real parts (a
// SQLite file, a real engine run of the demo model on the CPU), and `train --name` through the built CLI.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import type * as Stores from '../../main/store/store.js';
import { ROOT, runCliAsync } from '../support/cli.js';
import { demoJob } from '../api/jobs.js';

const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
  createStudioApi: typeof CreateStudioApi;
};
const { Store } = (await import(path.join(ROOT, 'dist/main/store/store.js'))) as typeof Stores;

let root: string;
let api: StudioService;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-checkpoints-'));
  api = createStudioApi({
    home: path.join(root, 'home'),
    homeEnvironment: { env: { XDG_DATA_HOME: path.join(root, 'data') }, platform: 'linux' },
  });
});
afterAll(async () => {
  await api?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('run names through the API', () => {
  it('starts a run with a name or a derived one, renames it, and refuses a bad name in words', async () => {
    const job = { ...demoJob(path.join(root, 'named'), 2), checkpointEvery: 0 };
    const named = await api.call('runs.start', { job, name: 'support bot v1' });
    expect(named.name).toBe('support bot v1');
    await until('the first run to finish', async () => (await api.call('runs.get', { id: named.id })).run.finishedAt);
    const unnamed = await api.call('runs.start', { job: { ...job, outDir: path.join(root, 'unnamed') } });
    expect(unnamed.name).toMatch(/^model on data\.jsonl, \d{4}-\d\d-\d\d \d\d:\d\d$/);
    await until(
      'the second run to finish',
      async () => (await api.call('runs.get', { id: unnamed.id })).run.finishedAt,
    );

    const renamed = await api.call('runs.rename', { id: named.id, name: ' support bot, lr 1e-3 ' });
    expect(renamed).toMatchObject({ id: named.id, name: 'support bot, lr 1e-3' });
    expect((await api.call('runs.list', {})).map((r) => r.name)).toEqual(['support bot, lr 1e-3', unnamed.name]);
    await expect(api.call('runs.rename', { id: named.id, name: '' })).rejects.toThrow(
      'runs.rename: params.name: a run name cannot be empty',
    );
    await expect(api.call('runs.rename', { id: 999, name: 'x' })).rejects.toThrow('run 999: no such run');
  });
});

describe('saved checkpoints as adapters', () => {
  it('writes each kept checkpoint as an adapter of the run, with its step, that the playground can load', async () => {
    const job = { ...demoJob(path.join(root, 'final'), 6), checkpointEvery: 2, keepCheckpoints: 3, evalEvery: 2 };
    const run = await api.call('runs.start', { job, name: 'checkpointed' });
    const details = await until('the run to complete', async () => {
      const d = await api.call('runs.get', { id: run.id });
      return d.run.status === 'completed' && d;
    });
    expect(details.checkpoints.map((c) => c.step)).toEqual([2, 4, 6]);

    const adapter = await api.call('runs.checkpointAdapter', { id: run.id, step: 4 });
    const folder = path.join(root, 'home', 'adapters', `run-${run.id}-step-4`);
    expect(adapter).toMatchObject({ runId: run.id, folder, method: 'lora', metrics: { steps: 4 } });
    expect(adapter.metrics.evalLoss).toEqual(expect.any(Number));
    expect(fs.readdirSync(folder).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'peft-studio-manifest.json',
      'training.json',
    ]);
    const training = JSON.parse(fs.readFileSync(path.join(folder, 'training.json'), 'utf8'));
    expect(training.checkpointStep).toBe(4);
    expect(training.losses.map((p: { step: number }) => p.step)).toEqual([1, 2, 3, 4]);
    // The step-6 checkpoint's weights are the run's own adapter's: byte for byte the same tensors.
    const last = await api.call('runs.checkpointAdapter', { id: run.id, step: 6 });
    expect(fs.readFileSync(path.join(last.folder, 'adapter_model.safetensors'))).toEqual(
      fs.readFileSync(path.join(job.outDir, 'adapter_model.safetensors')),
    );
    // Step 4's are not.
    expect(fs.readFileSync(path.join(folder, 'adapter_model.safetensors'))).not.toEqual(
      fs.readFileSync(path.join(job.outDir, 'adapter_model.safetensors')),
    );
    // Asked again: the same adapter, not another.
    expect((await api.call('runs.checkpointAdapter', { id: run.id, step: 4 })).id).toBe(adapter.id);
    expect((await api.call('runs.get', { id: run.id })).adapters.map((a) => a.folder)).toEqual([
      path.resolve(job.outDir),
      folder,
      last.folder,
    ]);

    const answer = await api.call('playground.generate', {
      requestId: 'checkpoint-4',
      modelDir: job.modelDir,
      adapterDir: adapter.folder,
      input: { type: 'prompt', text: 'User: What is Northwind?\nAssistant:' },
      sampling: { maxNewTokens: 4, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, stop: [] },
      device: 'cpu',
    });
    expect(answer.newTokens).toBeGreaterThan(0);

    // Its model card names the run, and the step's losses.
    const { markdown } = await api.call('export.modelCard', {
      adapterId: adapter.id,
      repoId: 'alice/checkpoint-4',
      baseModel: 'TestOrg/demo-base',
    });
    expect(markdown).toContain('| run | checkpointed |');
    expect(markdown).toContain('Training loss over 4 logged steps (step 1 to 4).');

    await expect(api.call('runs.checkpointAdapter', { id: run.id, step: 3 })).rejects.toThrow(
      `run ${run.id} has no saved checkpoint at step 3; it keeps steps 2, 4, 6`,
    );
  });
});

describe('train --name', () => {
  it('names the recorded run, and is refused without a studio folder to record it in', async () => {
    const home = path.join(root, 'cli-home');
    const args = ['train', '--steps', '1', '--device', 'cpu', '--out', path.join(root, 'cli-out')];
    const refused = await runCliAsync([...args, '--name', 'no home'], {
      env: { ...process.env, PEFT_STUDIO_HOME: '' },
    });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--name names a run recorded in a studio folder: give --home DIR too');
    const empty = await runCliAsync([...args, '--home', home, '--name', ' ']);
    expect(empty.stderr).toContain('--name: a run name cannot be empty');

    const result = await runCliAsync([...args, '--home', home, '--name', 'from the terminal']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`recorded in ${home}: "from the terminal"`);
    const store = Store.open(home);
    expect(store.run(1)!.name).toBe('from the terminal');
    store.close();
    const list = await runCliAsync(['runs', 'list', '--home', home]);
    expect(list.stdout).toMatch(/^1\s+completed\s+1\/1\s+lora\s+\S+\s+from the terminal$/m);
  });
});
