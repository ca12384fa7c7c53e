// What went wrong talking to the Hub, as one line that says what failed and what to do next. Every request (the
// library's and ours) goes through hubFetch, so HTTP failures carry the status and the Hub's X-Error-Code and
// Retry-After headers, which the library's own HubApiError drops.
import { UserError } from '../../shared/errors.js';

/** The Hub (or its CDN) answered with an HTTP error. */
export class HubHttpError extends Error {
  override name = 'HubHttpError';
  constructor(
    readonly status: number,
    readonly url: string,
    /** X-Error-Code: GatedRepo, RepoNotFound, RevisionNotFound, EntryNotFound... */
    readonly errorCode: string | null,
    /** The Hub's own explanation (X-Error-Message or the JSON body's `error`), one line. */
    readonly serverMessage: string | null,
    readonly retryAfter: string | null,
  ) {
    super(`HTTP ${status}${serverMessage ? `: ${serverMessage}` : ''}`);
  }
}

/** No HTTP answer at all: DNS, refused or reset connection, TLS. */
export class HubNetworkError extends Error {
  override name = 'HubNetworkError';
  constructor(
    readonly url: string,
    readonly code: string,
  ) {
    super(`cannot reach ${new URL(url).host} (${code})`);
  }
}

/** A UserError raised because the Hub could not be reached: the callers may fall back to the cache. */
export class HubUnreachableError extends UserError {}

function oneLine(text: string | null | undefined, max = 200): string | null {
  if (!text) return null;
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 3)}...` : line || null;
}

/** A value the Hub (or a caller) sent, for a message: quoted on one line and short, however long or odd it is. */
export function shortQuote(value: unknown, max = 80): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === undefined || value === null) return 'nothing';
  if (typeof value !== 'string') return `a JSON ${Array.isArray(value) ? 'array' : typeof value}`;
  const quoted = JSON.stringify(value.length > max ? `${value.slice(0, max - 3)}...` : value);
  return quoted.replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** The system error code behind a failed fetch (undici wraps it in `cause`), else the innermost message. */
export function networkCode(err: unknown): string {
  let current = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined;
  let message = '';
  for (let depth = 0; current && depth < 4; depth++) {
    if (typeof current.code === 'string') return current.code;
    if (typeof current.message === 'string' && current.message) message = current.message;
    current = current.cause as typeof current;
  }
  return oneLine(message, 60) ?? 'error';
}

async function serverMessage(response: Response): Promise<string | null> {
  const header = response.headers.get('x-error-message');
  if (header) return oneLine(header);
  try {
    const text = await response.text();
    if (response.headers.get('content-type')?.includes('json')) {
      const json = JSON.parse(text) as { error?: unknown; message?: unknown };
      return oneLine(
        typeof json.error === 'string' ? json.error : typeof json.message === 'string' ? json.message : null,
      );
    }
    return oneLine(text);
  } catch {
    return null;
  }
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * `fetch` for every Hub request: HTTP errors and unreachable hosts become HubHttpError and HubNetworkError, and the
 * Authorization header goes to `hubUrl`'s origin only.
 */
export function hubFetch(base: typeof fetch = fetch, hubUrl?: string): typeof fetch {
  const tokenOrigin = hubUrl === undefined ? null : originOf(hubUrl);
  if (tokenOrigin === undefined)
    throw new UserError(`HF_ENDPOINT ${shortQuote(hubUrl!)} is not a URL (such as https://huggingface.co)`);
  return async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    // The token is the Hub's alone: a URL the Hub hands out (a next page, a mirror's redirect) may lead elsewhere.
    if (tokenOrigin !== null && originOf(url) !== tokenOrigin && init?.headers) {
      const headers = new Headers(init.headers);
      headers.delete('authorization');
      init = { ...init, headers };
    }
    let response: Response;
    try {
      response = await base(input, init);
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new HubNetworkError(url, networkCode(err));
    }
    if (response.ok) return response;
    throw new HubHttpError(
      response.status,
      response.url || url,
      response.headers.get('x-error-code'),
      await serverMessage(response),
      response.headers.get('retry-after'),
    );
  };
}

/**
 * Who reads a message, hence how it says what to do: the CLI's user sets HF_TOKEN and passes flags, the GUI's enters
 * the token in Settings and presses Retry. The cause is worded the same for both.
 */
export type Audience = 'cli' | 'gui';

export interface ErrorContext {
  audience: Audience;
  /** The repo the request was about, e.g. "HuggingFaceTB/SmolLM2-135M". */
  repoId: string;
  /** Its page on the Hub, where gated repos are accepted. */
  repoUrl: string;
  hubUrl: string;
  /** What to do once the cause is fixed, e.g. "run the same command again to resume". */
  retry: string;
  /** Blanked out of the server's words, should a server echo it. */
  token?: string;
}

/** One line for the user: `what` failed, why, and what to do; never the token. */
export function explainHubError(err: unknown, what: string, ctx: ErrorContext): UserError {
  if (err instanceof UserError) return err;
  const explained = explain(err, what, ctx);
  if (ctx.token) explained.message = explained.message.split(ctx.token).join('hf_***');
  return explained;
}

function explain(err: unknown, what: string, ctx: ErrorContext): UserError {
  const tokens = `${ctx.hubUrl}/settings/tokens`;
  const gui = ctx.audience === 'gui';
  if (err instanceof HubNetworkError) {
    return new HubUnreachableError(
      `${what}: cannot reach ${new URL(err.url).host} (${err.code}); check the network connection${gui ? '' : ' (and HF_ENDPOINT if set)'}, then ${ctx.retry}`,
    );
  }
  if (err instanceof HubHttpError) {
    const said = err.serverMessage ? ` (the Hub says: ${err.serverMessage})` : '';
    const gated =
      err.errorCode === 'GatedRepo' || /\bgated\b|restricted|authorized list/i.test(err.serverMessage ?? '');
    switch (true) {
      case gated:
        return new UserError(
          `${what}: ${ctx.repoId} is a gated repo (${err.status}): accept its conditions at ${ctx.repoUrl} while logged in, then ${gui ? `enter a read token of that account in Settings (${tokens}) and ${ctx.retry}` : `set HF_TOKEN to a read token of that account (${tokens})`}`,
        );
      case err.status === 401:
        return new UserError(
          gui
            ? `${what}: not authorized (401): ${ctx.repoId} is private or does not exist, or the Hub token is missing, expired or invalid; enter a token from ${tokens} in Settings, then ${ctx.retry}`
            : `${what}: not authorized (401): ${ctx.repoId} is private or does not exist, or HF_TOKEN is missing, expired or invalid; set HF_TOKEN to a token from ${tokens}`,
        );
      case err.status === 403:
        return new UserError(
          `${what}: forbidden (403)${said}: the token ${gui ? 'in Settings' : 'in HF_TOKEN'} lacks permission for ${ctx.repoId} (uploads need a write token from ${tokens})`,
        );
      case err.status === 404 && err.errorCode === 'RevisionNotFound':
        return new UserError(
          `${what}: revision not found (404) in ${ctx.repoId}; check ${gui ? 'the revision' : '--revision'} (a branch, tag or commit hash)`,
        );
      case err.status === 404 && err.errorCode === 'EntryNotFound':
        return new UserError(`${what}: file not found (404) in ${ctx.repoId} at that revision`);
      case err.status === 404:
        return new UserError(
          `${what}: not found (404): no repo ${ctx.repoId} on ${new URL(ctx.hubUrl).host}; check the id (organisation/name)${gui ? '' : ' and, for a dataset, pass --dataset'}`,
        );
      case err.status === 429:
        return new UserError(
          `${what}: rate limited by the Hub (429); wait ${err.retryAfter ? `${err.retryAfter} s` : 'a few minutes'}, then ${ctx.retry}`,
        );
      case err.status >= 500:
        return new UserError(
          `${what}: the Hub failed with ${err.status}${said}; this is on the server side: ${ctx.retry} later`,
        );
      default:
        return new UserError(`${what}: the Hub answered ${err.status}${said}`);
    }
  }
  // The parser quotes what it could not parse: bytes of whatever the server sent, which no message repeats.
  if (err instanceof SyntaxError)
    return new UserError(`${what}: the Hub's answer is not valid JSON (a mirror or proxy in the way?); ${ctx.retry}`);
  return new UserError(`${what}: ${oneLine((err as Error)?.message ?? String(err)) ?? 'unknown error'}`);
}

/** Sizes as people read them: 12.3 MB, 270 MB, 1.5 GB (decimal units, as the Hub shows them). */
export function formatBytes(bytes: number): string {
  const units = [
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ] as const;
  for (const [unit, size] of units) {
    if (bytes >= size) {
      const value = bytes / size;
      return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${unit}`;
    }
  }
  return `${bytes} B`;
}
