// The desktop shell's security, checked without the Electron binary: the window settings, the CSP, who may send
// IPC, that every message goes through the contract's schemas, the packaging config, and a scan of the sources.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ApiError, fromWire, toWire, UserError } from '../../shared/errors.js';
import type { StudioApi } from '../../shared/api.js';
import {
  answerCall,
  answerPick,
  CHANNELS,
  openDialogProperties,
  parsePickRequest,
  type DesktopBridge,
  type IpcReply,
} from '../../main/electron/ipc.js';
import {
  CONTENT_SECURITY_POLICY,
  RENDERER_META_POLICY,
  externalLinkTarget,
  isAllowedRequest,
  isTrustedSender,
  rendererFolderUrl,
  viewMenu,
  windowOptions,
  type TrustedRenderer,
} from '../../main/electron/security.js';
import { ROOT } from '../support/cli.js';

const ELECTRON_DIR = path.join(ROOT, 'main/electron');
const INDEX_URL = pathToFileURL(path.join(ROOT, 'dist/renderer/index.html')).href;
const FOLDER_URL = rendererFolderUrl(INDEX_URL);
const TRUSTED: TrustedRenderer = { webContentsId: 1, folderUrl: FOLDER_URL };
const OUR_WINDOW = { webContentsId: 1, frameUrl: INDEX_URL, isMainFrame: true };

/** A confirm-in-main that fails the test if a call asks: only deletes may. */
const ASK_NOTHING = async (question: string): Promise<boolean> => {
  throw new Error(`unexpected question: ${question}`);
};

/** A studio API that records what reaches it. */
function recordingApi(answer: (method: string, params: unknown) => unknown = () => ({ answered: true })) {
  const calls: { method: string; params: unknown }[] = [];
  const api: StudioApi = {
    call: async (method, params) => {
      calls.push({ method, params });
      return answer(method, params) as never;
    },
    subscribe: () => () => {},
  };
  return { api, calls };
}

describe('the window', () => {
  it('runs the renderer sandboxed and isolated, without Node, with web security on and no webviews', () => {
    const prefs = windowOptions('/app/preload.cjs', true).webPreferences!;
    expect(prefs).toMatchObject({
      preload: '/app/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      webviewTag: false,
    });
    expect(prefs.allowRunningInsecureContent).not.toBe(true);
    expect(prefs.experimentalFeatures).not.toBe(true);
  });

  it('has a CSP of its own files only: no inline code, no eval, no plugins, no frames', () => {
    const directives = Object.fromEntries(
      CONTENT_SECURITY_POLICY.split(';')
        .map((d) => d.trim().split(/\s+/))
        .map(([name, ...sources]) => [name, sources]),
    );
    expect(directives['default-src']).toEqual(["'self'"]);
    expect(directives['script-src']).toEqual(["'self'"]);
    expect(directives['object-src']).toEqual(["'none'"]);
    expect(directives['frame-ancestors']).toEqual(["'none'"]);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-inline|unsafe-eval|unsafe-hashes|wasm-unsafe-eval|\*|https?:/);
  });

  it('states the same policy in the renderer page, for file:// pages that carry no headers', () => {
    const page = fs.readFileSync(path.join(ROOT, 'renderer/index.html'), 'utf8');
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(page);
    expect(meta?.[1]).toBe(RENDERER_META_POLICY);
    expect(CONTENT_SECURITY_POLICY.startsWith(RENDERER_META_POLICY)).toBe(true);
  });

  it('loads nothing from a network and lets only https links out, to the browser', () => {
    expect(isAllowedRequest(new URL('assets/index.js', INDEX_URL).href, FOLDER_URL)).toBe(true);
    expect(isAllowedRequest('data:image/png;base64,AAAA', FOLDER_URL)).toBe(true);
    for (const url of [
      'https://example.com/x.js',
      'http://127.0.0.1:7860/',
      'ws://127.0.0.1/',
      'file:///etc/passwd',
      new URL('../../package.json', INDEX_URL).href,
    ]) {
      expect(isAllowedRequest(url, FOLDER_URL), url).toBe(false);
    }
    expect(externalLinkTarget('https://huggingface.co/docs')).toBe('https://huggingface.co/docs');
    for (const url of ['http://example.com', 'file:///bin/sh', 'javascript:alert(1)', 'smb://host/share', 'not a url'])
      expect(externalLinkTarget(url), url).toBeNull();
  });
});

describe('IPC senders', () => {
  it('are trusted only as the main window top frame showing one of our renderer files', () => {
    expect(isTrustedSender(OUR_WINDOW, TRUSTED)).toBe(true);
    expect(isTrustedSender({ ...OUR_WINDOW, frameUrl: `${INDEX_URL}#/runs/3` }, TRUSTED)).toBe(true);
    const refused = {
      'another window': { ...OUR_WINDOW, webContentsId: 2 },
      'an iframe': { ...OUR_WINDOW, isMainFrame: false },
      'a frame that is gone': { ...OUR_WINDOW, frameUrl: undefined },
      'a web page': { ...OUR_WINDOW, frameUrl: 'https://evil.example/index.html' },
      'a local server': { ...OUR_WINDOW, frameUrl: 'http://127.0.0.1:7860/index.html' },
      'another local file': { ...OUR_WINDOW, frameUrl: 'file:///tmp/index.html' },
      'a path walking out of the folder': { ...OUR_WINDOW, frameUrl: `${FOLDER_URL}../../../../tmp/x.html` },
      'an encoded walk out': { ...OUR_WINDOW, frameUrl: `${FOLDER_URL}%2e%2e/%2e%2e/x.html` },
      'a network share': { ...OUR_WINDOW, frameUrl: FOLDER_URL.replace('file:///', 'file://server/') + 'index.html' },
      'a sibling folder with the same prefix': {
        ...OUR_WINDOW,
        frameUrl: FOLDER_URL.replace(/\/$/, '-evil/index.html'),
      },
    };
    for (const [what, sender] of Object.entries(refused)) expect(isTrustedSender(sender, TRUSTED), what).toBe(false);
  });
});

describe('studio:call', () => {
  it('answers a valid call from our window with the checked params (defaults filled in)', async () => {
    const { api, calls } = recordingApi();
    const reply = await answerCall(api, TRUSTED, OUR_WINDOW, 'runs.get', { id: 3 }, ASK_NOTHING);
    expect(reply).toEqual({ ok: true, value: { answered: true } });
    expect(calls).toEqual([{ method: 'runs.get', params: { id: 3, logLines: 200 } }]);
  });

  it('refuses unknown methods and bad params with a one-line ApiError, before the API sees them', async () => {
    const { api, calls } = recordingApi();
    const bad: [unknown, unknown, RegExp][] = [
      ['fs.readFile', { path: '/etc/passwd' }, /unknown method "fs\.readFile"/],
      [42, {}, /unknown method 42/],
      ['runs.get', { id: -1 }, /^runs\.get: params\.id: /],
      ['runs.get', { id: 1, extra: true }, /^runs\.get: params: .*extra/],
      ['runs.start', { job: { method: 'lora' } }, /^runs\.start: params\.job\./],
      ['settings.set', 'device=cpu', /^settings\.set: params: /],
    ];
    for (const [method, params, message] of bad) {
      const reply = await answerCall(api, TRUSTED, OUR_WINDOW, method, params, ASK_NOTHING);
      expect(reply.ok, String(method)).toBe(false);
      if (reply.ok) continue;
      expect(reply.error.name).toBe('ApiError');
      expect(reply.error.message).toMatch(message);
      expect(reply.error.message).not.toContain('\n');
    }
    expect(calls).toEqual([]);
  });

  it('refuses every message from anything but our window, whatever it asks', async () => {
    const { api, calls } = recordingApi();
    const reply = await answerCall(
      api,
      TRUSTED,
      { ...OUR_WINDOW, frameUrl: 'https://evil.example/' },
      'settings.get',
      {},
      ASK_NOTHING,
    );
    expect(reply).toEqual({
      ok: false,
      error: { name: 'ApiError', message: 'message refused: not from the studio window (https://evil.example/)' },
    });
    expect(calls).toEqual([]);
  });

  it('passes the API own errors on by name, so the UI tells bad input from a bug', async () => {
    const { api } = recordingApi(() => {
      throw new UserError('model.safetensors: not found');
    });
    expect(await answerCall(api, TRUSTED, OUR_WINDOW, 'models.list', {}, ASK_NOTHING)).toEqual({
      ok: false,
      error: { name: 'UserError', message: 'model.safetensors: not found' },
    });
  });
});

describe('deletes', () => {
  it('are asked in the main process before the API sees them, so a script in the page cannot delete alone', async () => {
    const deletes: [string, unknown][] = [
      ['runs.delete', { id: 1 }],
      ['adapters.delete', { id: 2, deleteFiles: true }],
      ['adapters.delete', { id: 2 }],
      ['models.delete', { id: 3 }],
      ['datasets.delete', { id: 4 }],
    ];
    for (const [method, params] of deletes) {
      const { api, calls } = recordingApi();
      const questions: string[] = [];
      const declined = await answerCall(
        api,
        TRUSTED,
        OUR_WINDOW,
        method,
        params,
        async (q) => (questions.push(q), false),
      );
      expect(declined, method).toEqual({
        ok: false,
        error: { name: 'UserError', message: `${method}: not done; you chose to keep it` },
      });
      expect(calls).toEqual([]);
      const accepted = await answerCall(
        api,
        TRUSTED,
        OUR_WINDOW,
        method,
        params,
        async (q) => (questions.push(q), true),
      );
      expect(accepted).toEqual({ ok: true, value: { answered: true } });
      expect(calls.map((c) => c.method)).toEqual([method]);
      expect(questions).toHaveLength(2);
      expect(questions[0]).toMatch(/^(Delete|Remove) /);
    }
  });

  it('names what goes: deleting an adapter with its files says so', async () => {
    const asked: string[] = [];
    const ask = async (q: string) => (asked.push(q), false);
    await answerCall(recordingApi().api, TRUSTED, OUR_WINDOW, 'adapters.delete', { id: 7, deleteFiles: true }, ask);
    await answerCall(recordingApi().api, TRUSTED, OUR_WINDOW, 'adapters.delete', { id: 7 }, ask);
    expect(asked[0]).toMatch(/adapter 7 and the files/);
    expect(asked[1]).toMatch(/files stay on disk/);
  });
});

describe('DevTools', () => {
  it('are off in an installed app, in the window and in the menu', () => {
    expect(windowOptions('/app/preload.cjs', true).webPreferences!.devTools).toBe(false);
    expect(windowOptions('/app/preload.cjs', false).webPreferences!.devTools).toBe(true);
    const roles = (packaged: boolean) => (viewMenu(packaged).submenu as { role?: string }[]).map((item) => item.role);
    expect(roles(true)).not.toContain('toggleDevTools');
    expect(roles(true)).not.toContain('reload');
    expect(roles(false)).toContain('toggleDevTools');
  });
});

describe('studio:pick', () => {
  it('opens a file or folder dialog for a valid request from our window', async () => {
    const seen: unknown[] = [];
    const choose = async (request: unknown) => (seen.push(request), '/home/me/data.jsonl');
    const reply = await answerPick(choose, TRUSTED, OUR_WINDOW, {
      kind: 'file',
      filters: [{ name: 'Data', extensions: ['jsonl', 'csv'] }],
    });
    expect(reply).toEqual({ ok: true, value: '/home/me/data.jsonl' });
    expect(seen).toEqual([{ kind: 'file', filters: [{ name: 'Data', extensions: ['jsonl', 'csv'] }] }]);
    expect(openDialogProperties(parsePickRequest({ kind: 'file' }))).toEqual(['openFile']);
    expect(openDialogProperties(parsePickRequest({ kind: 'folder' }))).toEqual(['openDirectory', 'createDirectory']);
  });

  it('refuses bad requests and strangers without opening anything', async () => {
    const choose = async () => expect.unreachable('no dialog for a refused request');
    for (const request of [
      { kind: 'anything' },
      { kind: 'file', filters: [{ name: 'x', extensions: ['.jsonl'] }] },
      { kind: 'file', defaultPath: '/etc' },
      null,
    ]) {
      const reply = await answerPick(choose, TRUSTED, OUR_WINDOW, request);
      expect(reply.ok).toBe(false);
      if (!reply.ok) expect(reply.error.message).toMatch(/^pick: request/);
    }
    expect((await answerPick(choose, TRUSTED, { ...OUR_WINDOW, webContentsId: 9 }, { kind: 'file' })).ok).toBe(false);
  });
});

describe('the sources', () => {
  const sources = fs
    .readdirSync(ELECTRON_DIR)
    .filter((f) => /\.c?ts$/.test(f))
    .map((f) => ({ file: f, text: fs.readFileSync(path.join(ELECTRON_DIR, f), 'utf8') }));

  it('never weaken the window: no Node in the renderer, web security, isolation and sandbox stay on', () => {
    expect(sources.length).toBeGreaterThanOrEqual(5);
    for (const { file, text } of sources) {
      expect(text, file).not.toMatch(/nodeIntegration\w*\s*:\s*true/);
      expect(text, file).not.toMatch(/webSecurity\s*:\s*false/);
      expect(text, file).not.toMatch(/allowRunningInsecureContent/);
      expect(text, file).not.toMatch(/contextIsolation\s*:\s*false|sandbox\s*:\s*false|webviewTag\s*:\s*true/);
    }
  });

  it('keep the decisions free of Electron at run time (type imports only), so they are tested here', () => {
    for (const { file, text } of sources.filter((s) => !['main.ts', 'preload.cts'].includes(s.file))) {
      expect(text, file).not.toMatch(/^import (?!type ).*from 'electron'/m);
    }
  });

  it('expose one bridge from the preload, on the channels main listens on, never ipcRenderer itself', () => {
    const preload = sources.find((s) => s.file === 'preload.cts')!.text;
    expect(preload.match(/exposeInMainWorld\(/g)).toHaveLength(1);
    expect(preload).toContain("exposeInMainWorld('peftStudio', bridge)");
    for (const channel of Object.values(CHANNELS)) expect(preload).toContain(`'${channel}'`);
    expect(
      [...preload.matchAll(/'(studio:[a-z]+)'/g)]
        .map((m) => m[1])
        .every((c) => (Object.values(CHANNELS) as string[]).includes(c)),
    ).toBe(true);
    // The preload may only require 'electron' when sandboxed: no other module at run time.
    expect([...preload.matchAll(/^import (?!type ).*from '([^']+)'/gm)].map((m) => m[1])).toEqual(['electron']);
  });

  it("rebuild a failed call's error as shared/errors.ts's fromWire does, requiring nothing but electron", async () => {
    // The preload as Electron runs it (compiled to CommonJS), with an Electron stand-in that answers every call with a
    // failure.
    const preload = sources.find((s) => s.file === 'preload.cts')!.text;
    const { outputText } = ts.transpileModule(preload, {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
    });
    let reply: IpcReply<unknown> = { ok: true, value: null };
    let bridge: DesktopBridge | null = null;
    const electron = {
      contextBridge: { exposeInMainWorld: (_key: string, api: DesktopBridge) => (bridge = api) },
      ipcRenderer: { invoke: async () => reply },
    };
    const requireElectron = (id: string) => {
      if (id !== 'electron') throw new Error(`the preload requires ${id}`);
      return electron;
    };
    new Function('require', 'exports', outputText)(requireElectron, {});

    for (const thrown of [
      new UserError('bad input\n  on two lines'),
      new UserError('must be positive', { field: 'learningRate' }),
      new ApiError('no method "runs.nope"'),
      new TypeError('x is undefined'),
      new Error('the engine process was killed (SIGKILL)'),
    ]) {
      const wire = toWire(thrown);
      reply = { ok: false, error: wire };
      const rebuilt = (await bridge!.call('runs.list', {}).catch((err: unknown) => err)) as Record<string, unknown>;
      const expected = fromWire(wire) as unknown as Record<string, unknown>;
      expect(rebuilt).toBeInstanceOf(Error);
      // Every field of the wire error as fromWire rebuilds it; only the class differs (the preload cannot load
      // UserError).
      for (const key of new Set(['name', 'message', ...Object.keys(wire)]))
        expect(rebuilt[key], `${thrown.name} ${key}`).toEqual(expected[key]);
    }
  });
});

describe('packaging', () => {
  const require = createRequire(import.meta.url);
  const yaml = require('js-yaml') as { load(text: string): unknown };
  const config = yaml.load(fs.readFileSync(path.join(ROOT, 'electron-builder.yml'), 'utf8')) as Record<string, never>;

  it('is a valid electron-builder configuration', async () => {
    const { validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
      validateConfiguration(config: unknown, logger: unknown): Promise<void>;
    };
    const { DebugLogger } = require('builder-util') as { DebugLogger: new (enabled: boolean) => unknown };
    await expect(validateConfiguration(config, new DebugLogger(false))).resolves.toBeUndefined();
  });

  it('unpacks the native modules and the demo model from the asar, and builds every platform installer', () => {
    const unpacked: string[] = config.asarUnpack;
    for (const module of ['onnxruntime-node', 'better-sqlite3', '@huggingface/tokenizers'])
      expect(unpacked).toContain(`node_modules/${module}/**`);
    expect(unpacked).toContain('resources/demo/**');
    expect(config.linux).toMatchObject({ target: ['AppImage', 'deb'] });
    expect(config.win).toMatchObject({ target: ['nsis'] });
    expect(config.mac).toMatchObject({ target: ['dmg'] });
    expect(config.files).toEqual(expect.arrayContaining(['dist/**', 'resources/**', 'package.json']));
    // The engine is forked as Electron-run-as-Node: turning this fuse off would stop every training run.
    expect(config.electronFuses).toMatchObject({ runAsNode: true });
  });

  it('starts the app from the built main process and never downloads Electron during npm install', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.main).toBe('dist/main/electron/main.js');
    expect(fs.existsSync(path.join(ROOT, 'main/electron/main.ts'))).toBe(true);
    expect(pkg.allowScripts.electron).toBe(false);
    expect(pkg.scripts.start).toMatch(/electron \.$/);
    expect(pkg.scripts.dist).toMatch(/electron-builder$/);
  });
});
