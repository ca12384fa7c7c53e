// Where the Hub is, which token speaks for the user, and where the cache lives: the same environment variables as
// Python's huggingface_hub, so both tools share one cache and one login.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { hubFetch, shortQuote, type Audience } from './errors.js';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

/**
 * A Hub repo id: organisation/name, letters, digits, - _ . ; each part starts and ends with a letter, digit or _, and
 * `..` and `--` appear nowhere (huggingface_hub's validate_repo_id): no part is `.`, `..` or a dotfile.
 */
export const HUB_REPO_ID = /^(?!.*(\.\.|--))[A-Za-z0-9]([\w.-]*\w)?\/\w([\w.-]*\w)?$/;
/** The same, or a bare name (gpt2): the oldest models have no organisation. */
const HUB_REPO_NAME = /^(?!.*(\.\.|--))([A-Za-z0-9]([\w.-]*\w)?\/)?\w([\w.-]*\w)?$/;

/** A repo name becomes a cache folder name and part of every URL: refuse one that could point anywhere else. */
export function checkRepoName(repo: HubRepo): void {
  if (!HUB_REPO_NAME.test(repo.name)) {
    throw new UserError(`${shortQuote(repo.name)} is not a Hub repo id (organisation/name: letters, digits, - _ .)`);
  }
}

export interface HubAccess {
  /** https://huggingface.co, or HF_ENDPOINT (a mirror, or the tests' loopback server). */
  hubUrl: string;
  /** Sent only in Authorization headers; never logged, stored or put in a message. */
  token?: string;
  /** The hub cache folder holding models--org--name/ and datasets--org--name/. */
  cacheDir: string;
  /** HF_HUB_OFFLINE=1: answer from the cache only. */
  offline: boolean;
  /** Every request goes through it (hubFetch: errors carry status and Hub error codes). */
  fetch: typeof fetch;
  /** Who reads the errors (their advice names HF_TOKEN and commands, or Settings and Retry); the CLI when absent. */
  audience?: Audience;
  /** A file download that receives nothing for this long is cut off as timed out (default 30 s). */
  stallTimeoutMs?: number;
}

type Env = Record<string, string | undefined>;

function hfHome(env: Env): string {
  return env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
}

/** As huggingface_hub resolves it: HF_HUB_CACHE, then HUGGINGFACE_HUB_CACHE, then HF_HOME/hub. */
export function hubCacheDir(env: Env = process.env): string {
  return env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? path.join(hfHome(env), 'hub');
}

/** HF_TOKEN, else the token `huggingface-cli login` saved (HF_TOKEN_PATH or HF_HOME/token). */
export function tokenFromEnv(env: Env = process.env): string | undefined {
  const fromEnv = env.HF_TOKEN?.trim() || env.HUGGING_FACE_HUB_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  try {
    return fs.readFileSync(env.HF_TOKEN_PATH ?? path.join(hfHome(env), 'token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function hubAccessFromEnv(env: Env = process.env, token: string | undefined = tokenFromEnv(env)): HubAccess {
  const hubUrl = (env.HF_ENDPOINT?.trim() || DEFAULT_HUB_URL).replace(/\/+$/, '');
  return {
    hubUrl,
    token,
    cacheDir: hubCacheDir(env),
    offline: ['1', 'true', 'yes', 'on'].includes((env.HF_HUB_OFFLINE ?? '').toLowerCase()),
    fetch: hubFetch(fetch, hubUrl),
  };
}

export type RepoType = 'model' | 'dataset';

export interface HubRepo {
  type: RepoType;
  /** organisation/name */
  name: string;
}

/** The repo's page, where gated repos are accepted: /org/name for models, /datasets/org/name for datasets. */
export function repoPageUrl(hub: Pick<HubAccess, 'hubUrl'>, repo: HubRepo): string {
  return `${hub.hubUrl}/${repo.type === 'dataset' ? 'datasets/' : ''}${repo.name}`;
}

/** The library's credential parameter: present only when there is a token. */
export function credentials(hub: HubAccess): { accessToken?: string } {
  return hub.token ? { accessToken: hub.token } : {};
}
