// A hostile Hub (HF_ENDPOINT may name any mirror) attacks the cache through every field it returns: commit shas and
// file hashes with ../ in them, unsafe file paths, a body cut off mid-file, redirects elsewhere; repo ids, revisions
// and links inside the cache try the same from the other side. Each attack goes through a real studio server
// (models.download and models.inspect over HTTP, with its token) and through the built CLI (peft-studio hub
// download). Every file beside and above the cache is hashed before and after: nothing there may change or appear,
// the answer is a 4xx (an exit code) with one line, and no byte of those files shows up in it.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import type { hubFetch as HubFetch } from '../../main/hub/errors.js';
import type { startServer as StartServer, StudioServer } from '../../main/server/serve.js';
import { downloadSnapshot } from '../../main/hub/download.js';
import { preflightModel } from '../../main/hub/preflight.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { ROOT, runCliAsync } from '../support/cli.js';
import { gitSha1, sha256, startHubServer, type Hostility, type HubServer } from '../support/hubServer.js';
import { cleanEnv, hubFor, tinyModelFiles } from './helpers.js';

// The studio as the CLI and the app run it: built. Its hubFetch too, so that its errors are the classes it explains.
const built = (file: string) => import(path.join(ROOT, 'dist/main', file));
const { createStudioApi } = (await built('studio/studioApi.js')) as { createStudioApi: typeof CreateStudioApi };
const { startServer } = (await built('server/serve.js')) as { startServer: typeof StartServer };
const { hubFetch } = (await built('hub/errors.js')) as { hubFetch: typeof HubFetch };

const TOKEN = 'hf_hostile_test_token_0123456789';
/** The decoys of every sandbox, by path relative to it: dotfiles above the cache, and a folder beside it. */
const DECOY_SIZES: Record<string, number> = {
  '.bashrc': 300,
  'decoy/.bashrc': 400,
  'decoy/config.json': 500,
  'decoy/tokenizer.json': 600,
  'decoy/secret.txt': 700,
  'decoy/notes.incomplete': 5000,
};

let hub: HubServer;
let top: string;
let studioHome: string;
let api: StudioService;
let studio: StudioServer;
let model: Record<string, Buffer>;
/** The sandbox of the attempt in progress: the studio's Hub access points at its cache. */
let box: Sandbox;
/** What the other host a redirect leads to was asked, and with which Authorization header. */
const foreignRequests: { path: string; authorization?: string }[] = [];
let foreign: http.Server;
let foreignUrl: string;

interface Sandbox {
  root: string;
  /** HF_HUB_CACHE */
  cache: string;
  decoy: string;
  decoys: Map<string, Buffer>;
}

let sandboxes = 0;
function newSandbox(): Sandbox {
  const root = path.join(top, `attempt-${++sandboxes}`);
  const decoys = new Map<string, Buffer>();
  for (const [file, size] of Object.entries(DECOY_SIZES)) {
    // Random hex: any 8 characters of it in a message can only have come from the file.
    const content = Buffer.from(randomBytes(size).toString('hex').slice(0, size));
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), content);
    decoys.set(file, content);
  }
  const cache = path.join(root, 'cache');
  fs.mkdirSync(cache);
  return { root, cache, decoy: path.join(root, 'decoy'), decoys };
}

/** Every entry under `dir` but `skip`: a file's mode and sha256, a link's target, a folder's mode. */
function fingerprint(dir: string, skip: string[], out = new Map<string, string>()): Map<string, string> {
  for (const name of fs.readdirSync(dir)) {
    const entry = path.join(dir, name);
    if (skip.includes(entry)) continue;
    const stat = fs.lstatSync(entry);
    if (stat.isSymbolicLink()) out.set(entry, `link to ${fs.readlinkSync(entry)}`);
    else if (stat.isDirectory()) {
      out.set(entry, `folder ${stat.mode}`);
      fingerprint(entry, skip, out);
    } else out.set(entry, `file ${stat.mode} ${sha256(fs.readFileSync(entry))}`);
  }
  return out;
}

/** Symbolic links under `dir`, with where they lead. */
function linksUnder(dir: string): Map<string, string> {
  const links = new Map<string, string>();
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const entry = path.join(dir, name);
    if (!fs.lstatSync(entry).isSymbolicLink()) continue;
    links.set(entry, path.resolve(path.dirname(entry), fs.readlinkSync(entry)));
  }
  return links;
}

/** Whether any 8 characters of any decoy appear in `text`. */
function leaks(text: string, sandbox: Sandbox): string | null {
  for (const [file, content] of sandbox.decoys) {
    const chars = content.toString();
    for (let i = 0; i + 8 <= chars.length; i += 4) if (text.includes(chars.slice(i, i + 8))) return file;
  }
  return null;
}

type Channel = 'download' | 'inspect' | 'cli';
const ALL: Channel[] = ['download', 'inspect', 'cli'];

interface Attempt {
  channel: Channel;
  /** The HTTP status, or the CLI's exit code. */
  status: number;
  /** The error message (for the CLI: its last line of stderr, without the prefix). */
  message: string;
  /** Everything the caller saw. */
  output: string;
  sandbox: Sandbox;
  /** Requests the Hub got during the attempt. */
  requests: string[];
}

async function callStudio(method: string, params: unknown): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${studio.port}/api/${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${studio.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(params),
  });
  return { status: response.status, body: await response.text() };
}

interface AttackOptions {
  revision?: string;
  /** Changes the fresh sandbox before the attempt (links in the cache, faults naming its paths). */
  prepare?: (sandbox: Sandbox) => void;
}

/**
 * One attack through one channel in a fresh sandbox: refused with a 4xx (exit code 1 or 2) and one line, no decoy
 * byte in what the caller saw, nothing outside the cache changed or new, and no new link in the cache leading out.
 */
async function attack(channel: Channel, repoId: string, options: AttackOptions = {}): Promise<Attempt> {
  box = newSandbox();
  options.prepare?.(box);
  const skip = [studioHome, box.cache];
  const before = fingerprint(top, skip);
  const linksBefore = linksUnder(box.cache);
  const firstRequest = hub.requests.length;
  let status: number;
  let output: string;
  if (channel === 'cli') {
    const args = ['hub', 'download', repoId, ...(options.revision ? ['--revision', options.revision] : [])];
    const home = path.join(box.root, 'hf-home');
    const env = cleanEnv({ HF_ENDPOINT: hub.url, HF_HOME: home, HF_HUB_CACHE: box.cache, HF_TOKEN: TOKEN });
    const result = await runCliAsync(args, { env });
    [status, output] = [result.code!, `${result.stdout}${result.stderr}`];
  } else {
    const params = channel === 'download' ? { repoId, requestId: `attack-${sandboxes}` } : { source: repoId };
    const revision = options.revision && { revision: options.revision };
    const answer = await callStudio(`models.${channel}`, { ...params, ...revision });
    [status, output] = [answer.status, answer.body];
  }

  // What matters most, first: nothing outside the cache touched, nothing linked out of it, nothing leaked.
  expect(fingerprint(top, skip), `${channel}: ${output}`).toEqual(before);
  for (const [link, target] of linksUnder(box.cache)) {
    if (linksBefore.has(link)) continue;
    expect(path.relative(box.cache, target).startsWith('..'), `${link} -> ${target}`).toBe(false);
  }
  expect(leaks(output, box), `${channel}: ${output}`).toBeNull();

  let message: string;
  if (channel === 'cli') {
    expect([1, 2], output).toContain(status);
    // The error is one line: the last, or (a usage error, exit code 2) followed by the usage only.
    const lines = output.trimEnd().split('\n');
    const at = lines.findIndex((line) => line.startsWith('peft-studio hub: '));
    expect(at, output).toBeGreaterThanOrEqual(0);
    const usage = /^(usage:| {6}) peft-studio hub /;
    expect(
      lines.slice(at + 1).every((line) => usage.test(line)),
      output,
    ).toBe(true);
    message = lines[at].replace(/^peft-studio hub: (error: )?/, '');
  } else {
    expect(status, output).toBeGreaterThanOrEqual(400);
    expect(status, output).toBeLessThan(500);
    message = (JSON.parse(output) as { error: { message: string } }).error.message;
    expect(message).not.toMatch(/[\r\n]/);
  }
  const requests = hub.requests.slice(firstRequest).map((r) => r.path);
  return { channel, status, message, output, sandbox: box, requests };
}

/** The same attack through the channels it applies to. */
async function attackAll(repoId: string, channels: Channel[] = ALL, options: AttackOptions = {}): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  for (const channel of channels) attempts.push(await attack(channel, repoId, options));
  return attempts;
}

/** A repo of the tiny model that lies as `hostile` says. */
function hostileRepo(name: string, hostile: Hostility, files: Record<string, Buffer> = model): string {
  hub.addRepo('model', name, files, { hostile });
  return name;
}

const decoySize = (file: string) => DECOY_SIZES[file];
/** How the refusal of a hash reads: the repo, the value as shown, the field, and what it should have been. */
const refusedHash = (repo: string, shown: string, field: string, form = 'a 40- or 64-digit hex hash') =>
  `${repo}: the Hub sent ${shown} as ${field}, not ${form}; refusing it`;
const COMMIT_FORM = 'a 40-digit hex commit hash';

beforeAll(async () => {
  hub = await startHubServer();
  hub.addToken(TOKEN, { user: 'alice', role: 'read' });
  model = tinyModelFiles({ layers: 1, hidden: 32 });
  hub.addRepo('model', 'Good/tiny', model);
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-hub-hostile-'));
  fs.writeFileSync(path.join(top, '.profile'), randomBytes(64).toString('hex'));
  studioHome = path.join(top, 'studio-home');
  // Every call's Hub access points at the cache of the attempt in progress, with a token to leak.
  api = createStudioApi({
    home: studioHome,
    hub: () => ({
      hubUrl: hub.url,
      token: TOKEN,
      cacheDir: box.cache,
      offline: false,
      fetch: hubFetch(fetch, hub.url),
    }),
  });
  studio = await startServer({ host: '127.0.0.1', port: 0, staticDir: path.join(top, 'no-renderer'), api });
  foreign = http.createServer((req, res) => {
    foreignRequests.push({ path: req.url!, authorization: req.headers.authorization });
    // The decoy's bytes at the length the Hub lists for config.json: only the hash can tell them apart.
    const body = Buffer.alloc(model['config.json'].length, box.decoys.get('decoy/.bashrc')!.toString() + '\n');
    res.writeHead(200, { 'Content-Length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  foreignUrl = `http://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await studio?.close();
  await api?.close();
  await hub?.close();
  foreign?.close();
  if (top) fs.rmSync(top, { recursive: true, force: true });
});

describe('a hostile Hub', () => {
  it('gives a commit sha with ../ (or a huge one, or not a string): refused before any file is placed', async () => {
    const escaped = `${path.basename(top)}-escaped`;
    // The sha, and how the message shows it.
    const cases: [string, unknown, string][] = [
      ['Evil/sha-up', '../../../decoy', '"../../../decoy"'],
      ['Evil/sha-deep', `../../../../../${escaped}`, `"../../../../../${escaped}"`],
      ['Evil/sha-huge', `../../../decoy/${'x'.repeat(1_000_000)}`, `"../../../decoy/${'x'.repeat(62)}..."`],
      ['Evil/sha-upper', 'A'.repeat(40), `"${'A'.repeat(40)}"`],
      ['Evil/sha-object', { path: '../../../decoy' }, 'a JSON object'],
    ];
    for (const [name, sha, shown] of cases) {
      hostileRepo(name, { sha });
      for (const attempt of await attackAll(name)) {
        expect(attempt.message, attempt.channel).toBe(refusedHash(name, shown, 'the commit sha of main', COMMIT_FORM));
        expect(attempt.message.length).toBeLessThan(300);
        expect(
          attempt.requests.every((r) => r.includes('/revision/')),
          attempt.requests.join(),
        ).toBe(true);
      }
    }
    expect(fs.existsSync(path.join(os.tmpdir(), escaped))).toBe(false);
  });

  it('gives an LFS hash with ../ that names a decoy of the right size: no snapshot link to it', async () => {
    const name = hostileRepo('Evil/lfs-oid', {
      entries: { 'model.safetensors': { lfs: { oid: '../../../decoy/.bashrc', size: decoySize('decoy/.bashrc') } } },
    });
    for (const attempt of await attackAll(name)) {
      expect(attempt.message).toBe(refusedHash(name, '"../../../decoy/.bashrc"', 'the lfs.oid of "model.safetensors"'));
      expect(attempt.requests.some((r) => r.includes('/resolve/'))).toBe(false);
      expect(fs.readdirSync(attempt.sandbox.cache, { recursive: true })).toEqual([]);
    }
  });

  it('gives a git hash with ../ naming a dotfile above the cache: its bytes never reach a message', async () => {
    const name = hostileRepo('Evil/config-oid', {
      entries: { 'config.json': { oid: '../../../.bashrc', size: decoySize('.bashrc') } },
    });
    for (const attempt of await attackAll(name)) {
      expect(attempt.message).toBe(refusedHash(name, '"../../../.bashrc"', 'the oid of "config.json"'));
    }
  });

  it('gives a hash that names a larger partial download outside the cache: it is not deleted', async () => {
    const name = hostileRepo('Evil/delete', {
      entries: { 'tokenizer.json': { oid: '../../../decoy/notes', size: 10 } },
    });
    for (const attempt of await attackAll(name)) {
      expect(attempt.message).toBe(refusedHash(name, '"../../../decoy/notes"', 'the oid of "tokenizer.json"'));
    }
  });

  it('lists file paths that leave the snapshot: refused by name', async () => {
    const cases: [string, string][] = [
      ['Evil/path-up', '../../../decoy/config.json'],
      ['Evil/path-inner', 'tokenizer.json/../../../../../decoy/.bashrc'],
      ['Evil/path-dot', './config.json'],
      ['Evil/path-nul', 'config.json\0.txt'],
    ];
    for (const [name, file] of cases) {
      hostileRepo(name, { entries: { 'config.json': { path: file } } });
      for (const attempt of await attackAll(name)) {
        const expected = `${name}: the Hub listed an unsafe file path ${JSON.stringify(file)}; refusing to write it`;
        expect(attempt.message, attempt.channel).toBe(expected);
      }
    }
    // An absolute path, wherever the sandbox is.
    hostileRepo('Evil/path-absolute', { entries: { 'config.json': { path: '/tmp/decoy/config.json' } } });
    for (const attempt of await attackAll('Evil/path-absolute')) {
      expect(attempt.message).toContain('unsafe file path "/tmp/decoy/config.json"');
    }
  });

  it('cuts a body off mid-file: no byte outside the cache, the partial inside it, one line saying so', async () => {
    // With a hash naming a file outside the cache, nothing is requested at all.
    const files = tinyModelFiles({ layers: 1, hidden: 48 });
    const evil = hostileRepo('Evil/cut', { entries: { 'config.json': { oid: '../../../decoy/evil' } } }, files);
    const dropEvil = () => hub.fault({ path: /^\/Evil\/cut\/resolve\/[^/]+\/config\.json$/, dropAfter: 100 });
    for (const attempt of await attackAll(evil, ALL, { prepare: dropEvil })) {
      expect(attempt.message).toBe(refusedHash(evil, '"../../../decoy/evil"', 'the oid of "config.json"'));
    }
    // An honest listing cut off: the partial stays in blobs/ to be resumed.
    hub.addRepo('model', 'Good/cut', files);
    const drop = () => hub.fault({ path: /^\/Good\/cut\/resolve\/[^/]+\/config\.json$/, dropAfter: 100 });
    for (const attempt of await attackAll('Good/cut', ALL, { prepare: drop })) {
      expect(attempt.message).toMatch(/^download Good\/cut config\.json: connection (reset|closed by the server) /);
      // The CLI's user runs the command again; the studio's presses Retry.
      const again = attempt.channel === 'cli' ? 'run the same command again' : 'press Retry';
      expect(attempt.message).toMatch(new RegExp(` after 100 B of [\\d.]+ k?B; ${again} to resume$`));
      const cached = fs.readdirSync(attempt.sandbox.cache, { recursive: true }) as string[];
      const partial = path.join('models--Good--cut', 'blobs', `${gitSha1(files['config.json'])}.incomplete`);
      expect(cached.filter((f) => f.endsWith('.incomplete'))).toEqual([partial]);
    }
  });

  it('redirects a download to a file:// URL or another host: no file read, no token sent, nothing cached', async () => {
    hub.addRepo('model', 'Evil/redirect-file', model);
    const fileConfig = /^\/Evil\/redirect-file\/resolve\/[^/]+\/config\.json$/;
    const toFile = (sandbox: Sandbox) => hub.fault({ path: fileConfig, redirect: `file://${sandbox.decoy}/.bashrc` });
    for (const attempt of await attackAll('Evil/redirect-file', ALL, { prepare: toFile })) {
      expect(attempt.message).toMatch(/^download Evil\/redirect-file config\.json: cannot reach 127\.0\.0\.1:\d+ /);
      expect(attempt.message).toContain(' (URL scheme must be a HTTP(S) scheme); ');
      expect(fs.existsSync(path.join(attempt.sandbox.cache, 'models--Evil--redirect-file', 'blobs'))).toBe(false);
    }

    hub.addRepo('model', 'Evil/redirect-host', model);
    const hostConfig = /^\/Evil\/redirect-host\/resolve\/[^/]+\/config\.json$/;
    const toHost = () => hub.fault({ path: hostConfig, redirect: `${foreignUrl}/payload` });
    for (const attempt of await attackAll('Evil/redirect-host', ALL, { prepare: toHost })) {
      const [what, why] = attempt.message.split('; the download was deleted');
      expect(what).toMatch(/^download Evil\/redirect-host config\.json: checksum mismatch \(git sha1 of the received /);
      expect(why).toBe(
        ` and nothing was cached; ${attempt.channel === 'cli' ? 'run the same command again' : 'press Retry'}`,
      );
      expect(fs.readdirSync(path.join(attempt.sandbox.cache, 'models--Evil--redirect-host', 'blobs'))).toEqual([]);
    }
    expect(foreignRequests.map((r) => r.path)).toEqual(['/payload', '/payload', '/payload']);
    expect(foreignRequests.filter((r) => r.authorization !== undefined)).toEqual([]);
  });

  it('hands out a next page on another host: the listing goes on without the token', async () => {
    const repo = hostileRepo('Evil/next-page', { nextPage: `${foreignUrl}/page` });
    const before = foreignRequests.length;
    for (const attempt of await attackAll(repo, ['download', 'inspect']))
      expect(attempt.status).toBeGreaterThanOrEqual(400);
    const asked = foreignRequests.slice(before);
    expect(asked.map((r) => r.path)).toContain('/page');
    expect(asked.filter((r) => r.authorization !== undefined)).toEqual([]);
  });
});

describe('what the caller names', () => {
  it('a revision with ../ (or absolute, or with empty parts) is refused before anything is requested', async () => {
    for (const revision of ['../../../decoy/.bashrc', '..', '/tmp/x', 'pr//1', 'a/./b']) {
      for (const attempt of await attackAll('Good/tiny', ALL, { revision })) {
        const expected = `Good/tiny: revision ${JSON.stringify(revision)} is not a branch, tag or commit name`;
        expect(attempt.message, attempt.channel).toBe(expected);
        expect(attempt.requests).toEqual([]);
      }
    }
  });

  it('repo ids with . or .. parts, hidden names or -- are refused before anything is requested', async () => {
    for (const repoId of ['../..', 'a/..', './x', '..', 'a/../b', 'x/.bashrc', '.x/y', 'a--b/c']) {
      const download = await attack('download', repoId);
      expect(download).toMatchObject({ status: 400, message: 'models.download: params.repoId: expected org/name' });
      expect(download.requests).toEqual([]);
    }
    // models.inspect also takes local folders: these are none.
    for (const repoId of ['a/..', './x', 'a/../b', 'x/.bashrc', '.x/y']) {
      const inspect = await attack('inspect', repoId);
      const message = `${repoId}: neither an existing folder nor a Hub model id (org/name)`;
      expect(inspect).toMatchObject({ status: 422, message });
      expect(inspect.requests).toEqual([]);
    }
    for (const repoId of ['../..', 'a/..', './x', 'x/.bashrc', 'a/../b', 'x/..hidden']) {
      const cli = await attack('cli', repoId);
      expect(cli.message, repoId).toMatch(/is not a (Hub )?repo id \(organisation\/name/);
      expect(cli.requests).toEqual([]);
    }
  });

  it('a folder of the cache that links outside it is never written, read or deleted through', async () => {
    for (const folder of ['blobs', 'snapshots', 'refs']) {
      const linkOut = (sandbox: Sandbox) => {
        fs.mkdirSync(path.join(sandbox.cache, 'models--Good--tiny'));
        fs.symlinkSync(sandbox.decoy, path.join(sandbox.cache, 'models--Good--tiny', folder));
      };
      for (const attempt of await attackAll('Good/tiny', ALL, { prepare: linkOut })) {
        const [shown, rest] = attempt.message.split('" leads outside');
        expect(shown, attempt.channel).toMatch(new RegExp(`^Good/tiny: "models--Good--tiny/${folder}/[^"]+$`));
        expect(rest).toBe(` the Hub cache ${attempt.sandbox.cache}; refusing to touch it`);
        expect(attempt.requests.some((r) => r.includes('/resolve/'))).toBe(false);
      }
    }
  });

  it('follows links that stay inside the cache: a cache reached through a link, a folder linked in it', async () => {
    const sandbox = newSandbox();
    // HF_HUB_CACHE on another disk, reached through a link; blobs/ moved aside within the cache and linked back.
    const elsewhere = path.join(sandbox.root, 'other-disk');
    fs.mkdirSync(path.join(elsewhere, 'models--Good--tiny', 'moved-blobs'), { recursive: true });
    fs.symlinkSync(path.join('moved-blobs'), path.join(elsewhere, 'models--Good--tiny', 'blobs'));
    const linked = path.join(sandbox.root, 'linked-cache');
    fs.symlinkSync(elsewhere, linked);
    const access = hubFor(hub, linked, TOKEN);
    const result = await downloadSnapshot(access, await preflightModel(access, 'Good/tiny'));
    expect(result.snapshotDir.startsWith(path.join(linked, 'models--Good--tiny', 'snapshots'))).toBe(true);
    expect(openModelFolder(result.snapshotDir).spec.modelType).toBe('llama');
    expect(fs.readdirSync(path.join(elsewhere, 'models--Good--tiny', 'moved-blobs')).length).toBe(5);
  });
});
