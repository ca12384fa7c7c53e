// Importing adapters trained elsewhere (main/studio/services/importAdapter.ts): adapters written by real PEFT and a
// transformers Trainer (test/reference/make_peft_import_fixtures.py, on the demo model as the Hub repo
// peft-studio/demo-tiny) copied into the library on a base the studio opens, with PEFT's own logits; --run linking;
// the Hub path through the loopback Hub; the bad inputs in one line each; deleting exactly the copy.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_FILE, deleteAdapterFiles, studioPlaces } from '../../main/adapter/adapterFiles.js';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import type { HubAccess } from '../../main/hub/access.js';
import { downloadModel } from '../../main/hub/modelDownload.js';
import { InferenceModel } from '../../main/engine/runtime/inferenceModel.js';
import { engineThreads } from '../../main/engine/runtime/threads.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { argmax } from '../../main/playground/sampler.js';
import { Store } from '../../main/store/store.js';
import { importAdapter, type ImportRequest } from '../../main/studio/services/importAdapter.js';
import { describeModelFolder } from '../../main/studio/runs/modelRecord.js';
import { defaultTrainJob } from '../../shared/trainJob.js';
import { maxRelativeError, tempDir } from '../support/engine.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { hubFor } from '../hub/helpers.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'peft_import');
const TRAINER_OUT = path.join(FIXTURES, 'trainer-out');
const PROMPT_TUNING = path.join(FIXTURES, 'prompt-tuning');
const BASE_REPO = 'peft-studio/demo-tiny';
const DEMO_MODEL_DIR = path.join(FIXTURES, '..', '..', '..', 'resources', 'demo', 'model');

interface Reference {
  last_logits: number[];
  greedy_ids: number[];
}
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  prompt_ids: number[];
  base: Reference;
  lora: Reference;
  prompt_tuning: Reference;
};

const folderFiles = (dir: string) => fs.readdirSync(dir).sort();
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const treeHashes = (dir: string): Record<string, string> =>
  Object.fromEntries(
    (fs.readdirSync(dir, { recursive: true }) as string[])
      .filter((f) => fs.statSync(path.join(dir, f)).isFile())
      .map((f) => [f, sha256(path.join(dir, f))]),
  );

let work: string;
let server: HubServer;
let hub: HubAccess;
let store: Store;
let baseFolder: string;

/** A writable copy of a fixture folder, changed by `edit` (given the copy's adapter_config.json). */
function variant(name: string, from: string, edit: (config: Record<string, unknown>) => void = () => {}): string {
  const dir = path.join(work, 'variants', name);
  fs.cpSync(from, dir, { recursive: true });
  const file = path.join(dir, 'adapter_config.json');
  if (fs.existsSync(file)) {
    const config = JSON.parse(fs.readFileSync(file, 'utf8'));
    edit(config);
    fs.writeFileSync(file, JSON.stringify(config));
  }
  return dir;
}

const run = (request: ImportRequest, access: HubAccess = hub) => importAdapter(store, () => access, request);

/** The last position's logits and `count` greedy ids, with the KV cache, as the playground decodes. */
async function decode(adapterDir: string, count: number) {
  const folder = openModelFolder(baseFolder);
  const model = await InferenceModel.load(folder, 'cpu', loadAdapter(adapterDir, folder.spec), {
    threads: engineThreads(null),
  });
  try {
    let { logits, cache } = await model.step(expected.prompt_ids, model.emptyCache(), 1);
    const first = Float32Array.from(logits);
    const ids: number[] = [];
    while (ids.length < count) {
      ids.push(argmax(logits));
      ({ logits, cache } = await model.step([ids.at(-1)!], cache, 1));
    }
    cache.dispose();
    return { first, ids };
  } finally {
    await model.close();
  }
}

/** A finished run on `modelDir`, as a handoff starts from. */
function finishedRun(modelDir: string, method: 'lora' | 'prompt-tuning' = 'lora') {
  const model = store.addModel(describeModelFolder(modelDir));
  const job = defaultTrainJob(method, {
    modelDir,
    dataFile: path.join(work, 'data.jsonl'),
    outDir: path.join(work, 'out'),
  });
  const created = store.createRun(job, model.id, null);
  store.setRunStatus(created.id, 'cancelled');
  return store.run(created.id)!;
}

beforeAll(async () => {
  work = tempDir('import-adapter');
  server = await startHubServer();
  const files = (dir: string) =>
    Object.fromEntries(folderFiles(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  server.addRepo('model', BASE_REPO, files(DEMO_MODEL_DIR));
  server.addRepo('model', 'someone/tiny-lora', {
    ...Object.fromEntries(
      ['adapter_config.json', 'adapter_model.safetensors', 'README.md'].map((f) => [
        f,
        fs.readFileSync(path.join(TRAINER_OUT, f)),
      ]),
    ),
  });
  server.addRepo('model', 'someone/not-an-adapter', { 'README.md': '# nothing here\n' });
  hub = hubFor(server, path.join(work, 'hub-cache'));
  // The base the adapters name, downloaded as the studio downloads models: a snapshot in the Hub cache.
  baseFolder = await downloadModel(hub, BASE_REPO);
  store = Store.open(path.join(work, 'home'));
}, 60_000);

afterAll(async () => {
  store?.close();
  await server?.close();
});

describe('peft-studio import: adapters PEFT wrote', () => {
  it("copies a trainer's output folder's final adapter, whose logits equal PEFT's", async () => {
    const { adapter, checkpoint } = await run({ source: TRAINER_OUT });
    expect(checkpoint).toBeNull();
    expect(adapter).toMatchObject({ runId: null, method: 'lora', origin: TRAINER_OUT, chatTemplate: null });
    expect(adapter.folder).toBe(path.join(store.home, 'adapters', 'imported-trainer-out'));
    // Only the adapter (and a training.json from trainer_state.json for the card), never the README or checkpoints.
    expect(folderFiles(adapter.folder)).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'peft-studio-manifest.json',
      'training.json',
    ]);
    expect(sha256(path.join(adapter.folder, 'adapter_model.safetensors'))).toBe(
      sha256(path.join(TRAINER_OUT, 'adapter_model.safetensors')),
    );
    const state = JSON.parse(fs.readFileSync(path.join(TRAINER_OUT, 'trainer_state.json'), 'utf8'));
    const losses = state.log_history.filter((e: { loss?: number }) => e.loss !== undefined);
    expect(adapter.metrics).toEqual({ finalLoss: losses.at(-1).loss, evalLoss: null, steps: 4 });
    const base = store.model(adapter.baseModelId)!;
    expect(base).toMatchObject({ source: 'hub', location: BASE_REPO, folder: baseFolder });

    const imported = await decode(adapter.folder, expected.lora.greedy_ids.length);
    const { worst } = maxRelativeError(imported.first, Float32Array.from(expected.lora.last_logits));
    expect(worst, "worst relative error against PEFT's logits").toBeLessThan(1e-4);
    expect(imported.ids).toEqual(expected.lora.greedy_ids);
    // The adapter changes the answer: the base alone decodes other ids.
    expect(expected.base.greedy_ids).not.toEqual(expected.lora.greedy_ids);
    const direct = await decode(TRAINER_OUT, 1);
    expect(imported.first).toEqual(direct.first);
  });

  it("imports a prompt-tuning adapter, with PEFT's logits", async () => {
    const { adapter } = await run({ source: PROMPT_TUNING, name: 'soft-prompt' });
    expect(adapter).toMatchObject({
      method: 'prompt-tuning',
      folder: path.join(store.home, 'adapters', 'soft-prompt'),
    });
    const imported = await decode(adapter.folder, expected.prompt_tuning.greedy_ids.length);
    const reference = Float32Array.from(expected.prompt_tuning.last_logits);
    expect(maxRelativeError(imported.first, reference).worst).toBeLessThan(1e-4);
    expect(maxRelativeError(Float32Array.from(expected.base.last_logits), reference).worst).toBeGreaterThan(1e-2);
    expect(imported.ids).toEqual(expected.prompt_tuning.greedy_ids);
  });

  it('takes the newest checkpoint-N of an output folder with no adapter at its top, and a free name', async () => {
    const partial = path.join(work, 'variants', 'trainer-out');
    for (const step of ['checkpoint-2', 'checkpoint-4'])
      fs.cpSync(path.join(TRAINER_OUT, step), path.join(partial, step), { recursive: true });
    // The Trainer's pickles sit beside the adapter: never copied.
    fs.writeFileSync(path.join(partial, 'checkpoint-4', 'optimizer.pt'), 'not read');
    const { adapter, checkpoint } = await run({ source: partial });
    expect(checkpoint).toBe('checkpoint-4');
    expect(adapter.origin).toBe(`${partial}/checkpoint-4`);
    expect(adapter.folder).toBe(path.join(store.home, 'adapters', 'imported-trainer-out-2'));
    expect(adapter.metrics.steps).toBe(4);
    expect(fs.existsSync(path.join(adapter.folder, 'optimizer.pt'))).toBe(false);
    expect(sha256(path.join(adapter.folder, 'adapter_model.safetensors'))).toBe(
      sha256(path.join(partial, 'checkpoint-4', 'adapter_model.safetensors')),
    );
  });
});

describe('peft-studio import --run', () => {
  it("becomes the handed-over run's adapter, with the run's settings in its training.json", async () => {
    const handedOver = finishedRun(baseFolder);
    const { adapter } = await run({ source: TRAINER_OUT, runId: handedOver.id });
    expect(adapter).toMatchObject({ runId: handedOver.id, baseModelId: handedOver.modelId, method: 'lora' });
    expect(store.adaptersOfRun(handedOver.id).map((a) => a.id)).toEqual([adapter.id]);
    // It finished elsewhere: completed here, its log saying where the adapter came from.
    expect(store.run(handedOver.id)!.status).toBe('completed');
    expect(store.log(handedOver.id).at(-1)).toBe(
      `adapter ${adapter.id} trained elsewhere, imported from ${TRAINER_OUT} into ${adapter.folder}`,
    );
    const training = JSON.parse(fs.readFileSync(path.join(adapter.folder, 'training.json'), 'utf8'));
    expect(training.settings.lora).toEqual(handedOver.job.lora);
    expect(training.dataset).toEqual({ name: 'data.jsonl' });
    expect(training.losses).toHaveLength(4);
  });

  it('refuses an adapter of another base, naming both; a queued run; the other method', async () => {
    const other = path.join(work, 'other-model');
    createTinyModel(other, { layers: 2, hidden: 32, heads: 4, kvHeads: 2, intermediate: 64 });
    const elsewhere = finishedRun(other);
    await expect(run({ source: TRAINER_OUT, runId: elsewhere.id })).rejects.toThrow(
      `the adapter's base model is "${BASE_REPO}", but run ${elsewhere.id} was trained on "${other}"`,
    );
    // A base path from the machine it trained on names nothing here: the run's model's shapes decide.
    const remote = variant('remote-base', TRAINER_OUT, (c) => (c.base_model_name_or_path = '/scratch/models/demo'));
    await expect(run({ source: remote, runId: elsewhere.id })).rejects.toThrow(
      `the adapter does not fit run ${elsewhere.id}'s model "${other}" (its base is "/scratch/models/demo")`,
    );
    const onDemo = finishedRun(baseFolder);
    expect((await run({ source: remote, runId: onDemo.id })).adapter.runId).toBe(onDemo.id);

    const queued = store.createRun(onDemo.job, onDemo.modelId, null);
    await expect(run({ source: TRAINER_OUT, runId: queued.id })).rejects.toThrow(`run ${queued.id} is queued here`);
    await expect(run({ source: PROMPT_TUNING, runId: onDemo.id })).rejects.toThrow(
      `a prompt-tuning adapter, but run ${onDemo.id} trained LoRA`,
    );
    await expect(run({ source: TRAINER_OUT, runId: 9999 })).rejects.toThrow('run 9999: no such run');
  });
});

describe('peft-studio import: bad input, one line each, nothing copied', () => {
  const cases: [string, () => string, string | RegExp][] = [
    [
      'an empty folder',
      () => variant('empty', path.join(work, 'nothing')),
      /: not a PEFT adapter folder: no adapter_config\.json \(nor a checkpoint-N folder holding one\)$/,
    ],
    [
      'a config without weights',
      () => {
        const dir = variant('no-weights', TRAINER_OUT);
        fs.rmSync(path.join(dir, 'adapter_model.safetensors'));
        return dir;
      },
      'not a PEFT adapter folder: adapter_config.json but no adapter_model.safetensors',
    ],
    [
      'IA3',
      () => variant('ia3', TRAINER_OUT, (c) => (c.peft_type = 'IA3')),
      'peft_type "IA3" is not supported; the studio loads LORA and PROMPT_TUNING adapters',
    ],
    ['DoRA', () => variant('dora', TRAINER_OUT, (c) => (c.use_dora = true)), 'DoRA (use_dora) is not supported'],
    [
      'an embedding target',
      () => variant('embed', TRAINER_OUT, (c) => (c.target_modules = ['q_proj', 'embed_tokens'])),
      'target_modules: unknown LoRA target "embed_tokens"',
    ],
    [
      'a classifier',
      () => variant('cls', TRAINER_OUT, (c) => (c.task_type = 'SEQ_CLS')),
      'task_type "SEQ_CLS" is not supported',
    ],
    [
      'a base that is not in the cache',
      () => variant('uncached', TRAINER_OUT, (c) => (c.base_model_name_or_path = 'someone/unseen-model')),
      'its base model someone/unseen-model is not in the Hub cache',
    ],
    [
      'a base that is no folder here',
      () => variant('remote', TRAINER_OUT, (c) => (c.base_model_name_or_path = '/scratch/models/demo')),
      'its base model "/scratch/models/demo" is not a model folder on this computer nor a Hub model id',
    ],
    [
      'weights of another shape',
      () => variant('rank', TRAINER_OUT, (c) => (c.r = 8)),
      /has shape \[4,128\], expected \[8,128\]$/,
    ],
    ['no such folder', () => path.join(work, 'missing'), ': no such folder'],
    [
      'a relative name that is no Hub id',
      () => 'some folder',
      'neither an adapter folder (give its full path) nor a Hub repo id',
    ],
  ];
  beforeAll(() => fs.mkdirSync(path.join(work, 'nothing'), { recursive: true }));

  it.each(cases)('%s', async (_, source, message) => {
    const before = fs.existsSync(path.join(store.home, 'adapters'))
      ? folderFiles(path.join(store.home, 'adapters'))
      : [];
    const count = store.adapters().length;
    const error = await run({ source: source() }).then(
      () => null,
      (err: Error) => err,
    );
    expect(error?.name).toBe('UserError');
    expect(error!.message).not.toContain('\n');
    if (typeof message === 'string') expect(error!.message).toContain(message);
    else expect(error!.message).toMatch(message);
    expect(store.adapters()).toHaveLength(count);
    const after = fs.existsSync(path.join(store.home, 'adapters'))
      ? folderFiles(path.join(store.home, 'adapters'))
      : [];
    expect(after).toEqual(before);
  });

  it('refuses a name that is not a plain folder name, and one taken', async () => {
    await expect(run({ source: TRAINER_OUT, name: '../escape' })).rejects.toThrow(
      'adapter name "../escape": use letters, digits, - _ and .',
    );
    await expect(run({ source: TRAINER_OUT, name: 'soft-prompt' })).rejects.toThrow(
      'exists already; choose another name for the adapter',
    );
  });
});

describe('peft-studio import from the Hub', () => {
  it('downloads the adapter files of a repo into the cache and imports them', async () => {
    const { adapter } = await run({ source: 'someone/tiny-lora' });
    const commit = server.repo('model', 'someone/tiny-lora').refs.get('main');
    expect(adapter.origin).toBe(`hub:someone/tiny-lora@${commit}`);
    expect(adapter.folder).toBe(path.join(store.home, 'adapters', 'imported-someone-tiny-lora'));
    expect(folderFiles(adapter.folder)).toEqual(['adapter_config.json', 'adapter_model.safetensors', MANIFEST_FILE]);
    // The README was not fetched: only the adapter's own files.
    expect(server.requests.some((r) => r.path.includes('tiny-lora/resolve') && r.path.endsWith('README.md'))).toBe(
      false,
    );
    expect((await decode(adapter.folder, 2)).ids).toEqual(expected.lora.greedy_ids.slice(0, 2));
  });

  it("says a repo is missing, is no adapter, or the Hub unreachable, in the Hub's words", async () => {
    await expect(run({ source: 'someone/nothing' })).rejects.toThrow(
      'look up adapter someone/nothing: not authorized (401): someone/nothing is private or does not exist',
    );
    await expect(run({ source: 'someone/not-an-adapter' })).rejects.toThrow(
      'someone/not-an-adapter: not a PEFT adapter repo: no adapter_config.json at its top (revision main)',
    );
    await expect(run({ source: 'someone/tiny-lora@v9' })).rejects.toThrow('revision not found (404)');
    const closed = await startHubServer();
    await closed.close();
    await expect(run({ source: 'someone/other-lora' }, hubFor(closed, hub.cacheDir))).rejects.toThrow(
      /look up adapter someone\/other-lora: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\); check the network connection/,
    );
    // What the cache holds still imports when the Hub cannot be reached.
    const again = await run({ source: 'someone/tiny-lora' }, hubFor(closed, hub.cacheDir));
    expect(again.adapter.folder).toBe(path.join(store.home, 'adapters', 'imported-someone-tiny-lora-2'));
  });
});

describe('deleting an imported adapter', () => {
  it('removes only its copy: the source and a file added since stay', async () => {
    const source = variant('to-delete', TRAINER_OUT);
    const before = treeHashes(source);
    const { adapter } = await run({ source, name: 'deleted-later' });
    fs.writeFileSync(path.join(adapter.folder, 'notes.txt'), 'mine');
    const kept = deleteAdapterFiles(adapter.folder, store.adapterManifest(adapter.id), studioPlaces(store));
    store.deleteAdapter(adapter.id);
    expect(kept).toEqual([]);
    expect(folderFiles(adapter.folder)).toEqual(['notes.txt']);
    expect(treeHashes(source)).toEqual(before);
    expect(store.adapter(adapter.id)).toBeNull();
  });
});
