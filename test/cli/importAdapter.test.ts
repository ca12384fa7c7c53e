// `peft-studio import` as users run it (the built CLI, a real process): a trainer's output folder written by real PEFT
// (test/fixtures/peft_import) and a Hub repo on the loopback Hub into a studio folder, then generate with it; --run
// linking shown by `runs show`; bad input in one line on stderr with exit code 1.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadModel } from '../../main/hub/modelDownload.js';
import { Store } from '../../main/store/store.js';
import { describeModelFolder } from '../../main/studio/runs/modelRecord.js';
import { defaultTrainJob } from '../../shared/trainJob.js';
import { lastJson, ROOT, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { cleanEnv, hubFor } from '../hub/helpers.js';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'peft_import');
const TRAINER_OUT = path.join(FIXTURES, 'trainer-out');
const DEMO_MODEL = path.join(ROOT, 'resources', 'demo', 'model');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  prompt_ids: number[];
  lora: { greedy_ids: number[] };
};

let work: string;
let home: string;
let server: HubServer;
let baseFolder: string;
let env: NodeJS.ProcessEnv;

// Asynchronous: the loopback Hub answers from this process's event loop.
const cli = (args: string[]) => runCliAsync(args, { env });

beforeAll(async () => {
  work = tempDir('import-cli');
  home = path.join(work, 'home');
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
  baseFolder = await downloadModel(hubFor(server, cacheDir), 'peft-studio/demo-tiny');
  env = cleanEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cacheDir });
}, 60_000);

afterAll(async () => {
  await server?.close();
});

describe('peft-studio import', () => {
  it("imports a trainer's output folder, and generate answers with it as PEFT does", async () => {
    const imported = await cli(['import', TRAINER_OUT, '--home', home, '--json']);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    const adapter = lastJson(imported.stdout);
    expect(adapter).toMatchObject({ runId: null, method: 'lora', origin: TRAINER_OUT });
    expect(adapter.folder).toBe(path.join(home, 'adapters', 'imported-trainer-out'));

    const answer = await cli([
      'generate',
      '--model',
      baseFolder,
      '--adapter',
      adapter.folder,
      '--prompt-ids',
      expected.prompt_ids.join(','),
      '--max-new-tokens',
      String(expected.lora.greedy_ids.length),
      '--ignore-eos',
      '--json',
    ]);
    expect(answer.code, answer.stderr).toBe(0);
    expect(lastJson(answer.stdout).ids).toEqual(expected.lora.greedy_ids);
  });

  it('links the adapter to the handed-over run, as runs show lists it', async () => {
    const store = Store.open(home);
    let runId: number;
    try {
      const model = store.addModel(describeModelFolder(baseFolder));
      const job = defaultTrainJob('lora', {
        modelDir: baseFolder,
        dataFile: path.join(work, 'data.jsonl'),
        outDir: path.join(work, 'out'),
      });
      runId = store.createRun(job, model.id, null, 'handed over').id;
      store.setRunStatus(runId, 'cancelled');
    } finally {
      store.close();
    }
    const imported = await cli([
      'import',
      TRAINER_OUT,
      '--run',
      String(runId),
      '--name',
      'from-the-cluster',
      '--home',
      home,
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    const folder = path.join(home, 'adapters', 'from-the-cluster');
    expect(imported.stdout).toContain(`as run ${runId}'s adapter into ${folder} (LoRA, base peft-studio/demo-tiny)`);
    expect(imported.stdout).toContain(`try it: peft-studio chat --model ${baseFolder} --adapter ${folder}`);
    const shown = await cli(['runs', 'show', String(runId), '--home', home, '--json']);
    expect(lastJson(shown.stdout).adapters.map((a: { folder: string }) => a.folder)).toEqual([folder]);
  });

  it('imports a Hub repo through HF_ENDPOINT, saying what it fetched', async () => {
    const imported = await cli(['import', 'someone/tiny-lora', '--home', home]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toContain('fetched adapter_model.safetensors');
    expect(imported.stdout).toContain(`into ${path.join(home, 'adapters', 'imported-someone-tiny-lora')}`);
  });

  it('says bad input in one line, exit code 1', async () => {
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    for (const [args, message] of [
      [[empty], `${empty}: not a PEFT adapter folder: no adapter_config.json (nor a checkpoint-N folder holding one)`],
      [[TRAINER_OUT, '--run', '99'], 'run 99: no such run'],
      [['someone/missing'], 'look up adapter someone/missing: not authorized (401)'],
    ] as const) {
      const result = await cli(['import', ...args, '--home', home]);
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(`peft-studio import: error: ${message}`);
    }
    const usage = await cli(['import', '--home', home]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('import takes one adapter folder or Hub repo id');
  });
});
