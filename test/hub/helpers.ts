// Shared set-up for the Hub tests: a tiny real model served by the loopback Hub, and access pointed at it.
import fs from 'node:fs';
import path from 'node:path';
import { hubFetch } from '../../main/hub/errors.js';
import type { HubAccess } from '../../main/hub/access.js';
import { createTinyModel, type TinyModelOptions } from '../../main/model/tinyModel.js';
import { tempDir } from '../support/engine.js';
import type { HubServer } from '../support/hubServer.js';

/** Files a model repo has that the studio does not need: they must never be fetched. */
export const UNNEEDED_MODEL_FILES = {
  'README.md': '# a model\n',
  'pytorch_model.bin': Buffer.alloc(4096, 7),
  'original/consolidated.00.pth': Buffer.alloc(2048, 9),
  'onnx/model.onnx': Buffer.alloc(1024, 3),
};

/** The files of a tiny model folder (config.json, safetensors, tokenizer...), as a repo would hold them. */
export function tinyModelFiles(options: Partial<TinyModelOptions> = {}): Record<string, Buffer> {
  const dir = path.join(tempDir('hub-model'), 'model');
  createTinyModel(dir, options);
  return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

export function hubFor(server: HubServer, cacheDir: string, token?: string): HubAccess {
  return { hubUrl: server.url, token, cacheDir, offline: false, fetch: hubFetch(fetch, server.url) };
}

/** Requests that fetched file bytes (resolve or the CDN redirect target). */
export function byteRequests(server: HubServer) {
  return server.requests.filter((r) => r.path.includes('/resolve/') || r.path.startsWith('/cdn/'));
}

/** An environment with no trace of the developer's own Hugging Face setup. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR };
  return Object.fromEntries(Object.entries({ ...env, ...extra }).filter(([, v]) => v !== undefined));
}
