// Fetching repo files into the shared Hugging Face cache: resumable, verified, with byte-level progress.
// The library lists the files (listFiles); the bytes are fetched here because its downloadFileToCacheDir neither
// resumes (it always starts over, in a differently named temp file), nor verifies the sha256, nor reports progress.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { listFiles } from '@huggingface/hub';
import { UserError } from '../../shared/errors.js';
import { credentials, repoPageUrl, type HubAccess, type HubRepo } from './access.js';
import {
  blobPath,
  cachedSize,
  checkHash,
  checkRepoPath,
  checkRevision,
  linkIntoSnapshot,
  snapshotDir,
  snapshotFile,
  writeRef,
} from './cache.js';
import { explainHubError, formatBytes, networkCode, shortQuote, type ErrorContext } from './errors.js';

export interface RepoFile {
  path: string;
  size: number;
  /** The blob's name in the cache, as Python names it: the LFS sha256, or the git blob sha1 for small files. */
  etag: string;
  /** Stored with LFS (etag is the content's sha256) rather than in git (etag is its git blob sha1). */
  lfs: boolean;
}

export interface SnapshotPlan {
  repo: HubRepo;
  /** What the user asked for: a branch, tag or commit. */
  revision: string;
  /** The commit it resolved to: the snapshot folder's name. */
  commit: string;
  files: RepoFile[];
  totalBytes: number;
}

export interface DownloadProgress {
  file: string;
  fileBytes: number;
  fileSize: number;
  /** Bytes of the whole plan in place so far, cached files included. */
  doneBytes: number;
  totalBytes: number;
  /** 1-based position of `file` in the plan. */
  index: number;
  count: number;
}

export interface DownloadResult {
  snapshotDir: string;
  commit: string;
  files: string[];
  /** Bytes that came over the network in this call. */
  fetchedBytes: number;
  /** Files already in the cache (ours or Python's), not requested. */
  cachedFiles: number;
}

const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** What to do once the cause is fixed, in the words of whoever reads the error: the GUI's error has a Retry button. */
function tryAgain(hub: Pick<HubAccess, 'audience'>): string {
  return hub.audience === 'gui' ? 'press Retry' : 'run the same command again';
}

/** tryAgain for a download: the partial file is kept, so trying again resumes it. */
function resumeHint(hub: Pick<HubAccess, 'audience'>): string {
  return `${tryAgain(hub)} to resume`;
}

/** undici's and the system's codes for a body cut short, in words. */
const HOW_IT_BROKE: Record<string, string> = {
  ECONNRESET: 'reset',
  UND_ERR_SOCKET: 'closed by the server',
  UND_ERR_BODY_TIMEOUT: 'timed out',
  ETIMEDOUT: 'timed out',
  EPIPE: 'broken',
};

export function errorContext(hub: HubAccess, repo: HubRepo, retry = resumeHint(hub)): ErrorContext {
  return {
    audience: hub.audience ?? 'cli',
    repoId: repo.name,
    repoUrl: repoPageUrl(hub, repo),
    hubUrl: hub.hubUrl,
    retry,
    token: hub.token,
  };
}

/**
 * The repo's files at `commit` that `select` keeps, with the sizes and hashes the Hub lists for them; paths and hashes
 * name files in the cache, so each is checked before it is used.
 */
export async function listRepoFiles(
  hub: HubAccess,
  repo: HubRepo,
  commit: string,
  select: (file: string) => boolean,
): Promise<RepoFile[]> {
  const files: RepoFile[] = [];
  try {
    for await (const entry of listFiles({
      repo,
      revision: commit,
      recursive: true,
      hubUrl: hub.hubUrl,
      fetch: hub.fetch,
      ...credentials(hub),
    })) {
      if (entry.type !== 'file' || !select(entry.path)) continue;
      checkRepoPath(repo, entry.path);
      const name = shortQuote(entry.path);
      const etag = entry.lfs ? entry.lfs.oid : entry.oid;
      checkHash(repo, etag, `the ${entry.lfs ? 'lfs.oid' : 'oid'} of ${name}`, 'object');
      if (entry.lfs && entry.oid !== undefined) checkHash(repo, entry.oid, `the oid of ${name}`, 'object');
      const size = entry.lfs ? entry.lfs.size : entry.size;
      if (!Number.isSafeInteger(size) || size < 0) {
        throw new UserError(`${repo.name}: the Hub sent ${shortQuote(size)} as the size of ${name}, not a byte count`);
      }
      files.push({ path: entry.path, size, etag, lfs: entry.lfs !== undefined });
    }
  } catch (err) {
    throw explainHubError(err, `list files of ${repo.name}`, errorContext(hub, repo));
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : 1));
}

function resolveUrl(hub: HubAccess, repo: HubRepo, commit: string, file: string): string {
  const encoded = file.split('/').map(encodeURIComponent).join('/');
  return `${hub.hubUrl}/${repo.type === 'dataset' ? 'datasets/' : ''}${repo.name}/resolve/${commit}/${encoded}`;
}

/** Git hashes a blob as sha1("blob <size>\0" + content): the oid the Hub lists for files kept in git. */
function contentHash(file: RepoFile): Hash {
  if (file.lfs) return createHash('sha256');
  return createHash('sha1').update(`blob ${file.size}\0`);
}

async function hashExisting(hash: Hash, file: string): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
}

/**
 * Streams the file into blobs/<etag>.incomplete, continuing a partial one with a Range request, then checks size and
 * hash before renaming it to its blob: a file in the cache is always complete and what the Hub lists.
 */
async function downloadBlob(
  hub: HubAccess,
  repo: HubRepo,
  commit: string,
  file: RepoFile,
  blob: string,
  onBytes: (bytes: number) => void,
): Promise<number> {
  const what = `download ${repo.name} ${file.path}`;
  const incomplete = blobPath(hub.cacheDir, repo, file.etag, '.incomplete');
  let have = cachedSize(incomplete) ?? 0;
  if (have > file.size) {
    fs.rmSync(incomplete);
    have = 0;
  }
  let hash = contentHash(file);
  // Before the request, so the silence watchdog never counts the time it takes to hash a large partial file.
  if (have > 0) await hashExisting(hash, incomplete);
  let received = 0;
  const retry = resumeHint(hub);

  // A partial file already whole (the process stopped before the rename) only needs checking.
  if (have < file.size || file.size === 0) {
    const headers: Record<string, string> = hub.token ? { Authorization: `Bearer ${hub.token}` } : {};
    if (have > 0) headers.Range = `bytes=${have}-`;
    // A connection that stays open but sends nothing would hang the download forever: abort it once it is silent.
    const stallMs = hub.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const silence = new AbortController();
    const watchdog = setTimeout(() => silence.abort(), stallMs);
    const timedOut = () =>
      new UserError(
        `${what}: connection timed out (nothing received for ${stallMs / 1000} s) after ${formatBytes(have)} of ${formatBytes(file.size)}; ${retry}`,
      );
    try {
      let response: Response;
      try {
        response = await hub.fetch(resolveUrl(hub, repo, commit, file.path), { headers, signal: silence.signal });
      } catch (err) {
        if (silence.signal.aborted) throw timedOut();
        throw explainHubError(err, what, errorContext(hub, repo));
      }
      const resumed = have > 0 && response.status === 206;
      if (resumed) {
        const start = Number(/^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1]);
        if (start !== have) {
          await response.body?.cancel();
          throw new UserError(
            `${what}: the server resumed at byte ${start}, not ${have}; delete ${incomplete} and ${tryAgain(hub)}`,
          );
        }
      } else {
        have = 0; // a 200 answer is the whole file: start over
        hash = contentHash(file);
      }
      fs.mkdirSync(path.dirname(blob), { recursive: true });
      const out = await fs.promises.open(incomplete, resumed ? 'a' : 'w');
      try {
        if (!response.body) throw new UserError(`${what}: the server sent no body`);
        for await (const chunk of response.body) {
          watchdog.refresh();
          await out.write(chunk);
          hash.update(chunk);
          have += chunk.byteLength;
          received += chunk.byteLength;
          if (have >= file.size) break; // the caller reports the finished file once
          onBytes(have);
        }
        await out.sync();
      } catch (err) {
        if (err instanceof UserError) throw err;
        if (silence.signal.aborted) throw timedOut();
        const code = networkCode(err);
        throw new UserError(
          `${what}: connection ${HOW_IT_BROKE[code] ?? `lost (${code})`} after ${formatBytes(have)} of ${formatBytes(file.size)}; ${retry}`,
        );
      } finally {
        await out.close();
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  if (have < file.size)
    throw new UserError(
      `${what}: the connection closed after ${formatBytes(have)} of ${formatBytes(file.size)}; ${retry}`,
    );
  const digest = hash.digest('hex');
  if (have !== file.size || digest !== file.etag) {
    fs.rmSync(incomplete, { force: true });
    const problem =
      have !== file.size
        ? `received more than the ${file.size} bytes the Hub lists`
        : `${file.lfs ? 'sha256' : 'git sha1'} of the received bytes is ${digest.slice(0, 12)}..., the Hub lists ${file.etag.slice(0, 12)}...`;
    throw new UserError(
      `${what}: checksum mismatch (${problem}); the download was deleted and nothing was cached; ${tryAgain(hub)}`,
    );
  }
  fs.renameSync(incomplete, blob);
  return received;
}

/**
 * Puts one file in snapshots/<commit>/, reusing what the cache already holds (a snapshot entry or the blob, from this
 * tool or from Python) without a request. `fetched` is null when the file came from the cache.
 */
export async function fetchIntoCache(
  hub: HubAccess,
  repo: HubRepo,
  commit: string,
  file: RepoFile,
  onBytes: (bytes: number) => void = () => {},
): Promise<{ path: string; fetched: number | null }> {
  const pointer = snapshotFile(hub.cacheDir, repo, commit, file.path);
  if (cachedSize(pointer) === file.size) return { path: pointer, fetched: null };
  const blob = blobPath(hub.cacheDir, repo, file.etag);
  const fetched = cachedSize(blob) === file.size ? null : await downloadBlob(hub, repo, commit, file, blob, onBytes);
  linkIntoSnapshot(blob, pointer);
  return { path: pointer, fetched };
}

/**
 * Fetches every file of the plan, then records refs/<revision>: the snapshot folder, ready to open. Every place the
 * plan names in the cache is checked before the first byte is fetched.
 */
export async function downloadSnapshot(
  hub: HubAccess,
  plan: SnapshotPlan,
  onProgress: (progress: DownloadProgress) => void = () => {},
): Promise<DownloadResult> {
  checkRevision(hub.cacheDir, plan.repo, plan.revision);
  snapshotDir(hub.cacheDir, plan.repo, plan.commit);
  for (const file of plan.files) {
    snapshotFile(hub.cacheDir, plan.repo, plan.commit, file.path);
    blobPath(hub.cacheDir, plan.repo, file.etag);
  }
  let done = 0;
  let fetchedBytes = 0;
  let cachedFiles = 0;
  for (const [i, file] of plan.files.entries()) {
    const report = (fileBytes: number) =>
      onProgress({
        file: file.path,
        fileBytes,
        fileSize: file.size,
        doneBytes: done + fileBytes,
        totalBytes: plan.totalBytes,
        index: i + 1,
        count: plan.files.length,
      });
    const { fetched } = await fetchIntoCache(hub, plan.repo, plan.commit, file, report);
    if (fetched === null) cachedFiles++;
    fetchedBytes += fetched ?? 0;
    report(file.size);
    done += file.size;
  }
  writeRef(hub.cacheDir, plan.repo, plan.revision, plan.commit);
  const dir = snapshotDir(hub.cacheDir, plan.repo, plan.commit);
  fs.mkdirSync(dir, { recursive: true });
  return { snapshotDir: dir, commit: plan.commit, files: plan.files.map((f) => f.path), fetchedBytes, cachedFiles };
}
