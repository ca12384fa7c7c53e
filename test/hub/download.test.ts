// Downloads from a loopback Hub into the Hugging Face cache layout: the files chosen, the layout Python shares,
// reuse without requests, resume after a dropped connection, checksum refusal, and one-line errors for each failure.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { cachedSnapshot, snapshotDir } from '../../main/hub/cache.js';
import { downloadSnapshot, type DownloadProgress } from '../../main/hub/download.js';
import { HubUnreachableError } from '../../main/hub/errors.js';
import { preflightDataset, preflightModel } from '../../main/hub/preflight.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { tempDir } from '../support/engine.js';
import { gitSha1, sha256, startHubServer, type HubServer } from '../support/hubServer.js';
import { byteRequests, hubFor, tinyModelFiles, UNNEEDED_MODEL_FILES } from './helpers.js';

const ID = 'TestOrg/tiny-llama';
const NEEDED = [
  'config.json',
  'generation_config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
];
const TOKEN = 'hf_alice_download_token';

let server: HubServer;
let model: Record<string, Buffer>;
let commit: string;

beforeAll(async () => {
  server = await startHubServer();
  server.addToken(TOKEN, { user: 'alice', role: 'read' });
  model = tinyModelFiles();
  commit = server.addRepo('model', ID, { ...model, ...UNNEEDED_MODEL_FILES });
});

afterAll(() => server.close());

const freshCache = () => tempDir('hub-cache');

async function download(cacheDir: string, options: { revision?: string; token?: string; id?: string } = {}) {
  const hub = hubFor(server, cacheDir, options.token);
  const progress: DownloadProgress[] = [];
  const report = await preflightModel(hub, options.id ?? ID, { revision: options.revision });
  const result = await downloadSnapshot(hub, report, (p) => progress.push(p));
  return { report, result, progress };
}

/** The error a promise rejects with, checked to be one line. */
async function failure(promise: Promise<unknown>): Promise<UserError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).not.toContain('\n');
  return err as UserError;
}

function filesUnder(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]) : [];
}

describe('model download', () => {
  it('fetches only what the studio needs into the Python cache layout, LFS files through the CDN redirect', async () => {
    const cache = freshCache();
    const { result, progress } = await download(cache);
    const repoDir = path.join(cache, 'models--TestOrg--tiny-llama');
    expect(result.snapshotDir).toBe(path.join(repoDir, 'snapshots', commit));
    expect(result.files).toEqual(NEEDED);
    expect(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(commit);
    expect(fs.readdirSync(result.snapshotDir).sort()).toEqual(NEEDED);
    for (const file of NEEDED) {
      const pointer = path.join(result.snapshotDir, file);
      // Blobs are named as Python names them: sha256 for LFS files, git blob sha1 for the others.
      const etag = file.endsWith('.safetensors') ? sha256(model[file]) : gitSha1(model[file]);
      expect(fs.lstatSync(pointer).isSymbolicLink()).toBe(true);
      expect(fs.readlinkSync(pointer)).toBe(path.join('..', '..', 'blobs', etag));
      expect(fs.readFileSync(pointer).equals(model[file])).toBe(true);
    }
    expect(filesUnder(path.join(repoDir, 'blobs')).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
    expect(openModelFolder(result.snapshotDir).spec.modelType).toBe('llama');

    const asked = byteRequests(server).map((r) => r.path);
    expect(asked).toContain(`/cdn/${sha256(model['model.safetensors'])}?filename=model.safetensors`);
    for (const unneeded of Object.keys(UNNEEDED_MODEL_FILES))
      expect(asked.some((p) => p.endsWith(unneeded))).toBe(false);

    const total = NEEDED.reduce((sum, f) => sum + model[f].length, 0);
    expect(progress.at(-1)).toMatchObject({
      doneBytes: total,
      totalBytes: total,
      index: NEEDED.length,
      count: NEEDED.length,
    });
    for (let i = 1; i < progress.length; i++)
      expect(progress[i].doneBytes).toBeGreaterThanOrEqual(progress[i - 1].doneBytes);
    for (const file of NEEDED)
      expect(progress.some((p) => p.file === file && p.fileBytes === model[file].length)).toBe(true);
    expect(result.fetchedBytes).toBe(total - model['config.json'].length); // config.json came with the preflight
  });

  it('makes no file request for what the cache already holds', async () => {
    const cache = freshCache();
    await download(cache);
    const before = byteRequests(server).length;
    const { result } = await download(cache);
    expect(byteRequests(server).length).toBe(before);
    expect(result).toMatchObject({ fetchedBytes: 0, cachedFiles: NEEDED.length });
  });

  it("reuses files Python's huggingface_hub placed (blobs, snapshot symlinks, refs) without a request", async () => {
    const cache = freshCache();
    const repoDir = path.join(cache, 'models--TestOrg--tiny-llama');
    for (const file of NEEDED) {
      const etag = file.endsWith('.safetensors') ? sha256(model[file]) : gitSha1(model[file]);
      fs.mkdirSync(path.join(repoDir, 'blobs'), { recursive: true });
      fs.writeFileSync(path.join(repoDir, 'blobs', etag), model[file]);
      fs.mkdirSync(path.join(repoDir, 'snapshots', commit), { recursive: true });
      fs.symlinkSync(path.join('..', '..', 'blobs', etag), path.join(repoDir, 'snapshots', commit, file));
    }
    fs.mkdirSync(path.join(repoDir, 'refs'));
    fs.writeFileSync(path.join(repoDir, 'refs', 'main'), commit);
    const before = byteRequests(server).length;
    const { result } = await download(cache);
    expect(byteRequests(server).length).toBe(before);
    expect(result.cachedFiles).toBe(NEEDED.length);
    expect(result.snapshotDir).toBe(path.join(repoDir, 'snapshots', commit));
  });

  it('links a blob already in the cache into a new snapshot without fetching it again', async () => {
    const cache = freshCache();
    const weights = model['model.safetensors'];
    const blobs = path.join(cache, 'models--TestOrg--tiny-llama', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, sha256(weights)), weights);
    const before = server.requests.length;
    const { result } = await download(cache);
    const asked = server.requests.slice(before).map((r) => r.path);
    expect(asked.some((p) => p.includes('model.safetensors'))).toBe(false);
    expect(fs.readFileSync(path.join(result.snapshotDir, 'model.safetensors')).equals(weights)).toBe(true);
  });

  it('resumes a dropped download with a Range request and ends byte-identical', async () => {
    const cache = freshCache();
    const weights = model['model.safetensors'];
    const blob = path.join(cache, 'models--TestOrg--tiny-llama', 'blobs', sha256(weights));
    server.fault({ path: /^\/cdn\//, dropAfter: 100_000 });
    const err = await failure(download(cache));
    expect(err.message).toMatch(
      /^download TestOrg\/tiny-llama model\.safetensors: connection (reset|closed by the server) after 100 kB of 560 kB; run the same command again to resume$/,
    );
    expect(fs.statSync(`${blob}.incomplete`).size).toBe(100_000);
    expect(fs.existsSync(blob)).toBe(false);
    expect(fs.existsSync(path.join(snapshotDir(cache, { type: 'model', name: ID }, commit), 'model.safetensors'))).toBe(
      false,
    );

    const before = server.requests.length;
    const { result } = await download(cache);
    const cdn = server.requests.slice(before).filter((r) => r.path.startsWith('/cdn/'));
    expect(cdn.map((r) => r.headers.range)).toEqual(['bytes=100000-']);
    // Only the rest of the weights came over the network (then the two tokenizer files, which follow it).
    expect(result.fetchedBytes).toBe(
      weights.length - 100_000 + model['tokenizer.json'].length + model['tokenizer_config.json'].length,
    );
    expect(fs.readFileSync(path.join(result.snapshotDir, 'model.safetensors')).equals(weights)).toBe(true);
    expect(fs.existsSync(`${blob}.incomplete`)).toBe(false);
  });

  it('starts over when the server answers a ranged request with the whole file', async () => {
    const cache = freshCache();
    const weights = model['model.safetensors'];
    const blob = path.join(cache, 'models--TestOrg--tiny-llama', 'blobs', sha256(weights));
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    fs.writeFileSync(`${blob}.incomplete`, Buffer.alloc(50_000, 0xee)); // a stale partial that must not survive
    server.fault({ path: /^\/cdn\//, ignoreRange: true });
    const before = server.requests.length;
    const { result } = await download(cache);
    expect(server.requests.slice(before).find((r) => r.path.startsWith('/cdn/'))?.headers.range).toBe('bytes=50000-');
    expect(fs.readFileSync(path.join(result.snapshotDir, 'model.safetensors')).equals(weights)).toBe(true);
    // all but config.json
    expect(result.fetchedBytes).toBe(result.files.slice(1).reduce((sum, f) => sum + model[f].length, 0));
  });

  it('checks and keeps a partial download that is already whole, without fetching it', async () => {
    const cache = freshCache();
    const weights = model['model.safetensors'];
    const blob = path.join(cache, 'models--TestOrg--tiny-llama', 'blobs', sha256(weights));
    fs.mkdirSync(path.dirname(blob), { recursive: true });
    fs.writeFileSync(`${blob}.incomplete`, weights);
    const before = server.requests.length;
    const { result } = await download(cache);
    expect(
      server.requests.slice(before).some((r) => r.path.includes('model.safetensors') || r.path.startsWith('/cdn/')),
    ).toBe(false);
    expect(fs.readFileSync(path.join(result.snapshotDir, 'model.safetensors')).equals(weights)).toBe(true);
  });

  it('refuses bytes that differ from the sha256 the Hub advertises, leaving nothing in the cache', async () => {
    const cache = freshCache();
    const weights = model['model.safetensors'];
    const corrupt = Buffer.from(weights);
    corrupt[4321] ^= 0xff;
    server.fault({ path: /^\/cdn\//, body: corrupt });
    const err = await failure(download(cache));
    expect(err.message).toMatch(
      /^download TestOrg\/tiny-llama model\.safetensors: checksum mismatch \(sha256 of the received bytes is [0-9a-f]{12}\.\.\., the Hub lists [0-9a-f]{12}\.\.\.\); .*nothing was cached/,
    );
    const repoDir = path.join(cache, 'models--TestOrg--tiny-llama');
    expect(filesUnder(path.join(repoDir, 'snapshots')).filter((f) => f.endsWith('model.safetensors'))).toEqual([]);
    expect(filesUnder(path.join(repoDir, 'blobs')).filter((f) => f.startsWith(sha256(weights)))).toEqual([]);
  });

  it('checks small files against their git blob sha1', async () => {
    const cache = freshCache();
    const original = model['tokenizer_config.json'];
    server.fault({
      path: /\/resolve\/[0-9a-f]{40}\/tokenizer_config\.json$/,
      body: Buffer.from(original.toString().replace('"', "'")),
    });
    const err = await failure(download(cache));
    expect(err.message).toMatch(/tokenizer_config\.json: checksum mismatch \(git sha1 of the received bytes/);
  });

  it('downloads a tag and a commit hash into their own snapshots, recording the tag in refs/', async () => {
    const cache = freshCache();
    const config = JSON.parse(model['config.json'].toString());
    const tagged = server.addCommit('model', ID, 'v1.0', {
      ...model,
      'config.json': JSON.stringify({ ...config, rms_norm_eps: 1e-6 }),
    });
    const { result } = await download(cache, { revision: 'v1.0' });
    expect(result.snapshotDir.endsWith(tagged)).toBe(true);
    expect(fs.readFileSync(path.join(cache, 'models--TestOrg--tiny-llama', 'refs', 'v1.0'), 'utf8')).toBe(tagged);
    expect(JSON.parse(fs.readFileSync(path.join(result.snapshotDir, 'config.json'), 'utf8')).rms_norm_eps).toBe(1e-6);
    server.repo('model', ID).refs.set('main', commit); // addCommit moved only v1.0, main stays

    const byHash = await download(cache, { revision: commit });
    expect(byHash.result.snapshotDir.endsWith(commit)).toBe(true);
    expect(fs.readdirSync(path.join(cache, 'models--TestOrg--tiny-llama', 'refs'))).toEqual(['v1.0']);
  });
});

describe('failures say what failed and what to do, in one line', () => {
  it('401: a private repo without a token', async () => {
    server.addRepo('model', 'alice/private-model', model, { private: true });
    const err = await failure(download(freshCache(), { id: 'alice/private-model' }));
    expect(err.message).toMatch(/^look up model alice\/private-model: not authorized \(401\): .*HF_TOKEN/);
  });

  it('403 on a gated model names the page to accept and the token to set; access works once granted', async () => {
    server.addRepo('model', 'Meta/gated-llama', model, { gated: 'manual' });
    const withToken = await failure(download(freshCache(), { id: 'Meta/gated-llama', token: TOKEN }));
    expect(withToken.message).toBe(
      `download Meta/gated-llama config.json: Meta/gated-llama is a gated repo (403): accept its conditions at ${server.url}/Meta/gated-llama while logged in, then set HF_TOKEN to a read token of that account (${server.url}/settings/tokens)`,
    );
    const anonymous = await failure(download(freshCache(), { id: 'Meta/gated-llama' }));
    expect(anonymous.message).toContain(
      `is a gated repo (401): accept its conditions at ${server.url}/Meta/gated-llama`,
    );

    server.repo('model', 'Meta/gated-llama').granted.add('alice');
    const before = server.requests.length;
    const { result } = await download(freshCache(), { id: 'Meta/gated-llama', token: TOKEN });
    expect(result.files).toEqual(NEEDED);
    const resolves = server.requests.slice(before).filter((r) => r.path.includes('/resolve/'));
    expect(resolves.length).toBeGreaterThan(0);
    for (const r of resolves) expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('404: a repo or a revision that does not exist', async () => {
    const repo = await failure(download(freshCache(), { id: 'TestOrg/no-such-model', token: TOKEN }));
    expect(repo.message).toMatch(
      /^look up model TestOrg\/no-such-model: not found \(404\): no repo TestOrg\/no-such-model on 127\.0\.0\.1:\d+; check the id/,
    );
    const revision = await failure(download(freshCache(), { revision: 'v9' }));
    expect(revision.message).toMatch(
      /^look up model TestOrg\/tiny-llama: revision not found \(404\) in TestOrg\/tiny-llama; check --revision/,
    );
  });

  it('429: rate limited, with the wait the Hub asks for', async () => {
    server.fault({
      path: /^\/api\/models\/TestOrg\/tiny-llama\/tree\//,
      status: 429,
      headers: { 'Retry-After': '30' },
    });
    const err = await failure(download(freshCache()));
    expect(err.message).toBe(
      'list files of TestOrg/tiny-llama: rate limited by the Hub (429); wait 30 s, then run the same command again to resume',
    );
  });

  it('500: a server failure says it is on the server side', async () => {
    server.fault({
      path: /\/resolve\/[0-9a-f]{40}\/generation_config\.json$/,
      status: 500,
      json: { error: "Internal Error - We're working hard to fix this as soon as possible!" },
    });
    const err = await failure(download(freshCache()));
    expect(err.message).toMatch(
      /^download TestOrg\/tiny-llama generation_config\.json: the Hub failed with 500 \(the Hub says: Internal Error.*\); this is on the server side: run the same command again to resume later$/,
    );
  });

  it('an unreachable Hub is reported as such, and the cached snapshot is still found offline', async () => {
    const cache = freshCache();
    const { result } = await download(cache);
    const closed = await startHubServer();
    await closed.close(); // a port nothing listens on
    const offline = { ...hubFor(server, cache), hubUrl: closed.url };
    const err = await failure(preflightModel(offline, ID));
    expect(err).toBeInstanceOf(HubUnreachableError);
    expect(err.message).toBe(
      `look up model TestOrg/tiny-llama: cannot reach ${new URL(closed.url).host} (ECONNREFUSED); check the network connection (and HF_ENDPOINT if set), then run the same command again to resume`,
    );
    expect(cachedSnapshot(cache, { type: 'model', name: ID }, 'main')).toBe(result.snapshotDir);
    expect(cachedSnapshot(cache, { type: 'model', name: 'TestOrg/other' }, 'main')).toBeNull();
  });
});

describe('dataset download', () => {
  const DATA = 'TestOrg/chats';
  const rows = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        messages: [
          { role: 'user', content: `q${i}` },
          { role: 'assistant', content: `a${i}` },
        ],
      }),
    ).join('\n') + '\n';

  beforeAll(() => {
    server.addRepo('dataset', DATA, {
      'README.md': '# chats\n',
      'dataset_info.json': '{}',
      'train.jsonl': rows(20),
      'data/train-00000-of-00001.parquet': Buffer.concat([
        Buffer.from('PAR1'),
        Buffer.alloc(3000, 1),
        Buffer.from('PAR1'),
      ]),
      'data/test-00000-of-00001.parquet': Buffer.concat([
        Buffer.from('PAR1'),
        Buffer.alloc(1000, 2),
        Buffer.from('PAR1'),
      ]),
      'extra/notes.txt': 'not data',
    });
  });

  it('fetches the data files into datasets--org--name, and a split or pattern narrows them', async () => {
    const cache = freshCache();
    const hub = hubFor(server, cache);
    const all = await preflightDataset(hub, DATA);
    expect(all.files.map((f) => f.path)).toEqual([
      'data/test-00000-of-00001.parquet',
      'data/train-00000-of-00001.parquet',
      'train.jsonl',
    ]);
    const train = await preflightDataset(hub, DATA, { split: 'train' });
    expect(train.files.map((f) => f.path)).toEqual(['data/train-00000-of-00001.parquet', 'train.jsonl']);
    const result = await downloadSnapshot(hub, train);
    expect(result.snapshotDir).toBe(
      path.join(cache, 'datasets--TestOrg--chats', 'snapshots', server.repo('dataset', DATA).refs.get('main')!),
    );
    expect(fs.readFileSync(path.join(result.snapshotDir, 'train.jsonl'), 'utf8')).toBe(rows(20));
    expect(
      fs
        .readFileSync(path.join(result.snapshotDir, 'data/train-00000-of-00001.parquet'))
        .equals(server.file('dataset', DATA, 'data/train-00000-of-00001.parquet')!),
    ).toBe(true);
    const parquetOnly = await preflightDataset(hub, DATA, { include: ['data/*'] });
    expect(parquetOnly.files.map((f) => f.path)).toEqual([
      'data/test-00000-of-00001.parquet',
      'data/train-00000-of-00001.parquet',
    ]);
    const none = await failure(preflightDataset(hub, DATA, { split: 'validation' }));
    expect(none.message).toMatch(
      /^dataset TestOrg\/chats: no data files .* belong to split "validation"; .* --include$/,
    );
  });

  it('fetches an empty file', async () => {
    server.addRepo('dataset', 'TestOrg/empty', { 'train.jsonl': '' });
    const hub = hubFor(server, freshCache());
    const result = await downloadSnapshot(hub, await preflightDataset(hub, 'TestOrg/empty'));
    expect(fs.statSync(path.join(result.snapshotDir, 'train.jsonl')).size).toBe(0);
  });

  it('follows the paged file listing to its end', async () => {
    const paged = await startHubServer({ pageSize: 2 });
    try {
      paged.addRepo('model', ID, { ...model, ...UNNEEDED_MODEL_FILES });
      const report = await preflightModel(hubFor(paged, freshCache()), ID);
      expect(report.files.map((f) => f.path)).toEqual(NEEDED);
      expect(paged.requests.filter((r) => r.path.includes('/tree/')).length).toBeGreaterThan(3);
    } finally {
      await paged.close();
    }
  });
});
