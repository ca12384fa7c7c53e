// peft-studio hub download / hub push as users run them: the built CLI in a real process, HF_ENDPOINT pointing at
// the loopback Hub, HF_HOME / HF_HUB_CACHE at temp folders, the token in HF_TOKEN and nowhere else.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { downloadSnapshot } from '../../main/hub/download.js';
import { preflightModel } from '../../main/hub/preflight.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { lastJson } from '../support/cli.js';
import { randomLora, tempDir } from '../support/engine.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { byteRequests, cleanEnv, hubFor, tinyModelFiles, UNNEEDED_MODEL_FILES } from './helpers.js';
import { runCliAsync } from '../support/cli.js';

const BASE = 'TestOrg/tiny-llama';
const WRITE = 'hf_alice_cli_write_token';

let server: HubServer;
let work: string;
let adapterDir: string;

beforeAll(async () => {
  server = await startHubServer();
  server.addToken(WRITE, { user: 'alice', role: 'write' });
  const model = tinyModelFiles();
  server.addRepo('model', BASE, { ...model, ...UNNEEDED_MODEL_FILES }, { cardData: { license: 'apache-2.0' } });
  server.addRepo('model', 'TestOrg/gpt2-like', {
    ...model,
    'config.json': JSON.stringify({ ...JSON.parse(model['config.json'].toString()), model_type: 'gpt2' }),
  });
  server.addRepo('model', 'Meta/gated', model, { gated: 'manual' });
  server.repo('model', 'Meta/gated').granted.add('alice');
  server.addRepo('dataset', 'TestOrg/chats', {
    'train.jsonl': '{"text": "a"}\n',
    'test.jsonl': '{"text": "b"}\n',
    'README.md': '# chats\n',
  });

  work = tempDir('hub-cli');
  const hub = hubFor(server, path.join(work, 'base-cache'));
  const base = openModelFolder((await downloadSnapshot(hub, await preflightModel(hub, BASE))).snapshotDir);
  adapterDir = path.join(work, 'adapter');
  saveLoraAdapter(
    adapterDir,
    randomLora(base, { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'], useRslora: false }, 3),
    base.dir,
  );
  fs.writeFileSync(
    path.join(adapterDir, 'training.json'),
    JSON.stringify({
      finalLoss: 2.5,
      losses: [
        { step: 1, loss: 3 },
        { step: 2, loss: 2.5 },
      ],
    }),
  );
});

afterAll(() => server.close());

const envFor = (home: string, extra: Record<string, string> = {}) =>
  cleanEnv({ HF_ENDPOINT: server.url, HF_HOME: home, ...extra });
const hub = (args: string[], env: NodeJS.ProcessEnv) => runCliAsync(['hub', ...args], { env });

describe('peft-studio hub download', () => {
  let home: string;
  let snapshot: string;

  beforeAll(() => {
    home = tempDir('hub-cli-home');
  });

  it('prints the preflight and progress on stderr and the snapshot folder on stdout', async () => {
    const result = await hub(['download', BASE], envFor(home));
    expect(result.code, result.stderr).toBe(0);
    snapshot = result.stdout.trim();
    expect(snapshot).toBe(
      path.join(home, 'hub', 'models--TestOrg--tiny-llama', 'snapshots', server.repo('model', BASE).refs.get('main')!),
    );
    expect(openModelFolder(snapshot).spec.modelType).toBe('llama');
    expect(result.stderr).toMatch(
      /^model TestOrg\/tiny-llama @ main \(commit [0-9a-f]{12}\)\n {2}5 files, 577 kB \(model\.safetensors 560 kB, /,
    );
    expect(result.stderr).toMatch(/\n {2}parameters: \d+\n {2}architecture: llama, supported\n/);
    expect(result.stderr).toMatch(/\] 577 kB \/ 577 kB {2}tokenizer_config\.json done \(5\/5\)\n/);
    // config.json, fetched by the preflight
    expect(result.stderr).toMatch(/, 1 of 5 files were already in the cache\n$/);
  });

  it('--json: one JSON object with the folder, the files and the preflight; a cached model makes no file request', async () => {
    const before = byteRequests(server).length;
    const result = await hub(['download', BASE, '--json'], envFor(home));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    const out = lastJson(result.stdout);
    expect(out).toMatchObject({
      snapshotDir: snapshot,
      repoId: BASE,
      type: 'model',
      revision: 'main',
      fetchedBytes: 0,
      cachedFiles: 5,
      files: ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
    });
    expect(out.preflight).toMatchObject({ architecture: 'llama', supported: true, totalBytes: 576_551 });
    expect(out.preflight.parameterCount).toBeGreaterThan(0);
    expect(byteRequests(server).length).toBe(before);
  });

  it('HF_HUB_CACHE chooses the cache folder', async () => {
    const cache = tempDir('hub-cli-cache');
    const result = await hub(
      ['download', BASE, '--json'],
      envFor(tempDir('hub-cli-other-home'), { HF_HUB_CACHE: cache }),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(
      lastJson(result.stdout).snapshotDir.startsWith(path.join(cache, 'models--TestOrg--tiny-llama', 'snapshots')),
    ).toBe(true);
  });

  it('refuses an unsupported architecture before fetching weights, unless --force', async () => {
    const before = byteRequests(server).length;
    const refused = await hub(['download', 'TestOrg/gpt2-like'], envFor(home));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /\n {2}architecture: gpt2, not supported: config\.json: field "model_type" is "gpt2"; supported: llama, mistral, qwen2, qwen3\n/,
    );
    expect(refused.stderr.trim().split('\n').at(-1)).toBe(
      'peft-studio hub: error: TestOrg/gpt2-like: config.json: field "model_type" is "gpt2"; supported: llama, mistral, qwen2, qwen3; the studio cannot train it (pass --force to download anyway)',
    );
    expect(
      byteRequests(server)
        .slice(before)
        .every((r) => r.path.endsWith('config.json')),
    ).toBe(true);
    const forced = await hub(['download', 'TestOrg/gpt2-like', '--force', '--json'], envFor(home));
    expect(forced.code, forced.stderr).toBe(0);
    expect(lastJson(forced.stdout).files).toContain('model.safetensors');
  });

  it('downloads the files of one dataset split', async () => {
    const result = await hub(['download', 'TestOrg/chats', '--dataset', '--split', 'train', '--json'], envFor(home));
    expect(result.code, result.stderr).toBe(0);
    const out = lastJson(result.stdout);
    expect(out.files).toEqual(['train.jsonl']);
    expect(fs.readFileSync(path.join(out.snapshotDir, 'train.jsonl'), 'utf8')).toBe('{"text": "a"}\n');
    expect(out.snapshotDir).toContain(path.join('hub', 'datasets--TestOrg--chats', 'snapshots'));
  });

  it('works from the cache offline (HF_HUB_OFFLINE, or the Hub unreachable), and says so', async () => {
    const offline = await hub(['download', BASE], envFor(home, { HF_HUB_OFFLINE: '1' }));
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stdout.trim()).toBe(snapshot);
    expect(offline.stderr).toBe('HF_HUB_OFFLINE is set; using the cached snapshot\n');

    const closed = await startHubServer();
    await closed.close();
    const unreachable = await hub(['download', BASE], { ...envFor(home), HF_ENDPOINT: closed.url });
    expect(unreachable.code, unreachable.stderr).toBe(0);
    expect(unreachable.stdout.trim()).toBe(snapshot);
    expect(unreachable.stderr).toMatch(
      /^offline \(look up model TestOrg\/tiny-llama: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\); .*\); using the cached snapshot\n$/,
    );

    const missing = await hub(['download', 'TestOrg/never-downloaded'], envFor(home, { HF_HUB_OFFLINE: '1' }));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `peft-studio hub: error: model TestOrg/never-downloaded @ main is not in the cache ${path.join(home, 'hub')}, and HF_HUB_OFFLINE is set\n`,
    );
  });

  it('a missing repo is one line on stderr and exit code 1', async () => {
    const result = await hub(['download', 'TestOrg/nope'], envFor(home));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^peft-studio hub: error: look up model TestOrg\/nope: not authorized \(401\): .*HF_TOKEN.*\n$/,
    );
  });
});

describe('peft-studio hub push', () => {
  it('prints the repo URL; --json gives the whole result', async () => {
    const result = await hub(
      ['push', adapterDir, 'alice/cli-lora'],
      envFor(tempDir('hub-cli-push'), { HF_TOKEN: WRITE }),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${server.url}/alice/cli-lora\n`);
    expect(result.stderr).toMatch(/^checking the token\ncreating the repo\n/);
    expect(result.stderr).toMatch(/\npushed 4 files \(commit [0-9a-f]{12}\) to a new private repo\n$/);
    expect(server.repo('model', 'alice/cli-lora').private).toBe(true);

    const again = await hub(
      ['push', adapterDir, 'cli-lora', '--json'],
      envFor(tempDir('hub-cli-push'), { HF_TOKEN: WRITE }),
    );
    expect(again.code, again.stderr).toBe(0);
    expect(lastJson(again.stdout)).toMatchObject({
      repoId: 'alice/cli-lora',
      created: false,
      baseModel: BASE,
      files: ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'loss.png'],
    });
  });

  it('--public makes a public repo; without HF_TOKEN the push is refused', async () => {
    const pub = await hub(
      ['push', adapterDir, 'alice/cli-public', '--public', '--json'],
      envFor(tempDir('hub-cli-push'), { HF_TOKEN: WRITE }),
    );
    expect(pub.code, pub.stderr).toBe(0);
    expect(server.repo('model', 'alice/cli-public').private).toBe(false);
    const noToken = await hub(['push', adapterDir, 'alice/cli-x'], envFor(tempDir('hub-cli-push')));
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toBe(
      `peft-studio hub: error: push alice/cli-x: no token; set HF_TOKEN to a write token from ${server.url}/settings/tokens\n`,
    );
  });
});

describe('usage errors exit with code 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['no verb', [], /hub needs a command: download or push/],
    ['unknown verb', ['upload', 'x'], /unknown hub command "upload"/],
    ['no repo id', ['download'], /hub download takes one repo id/],
    ['bad repo id', ['download', '../etc'], /"\.\.\/etc" is not a repo id/],
    ['push without a repo', ['push', 'adapter-dir'], /hub push takes an adapter folder and a repo id/],
    ['split without --dataset', ['download', BASE, '--split', 'train'], /--split applies to datasets/],
    ['push flag on download', ['download', BASE, '--gguf', 'x.gguf'], /--gguf does not apply to hub download/],
    [
      'both visibilities',
      ['push', 'adapter-dir', 'alice/x', '--private', '--public'],
      /give --private or --public, not both/,
    ],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const result = await hub(args, envFor(tempDir('hub-cli-usage')));
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toMatch(/usage: peft-studio hub download/);
    });
  }
});

describe('the token is never written anywhere', () => {
  it('appears in no output and no file, though every request carried it', async () => {
    const token = `hf_${randomBytes(18).toString('hex')}`;
    server.addToken(token, { user: 'alice', role: 'write' });
    const home = tempDir('hub-cli-secret');
    const env = envFor(home, { HF_TOKEN: token });
    const before = server.requests.length;
    // A server that echoes the token in an error must not get it printed either.
    server.fault({ path: /^\/api\/whoami-v2$/, status: 500, json: { error: `token ${token} hit an internal error` } });
    server.fault({ path: /^\/cdn\//, dropAfter: 1000 });
    const runs = [
      await hub(['push', adapterDir, 'alice/secret-lora'], env),
      await hub(['download', 'Meta/gated'], env),
      await hub(['download', 'Meta/gated'], env),
      await hub(['download', 'Meta/gated', '--json'], env),
      await hub(['download', 'TestOrg/chats', '--dataset'], env),
      await hub(['download', 'TestOrg/missing'], env),
      await hub(['push', adapterDir, 'alice/secret-lora'], env),
      await hub(['push', adapterDir, 'alice/secret-lora', '--json'], env),
      await hub(['push', adapterDir, 'SomeoneElse/secret-lora'], env),
    ];
    expect(runs.map((r) => r.code)).toEqual([1, 1, 0, 0, 0, 1, 0, 0, 1]);
    expect(runs[0].stderr).toContain('token hf_*** hit an internal error');
    expect(runs[1].stderr).toMatch(
      /: connection (reset|closed by the server) after 1.0 kB of 560 kB; run the same command again to resume\n$/,
    );
    for (const run of runs) {
      expect(run.stdout).not.toContain(token);
      expect(run.stderr).not.toContain(token);
    }
    const written = [home, adapterDir].flatMap((dir) =>
      (fs.readdirSync(dir, { recursive: true }) as string[]).map((f) => path.join(dir, f)),
    );
    const files = written.filter((f) => fs.statSync(f).isFile());
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) expect(fs.readFileSync(file).includes(token), file).toBe(false);
    for (const content of server.repo('model', 'alice/secret-lora').commits.values()) {
      for (const [name, bytes] of content.files) expect(bytes.includes(token), name).toBe(false);
    }
    const authorized = server.requests.slice(before).filter((r) => r.headers.authorization === `Bearer ${token}`);
    expect(authorized.some((r) => r.path.includes('/Meta/gated/resolve/'))).toBe(true);
    expect(authorized.some((r) => r.path === '/api/repos/create')).toBe(true);
  });
});
