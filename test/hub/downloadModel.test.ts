// The studio's model downloads (main/hub/modelDownload.ts) against the loopback Hub, as the GUI meets them: the
// catalogue's sizes, licenses and cache state; progress; a download cut off midway that continues with a Range request
// after a retry or a restart and ends with the right sha256; a stalled connection that times out; and failures that
// say which they are (network, token, not found) in the GUI's words, while the CLI keeps its own.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../shared/errors.js';
import type { HubAccess } from '../../main/hub/access.js';
import type { DownloadProgress } from '../../main/hub/download.js';
import { catalogueEntries, downloadModel } from '../../main/hub/modelDownload.js';
import { MODEL_CATALOGUE } from '../../main/model/catalogue.js';
import { runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { sha256, startHubServer, type HubServer } from '../support/hubServer.js';
import { byteRequests, cleanEnv, hubFor, tinyModelFiles } from './helpers.js';

// A catalogue name served with a tiny model's files: the picker's first row, small enough for a test.
const ID = 'HuggingFaceTB/SmolLM2-135M-Instruct';
const TOKEN = 'hf_alice_read_token_download';

let server: HubServer;
let model: Record<string, Buffer>;

beforeAll(async () => {
  server = await startHubServer();
  server.addToken(TOKEN, { user: 'alice', role: 'read' });
  model = tinyModelFiles();
  server.addRepo('model', ID, model);
  server.addRepo('model', 'TestOrg/private-model', model, { private: true });
});

afterAll(() => server.close());

/** Access to the loopback Hub for the GUI (its words) with a fresh cache, unless one is given. */
function guiHub(options: { cache?: string; token?: string; stallTimeoutMs?: number } = {}): HubAccess {
  const hub = hubFor(server, options.cache ?? tempDir('hub-cache'), options.token);
  return { ...hub, audience: 'gui', stallTimeoutMs: options.stallTimeoutMs };
}

/** The one-line UserError a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<UserError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).not.toContain('\n');
  return err as UserError;
}

const fileSha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** A Hub that is not there: a port nothing listens on. */
async function unreachableUrl(): Promise<string> {
  const closed = await startHubServer();
  await closed.close();
  return closed.url;
}

describe('the catalogue as the model picker shows it', () => {
  it('gives every model its parameters, download size and license, and what the cache holds of it', async () => {
    const hub = guiHub();
    const entries = catalogueEntries(hub);
    expect(entries.map((e) => e.repoId)).toEqual(MODEL_CATALOGUE.map((m) => m.repoId));
    const byId = new Map(entries.map((e) => [e.repoId, e]));
    // SmolLM2 135M: 134,515,008 weights (tied embeddings), bf16 on the Hub: its model.safetensors is 269 MB.
    expect(byId.get(ID)).toMatchObject({
      name: 'SmolLM2 135M',
      license: 'apache-2.0',
      gated: false,
      parameters: 134_515_008,
      downloadBytes: 2 * 134_515_008,
      downloadedFolder: null,
      partialBytes: 0,
    });
    expect(byId.get('Qwen/Qwen2.5-3B-Instruct')?.license).toBe('qwen-research');
    expect(byId.get('Qwen/Qwen2.5-7B-Instruct')?.license).toBe('apache-2.0');
    expect(byId.get('Qwen/Qwen3-8B')?.license).toBe('apache-2.0');
    expect(byId.get('meta-llama/Llama-3.2-1B-Instruct')).toMatchObject({ license: 'llama3.2', gated: true });
    expect(byId.get('meta-llama/Llama-3.1-8B-Instruct')).toMatchObject({ license: 'llama3.1', gated: true });
    expect(byId.get('mistralai/Mistral-7B-Instruct-v0.3')?.license).toBe('apache-2.0');
    // Llama 3.1 8B: 8.03 B weights.
    expect(byId.get('meta-llama/Llama-3.1-8B-Instruct')!.parameters).toBe(8_030_261_248);

    const folder = await downloadModel(hub, ID);
    expect(catalogueEntries(hub).find((e) => e.repoId === ID)).toMatchObject({
      downloadedFolder: folder,
      partialBytes: 0,
    });
  });
});

describe('a download from the studio', () => {
  it('reports progress by bytes, in order, up to the whole, and the files match the Hub', async () => {
    const progress: DownloadProgress[] = [];
    const folder = await downloadModel(guiHub(), ID, 'main', (p) => progress.push(p));
    expect(progress.length).toBeGreaterThanOrEqual(5); // at least each file's end
    expect(progress.map((p) => p.doneBytes)).toEqual([...progress.map((p) => p.doneBytes)].sort((a, b) => a - b));
    const total = Object.entries(model).reduce((sum, [, bytes]) => sum + bytes.length, 0);
    expect(progress.at(-1)).toMatchObject({ doneBytes: total, totalBytes: total, index: 5, count: 5 });
    expect(fileSha256(path.join(folder, 'model.safetensors'))).toBe(sha256(model['model.safetensors']));
  });

  it('continues a download cut off midway with a Range request, after a retry or a restart, to the right sha256', async () => {
    const cache = tempDir('hub-cache');
    const weights = model['model.safetensors'];
    server.fault({ path: /^\/cdn\//, dropAfter: 200_000 });
    const untilCut: DownloadProgress[] = [];
    const cut = await failure(downloadModel(guiHub({ cache }), ID, 'main', (p) => untilCut.push(p)));
    // The last progress says where it stopped, though it came within the throttle's interval.
    expect(untilCut.at(-1)).toMatchObject({ file: 'model.safetensors', fileBytes: 200_000 });
    expect(cut.message).toMatch(
      /^download HuggingFaceTB\/SmolLM2-135M-Instruct model\.safetensors: connection (reset|closed by the server) after 200 kB of 560 kB; press Retry to resume$/,
    );
    // A restart: a new access, nothing kept in memory; the partial file in the cache is what the picker sees.
    const restarted = guiHub({ cache });
    expect(catalogueEntries(restarted).find((e) => e.repoId === ID)).toMatchObject({
      downloadedFolder: null,
      partialBytes: 200_000,
    });

    const before = server.requests.length;
    const progress: DownloadProgress[] = [];
    const folder = await downloadModel(restarted, ID, 'main', (p) => progress.push(p));
    const cdn = byteRequests(server)
      .filter((r) => server.requests.indexOf(r) >= before)
      .filter((r) => r.path.startsWith('/cdn/'));
    expect(cdn.map((r) => r.headers.range)).toEqual(['bytes=200000-']);
    // The weights' progress picks up where the cut left off.
    const weightsProgress = progress.filter((p) => p.file === 'model.safetensors');
    expect(weightsProgress[0].fileBytes).toBeGreaterThan(200_000);
    expect(weightsProgress.at(-1)!.fileBytes).toBe(weights.length);
    expect(fileSha256(path.join(folder, 'model.safetensors'))).toBe(sha256(weights));
    expect(catalogueEntries(restarted).find((e) => e.repoId === ID)?.partialBytes).toBe(0);
  });

  it('gives up on a connection that stops sending, keeps what came, and resumes from there', async () => {
    const cache = tempDir('hub-cache');
    server.fault({ path: /^\/cdn\//, stallAfter: 150_000 });
    const started = Date.now();
    const stalled = await failure(downloadModel(guiHub({ cache, stallTimeoutMs: 400 }), ID));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(stalled.message).toBe(
      'download HuggingFaceTB/SmolLM2-135M-Instruct model.safetensors: connection timed out (nothing received for 0.4 s) after 150 kB of 560 kB; press Retry to resume',
    );
    const before = server.requests.length;
    const folder = await downloadModel(guiHub({ cache }), ID);
    expect(server.requests.slice(before).find((r) => r.path.startsWith('/cdn/'))?.headers.range).toBe('bytes=150000-');
    expect(fileSha256(path.join(folder, 'model.safetensors'))).toBe(sha256(model['model.safetensors']));
  });
});

describe('failures say which they are: network, token or not found', () => {
  it('a network failure, a refused token and a missing repo give three different lines, each saying what to do', async () => {
    const unreachable = { ...guiHub(), hubUrl: await unreachableUrl() };
    const network = await failure(downloadModel(unreachable, ID));
    expect(network.message).toBe(
      `look up model ${ID}: cannot reach ${new URL(unreachable.hubUrl).host} (ECONNREFUSED); check the network connection, then press Retry to resume`,
    );

    const token = await failure(downloadModel(guiHub({ token: 'hf_not_a_token' }), ID));
    expect(token.message).toBe(
      `look up model ${ID}: not authorized (401): ${ID} is private or does not exist, or the Hub token is missing, expired or invalid; enter a token from ${server.url}/settings/tokens in Settings, then press Retry to resume`,
    );
    // No token, a private repo: the Hub answers 401 as for a wrong token.
    expect((await failure(downloadModel(guiHub(), 'TestOrg/private-model'))).message).toMatch(/not authorized \(401\)/);

    const missing = await failure(downloadModel(guiHub({ token: TOKEN }), 'TestOrg/no-such-model'));
    expect(missing.message).toBe(
      `look up model TestOrg/no-such-model: not found (404): no repo TestOrg/no-such-model on ${new URL(server.url).host}; check the id (organisation/name)`,
    );
    // No flag or environment variable in the GUI's words.
    for (const message of [network.message, token.message, missing.message]) {
      expect(message).not.toMatch(/HF_TOKEN|HF_ENDPOINT|--\w|run the same command/);
    }
  });

  it('peft-studio hub download says the same causes in one line each, with its own way to act', async () => {
    const home = tempDir('hub-cli-home');
    const download = (env: Record<string, string>, id = ID) =>
      runCliAsync(['hub', 'download', id], { env: cleanEnv({ HF_ENDPOINT: server.url, HF_HOME: home, ...env }) });
    const url = await unreachableUrl();
    const answers = {
      network: await download({ HF_ENDPOINT: url }),
      token: await download({ HF_TOKEN: 'hf_not_a_token' }),
      missing: await download({ HF_TOKEN: TOKEN }, 'TestOrg/no-such-model'),
    };
    for (const answer of Object.values(answers)) expect(answer.code).toBe(1);
    expect(answers.network.stderr).toBe(
      `peft-studio hub: error: look up model ${ID}: cannot reach ${new URL(url).host} (ECONNREFUSED); check the network connection (and HF_ENDPOINT if set), then run the same command again to resume\n`,
    );
    expect(answers.token.stderr).toBe(
      `peft-studio hub: error: look up model ${ID}: not authorized (401): ${ID} is private or does not exist, or HF_TOKEN is missing, expired or invalid; set HF_TOKEN to a token from ${server.url}/settings/tokens\n`,
    );
    expect(answers.missing.stderr).toBe(
      `peft-studio hub: error: look up model TestOrg/no-such-model: not found (404): no repo TestOrg/no-such-model on ${new URL(server.url).host}; check the id (organisation/name) and, for a dataset, pass --dataset\n`,
    );
  });

  it('with the Hub unreachable, a model already in the cache is used as it is', async () => {
    const cache = tempDir('hub-cache');
    const folder = await downloadModel(guiHub({ cache }), ID);
    const before = server.requests.length;
    expect(await downloadModel({ ...guiHub({ cache }), hubUrl: await unreachableUrl() }, ID)).toBe(folder);
    expect(await downloadModel({ ...guiHub({ cache }), offline: true }, ID)).toBe(folder);
    expect(server.requests.length).toBe(before);
    expect((await failure(downloadModel({ ...guiHub(), offline: true }, ID))).message).toMatch(
      /^HuggingFaceTB\/SmolLM2-135M-Instruct is not in the Hub cache .*, and HF_HUB_OFFLINE is set: the Hub is not asked$/,
    );
  });
});
