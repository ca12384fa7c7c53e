// The studio in a real browser for e2e tests: `peft-studio serve` on a fresh home (test/support/serve.ts) and Debian's
// Chromium driven by playwright-core, with pages that fail their test on any script error. Needs `npm run build`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { CLI, ROOT } from './cli.js';
import { serve, stopServe, type Served } from './serve.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface StudioBrowser {
  /** The studio's home folder (removed by close). */
  home: string;
  served: Served;
  browser: Browser;
  /** A page on the studio; `expectedErrors`: console errors a test causes on purpose (the others fail it). */
  openStudio(hash?: string, expectedErrors?: RegExp[]): Promise<Page>;
  /**
   * Stops serve as a user would (Ctrl+C), runs `whileStopped`, and starts serve again on the same port and folder: the
   * same URL.
   */
  restartServe(whileStopped?: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** `env`: more of serve's environment (HF_ENDPOINT for a Hub stand-in). */
export async function launchStudioBrowser(prefix: string, env: NodeJS.ProcessEnv = {}): Promise<StudioBrowser> {
  for (const needed of [CLI, path.join(ROOT, 'dist/renderer/index.html')]) {
    if (!fs.existsSync(needed)) throw new Error(`${needed} is missing: run npm run build first`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `peft-studio-${prefix}-`));
  const { HF_TOKEN: _token, HF_TOKEN_PATH: _tokenPath, ...inherited } = process.env;
  const serveEnv = {
    ...inherited,
    HF_HOME: path.join(home, 'hf-home'),
    XDG_DATA_HOME: path.join(home, 'xdg-data'),
    ...env,
  };
  let served = await serve(['--port', '0', '--home', home], { env: serveEnv });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  return {
    home,
    get served() {
      return served;
    },
    browser,
    async restartServe(whileStopped = async () => {}) {
      await stopServe(served);
      await whileStopped();
      served = await serve(['--port', served.url.port, '--home', home], { env: serveEnv });
    },
    async openStudio(hash = '', expectedErrors: RegExp[] = []) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      page.on('console', (message) => {
        // A 422 is a refusal the user must read (the API's one-line UserError); tests assert the alert that shows it.
        const expected = [/status of 422 \(Unprocessable/, ...expectedErrors];
        if (message.type() === 'error' && !expected.some((pattern) => pattern.test(message.text())))
          errors.push(message.text());
      });
      page.on('close', () => expect(errors, 'errors in the page').toEqual([]));
      await page.goto(served.url.href + hash);
      return page;
    },
    async close() {
      await browser.close();
      await stopServe(served);
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
