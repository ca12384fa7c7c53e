// Pushing adapters to a loopback Hub through the library's real upload path: whoAmI first, repo creation (private by
// default), LFS uploads (basic and multipart), the commit, and what ends up in the repo.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { savePromptTuningAdapter } from '../../main/adapter/promptTuningAdapter.js';
import { downloadSnapshot } from '../../main/hub/download.js';
import type { TrainingFacts } from '../../main/hub/modelCard.js';
import { preflightModel } from '../../main/hub/preflight.js';
import { pushAdapter, type PushProgress } from '../../main/hub/push.js';
import { openModelFolder, type ModelFolder } from '../../main/model/modelFolder.js';
import { randomLora, tempDir } from '../support/engine.js';
import { sha256, startHubServer, type HubServer } from '../support/hubServer.js';
import { hubFor, tinyModelFiles } from './helpers.js';

const WRITE = 'hf_alice_write_token_0123456789';
const READ = 'hf_alice_read_token_0123456789';
const BASE = 'TestOrg/tiny-llama';
const TRAINING: TrainingFacts = {
  settings: { lora: { rank: 4, alpha: 8 }, steps: 3, learningRate: 0.0002 },
  dataset: { name: 'support.jsonl', sha256: 'ab'.repeat(32) },
  finalLoss: 2.1,
  evalLoss: 2.3,
  losses: [
    { step: 1, loss: 2.9 },
    { step: 2, loss: 2.5 },
    { step: 3, loss: 2.1 },
  ],
};

let server: HubServer;
let work: string;
let base: ModelFolder;
let adapterDir: string;

beforeAll(async () => {
  // Files above 200 kB take the multipart protocol, in parts of 100 kB.
  server = await startHubServer({ multipartThreshold: 200_000, partSize: 100_000 });
  server.addToken(WRITE, { user: 'alice', role: 'write' });
  server.addToken(READ, { user: 'alice', role: 'read' });
  server.addRepo('model', BASE, tinyModelFiles(), { cardData: { license: 'apache-2.0' } });
  work = tempDir('hub-push');

  // As a user would: download the base, train (here: random LoRA weights) with it, and push.
  const hub = hubFor(server, path.join(work, 'cache'));
  const { snapshotDir } = await downloadSnapshot(hub, await preflightModel(hub, BASE));
  base = openModelFolder(snapshotDir);
  adapterDir = path.join(work, 'adapter');
  saveLoraAdapter(
    adapterDir,
    randomLora(base, { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 1),
    base.dir,
  );
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(base.dir, f), path.join(adapterDir, f));
  fs.writeFileSync(path.join(adapterDir, 'training.json'), JSON.stringify(TRAINING));
});

afterAll(() => server.close());

const pushHub = (token?: string) => hubFor(server, path.join(work, 'cache'), token);
const text = (repo: string, file: string) => server.file('model', repo, file)?.toString('utf8');

async function refusal(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  expect(message).not.toContain(WRITE);
  expect(message).not.toContain(READ);
  return message;
}

describe('push an adapter', () => {
  it('checks the token, creates a private repo and commits adapter, tokenizer, card and chart', async () => {
    const before = server.requests.length;
    const progress: PushProgress[] = [];
    const result = await pushAdapter(pushHub(WRITE), { adapterDir, repoId: 'alice/tiny-lora' }, (p) =>
      progress.push(p),
    );
    const requests = server.requests.slice(before);

    expect(result).toMatchObject({
      repoId: 'alice/tiny-lora',
      repoUrl: `${server.url}/alice/tiny-lora`,
      created: true,
      private: true,
      baseModel: BASE,
    });
    expect(result.files).toEqual([
      'README.md',
      'adapter_config.json',
      'adapter_model.safetensors',
      'loss.png',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const repo = server.repo('model', 'alice/tiny-lora');
    expect(repo.private).toBe(true);
    expect(result.commit).toBe(repo.refs.get('main'));
    expect(requests[0].path).toBe('/api/whoami-v2');
    expect(requests.findIndex((r) => r.path === '/api/repos/create')).toBeGreaterThan(0);
    for (const r of requests.filter((r) => r.path.startsWith('/api/')))
      expect(r.headers.authorization).toBe(`Bearer ${WRITE}`);

    // The weights went through the LFS batch API and a PUT to storage, and arrived intact.
    const weights = fs.readFileSync(path.join(adapterDir, 'adapter_model.safetensors'));
    expect(requests.some((r) => r.method === 'POST' && r.path === '/alice/tiny-lora.git/info/lfs/objects/batch')).toBe(
      true,
    );
    expect(requests.some((r) => r.method === 'PUT' && r.path === `/lfs-storage/${sha256(weights)}`)).toBe(true);
    expect(server.file('model', 'alice/tiny-lora', 'adapter_model.safetensors')!.equals(weights)).toBe(true);
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      expect(server.file('model', 'alice/tiny-lora', f)!.equals(fs.readFileSync(path.join(adapterDir, f)))).toBe(true);

    // The uploaded config names the Hub base model, not the local cache folder.
    const local = JSON.parse(fs.readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8'));
    expect(local.base_model_name_or_path).toBe(base.dir);
    expect(JSON.parse(text('alice/tiny-lora', 'adapter_config.json')!)).toEqual({
      ...local,
      base_model_name_or_path: BASE,
    });

    const card = text('alice/tiny-lora', 'README.md')!;
    expect(card).toMatch(
      /^---\nlibrary_name: peft\nbase_model: TestOrg\/tiny-llama\nbase_model_relation: adapter\nlicense: apache-2.0\npipeline_tag: text-generation\ntags:\n- peft\n- lora\n- base_model:adapter:TestOrg\/tiny-llama\n/,
    );
    expect(card).toContain('Final training loss: 2.1000. Validation loss: 2.3000.');
    expect(card).toContain(`sha256 \`${'ab'.repeat(32)}\``);
    expect(card).toContain('![Training loss by step](loss.png)');
    expect(card).toContain('PeftModel.from_pretrained(base, "alice/tiny-lora")');
    expect(server.file('model', 'alice/tiny-lora', 'loss.png')!.subarray(1, 4).toString()).toBe('PNG');
    expect(card).not.toContain(work); // no local path is published

    expect(progress.map((p) => p.phase)).toEqual(
      expect.arrayContaining(['checking', 'creating', 'preuploading', 'uploadingLargeFiles', 'committing']),
    );
    expect(
      progress.some(
        (p) =>
          p.phase === 'file' && p.file === 'adapter_model.safetensors' && p.state === 'uploading' && p.progress === 1,
      ),
    ).toBe(true);
  });

  it("puts a bare name in the token owner's namespace, and a second push adds a commit to the existing repo", async () => {
    const commitsBefore = server.repo('model', 'alice/tiny-lora').commitLog.length;
    const result = await pushAdapter(pushHub(WRITE), { adapterDir, repoId: 'tiny-lora' });
    expect(result).toMatchObject({ repoId: 'alice/tiny-lora', created: false, private: null });
    expect(server.repo('model', 'alice/tiny-lora').commitLog.length).toBe(commitsBefore + 1);
  });

  it('--public creates a public repo', async () => {
    await pushAdapter(pushHub(WRITE), { adapterDir, repoId: 'alice/public-lora', private: false });
    expect(server.repo('model', 'alice/public-lora').private).toBe(false);
  });

  it('pushes the merged model folder (multipart upload) and a GGUF file with the adapter', async () => {
    const gguf = path.join(work, 'adapter.gguf');
    fs.writeFileSync(gguf, Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(5000, 5)]));
    const before = server.requests.length;
    const result = await pushAdapter(pushHub(WRITE), {
      adapterDir,
      repoId: 'alice/with-extras',
      mergedDir: base.dir,
      ggufFile: gguf,
    });
    const requests = server.requests.slice(before);
    const mergedWeights = fs.readFileSync(path.join(base.dir, 'model.safetensors'));
    expect(
      requests.filter((r) => r.method === 'PUT' && r.path.startsWith(`/lfs-storage/${sha256(mergedWeights)}/part/`))
        .length,
    ).toBe(Math.ceil(mergedWeights.length / 100_000));
    expect(
      requests.some((r) => r.method === 'POST' && r.path === `/lfs-storage/${sha256(mergedWeights)}/complete`),
    ).toBe(true);
    expect(server.file('model', 'alice/with-extras', 'merged/model.safetensors')!.equals(mergedWeights)).toBe(true);
    expect(
      server
        .file('model', 'alice/with-extras', 'merged/config.json')!
        .equals(fs.readFileSync(path.join(base.dir, 'config.json'))),
    ).toBe(true);
    expect(server.file('model', 'alice/with-extras', 'adapter.gguf')!.equals(fs.readFileSync(gguf))).toBe(true);
    expect(result.files).toContain('merged/model.safetensors');
    const card = text('alice/with-extras', 'README.md')!;
    expect(card).toContain('subfolder="merged"');
    expect(card).toContain('`adapter.gguf` is the GGUF export');
  });

  it('pushes a prompt-tuning adapter with its own tags', async () => {
    const dir = path.join(work, 'prompt');
    savePromptTuningAdapter(
      dir,
      { numVirtualTokens: 8, embeddings: new Float32Array(8 * base.spec.hiddenSize).fill(0.01) },
      base.spec,
      BASE,
    );
    const result = await pushAdapter(pushHub(WRITE), { adapterDir: dir, repoId: 'alice/tiny-prompt' });
    expect(result.files).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const card = text('alice/tiny-prompt', 'README.md')!;
    expect(card).toContain('\n- prompt-tuning\n- base_model:adapter:TestOrg/tiny-llama\n');
    expect(card).toContain('prompt tuning, 8 virtual tokens');
  });
});

describe('push refusals, each one line and without the token', () => {
  it('no token: refused before any request', async () => {
    const before = server.requests.length;
    expect(await refusal(pushAdapter(pushHub(), { adapterDir, repoId: 'alice/x' }))).toBe(
      `push alice/x: no token; set HF_TOKEN to a write token from ${server.url}/settings/tokens`,
    );
    expect(server.requests.length).toBe(before);
  });

  it('an invalid token and a read-only one are refused at the whoAmI check, before the repo is created', async () => {
    const before = server.requests.length;
    expect(await refusal(pushAdapter(pushHub('hf_not_a_real_token'), { adapterDir, repoId: 'alice/x' }))).toMatch(
      /^push alice\/x: the Hub refused the token in HF_TOKEN \(401: invalid or expired\); create a write token at /,
    );
    expect(await refusal(pushAdapter(pushHub(READ), { adapterDir, repoId: 'alice/x' }))).toMatch(
      /^push alice\/x: the token in HF_TOKEN is read-only; create a write token at /,
    );
    expect(server.requests.slice(before).map((r) => r.path)).toEqual(['/api/whoami-v2', '/api/whoami-v2']);
  });

  it('a server that echoes the token in an error does not get it into the message', async () => {
    server.fault({ path: /^\/api\/whoami-v2$/, status: 500, json: { error: `token ${WRITE} is broken` } });
    expect(await refusal(pushAdapter(pushHub(WRITE), { adapterDir, repoId: 'alice/q' }))).toBe(
      'push alice/q: check the token: the Hub failed with 500 (the Hub says: token hf_*** is broken); this is on the server side: run the same command again later',
    );
  });

  it("a namespace the token may not write to: the Hub's 403 is explained", async () => {
    expect(await refusal(pushAdapter(pushHub(WRITE), { adapterDir, repoId: 'SomeoneElse/x' }))).toMatch(
      /^push SomeoneElse\/x: create the repo: forbidden \(403\) .*lacks permission for SomeoneElse\/x \(uploads need a write token/,
    );
  });

  it('a base model recorded as a local folder outside the cache needs --base-model', async () => {
    const dir = path.join(work, 'local-base');
    saveLoraAdapter(
      dir,
      randomLora(base, { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'], useRslora: false }, 2),
      path.join(work, 'my-own-model'),
    );
    fs.mkdirSync(path.join(work, 'my-own-model'), { recursive: true });
    const before = server.requests.length;
    expect(await refusal(pushAdapter(pushHub(WRITE), { adapterDir: dir, repoId: 'alice/y' }))).toMatch(
      /adapter_config\.json: base_model_name_or_path ".*my-own-model" is not a Hub repo id; pass --base-model ORGANISATION\/NAME/,
    );
    expect(server.requests.length).toBe(before);
    const result = await pushAdapter(pushHub(WRITE), { adapterDir: dir, repoId: 'alice/y', baseModel: BASE });
    expect(JSON.parse(text('alice/y', 'adapter_config.json')!).base_model_name_or_path).toBe(BASE);
    expect(result.files).not.toContain('loss.png'); // no training.json, no chart
  });

  it('a base model the Hub does not know is refused before creating the repo', async () => {
    const message = await refusal(
      pushAdapter(pushHub(WRITE), { adapterDir, repoId: 'alice/z', baseModel: 'TestOrg/not-there' }),
    );
    expect(message).toMatch(/^push alice\/z: look up base model TestOrg\/not-there: not found \(404\)/);
    expect(server.repos.has('model:alice/z')).toBe(false);
  });

  it('a folder that is not an adapter is refused before any request', async () => {
    const before = server.requests.length;
    expect(await refusal(pushAdapter(pushHub(WRITE), { adapterDir: work, repoId: 'alice/w' }))).toMatch(
      /adapter_config\.json: not found \(not a PEFT adapter folder\)/,
    );
    expect(server.requests.length).toBe(before);
  });
});
