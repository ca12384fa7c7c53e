// The Hugging Face cache layout, shared with Python's huggingface_hub:
//   <cache>/models--org--name/blobs/<etag>                  file contents, named by LFS sha256 or git blob sha1
//   <cache>/models--org--name/snapshots/<commit>/<path>     relative symlinks to the blobs
//   <cache>/models--org--name/refs/<revision>               the commit a branch or tag pointed to
// A download in progress is blobs/<etag>.incomplete, as Python names it, so either tool resumes the other's.
import fs from 'node:fs';
import path from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';
import { UserError } from '../../shared/errors.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import type { HubRepo } from './access.js';

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

export function repoCacheDir(cacheDir: string, repo: HubRepo): string {
  return path.join(cacheDir, getRepoFolderName(repo));
}

export function snapshotDir(cacheDir: string, repo: HubRepo, commit: string): string {
  return path.join(repoCacheDir(cacheDir, repo), 'snapshots', commit);
}

export function blobPath(cacheDir: string, repo: HubRepo, etag: string): string {
  return path.join(repoCacheDir(cacheDir, repo), 'blobs', etag);
}

/** Repo paths come from the Hub's file listing and are joined onto the cache: refuse any that would leave it. */
export function checkRepoPath(file: string): void {
  const parts = file.split(/[\\/]/);
  if (!file || path.isAbsolute(file) || /^[a-zA-Z]:/.test(file) || parts.some((p) => p === '..' || p === '')) {
    throw new UserError(`the Hub listed an unsafe file path ${JSON.stringify(file)}; refusing to write it`);
  }
}

function refFile(cacheDir: string, repo: HubRepo, revision: string): string {
  checkRepoPath(revision);
  return path.join(repoCacheDir(cacheDir, repo), 'refs', revision);
}

export function readRef(cacheDir: string, repo: HubRepo, revision: string): string | null {
  if (COMMIT_HASH.test(revision)) return revision;
  try {
    const commit = fs.readFileSync(refFile(cacheDir, repo, revision), 'utf8').trim();
    return COMMIT_HASH.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

export function writeRef(cacheDir: string, repo: HubRepo, revision: string, commit: string): void {
  if (revision !== commit) writeFileAtomic(refFile(cacheDir, repo, revision), commit);
}

/** The cached snapshot for a revision, when one is there (for offline use); null otherwise. */
export function cachedSnapshot(cacheDir: string, repo: HubRepo, revision: string): string | null {
  const commit = readRef(cacheDir, repo, revision);
  if (!commit) return null;
  const dir = snapshotDir(cacheDir, repo, commit);
  return fs.existsSync(dir) ? dir : null;
}

/** Size of the file a snapshot entry resolves to, or null when it (or its blob) is missing. */
export function cachedSize(file: string): number | null {
  try {
    return fs.statSync(file).size;
  } catch {
    return null;
  }
}

/**
 * Points snapshots/<commit>/<path> at the blob with a relative symlink (so the cache can move), as Python does.
 * Where symlinks are not allowed (Windows without developer mode) the blob is copied, as Python does too.
 */
export function linkIntoSnapshot(blob: string, pointer: string): void {
  fs.mkdirSync(path.dirname(pointer), { recursive: true });
  fs.rmSync(pointer, { force: true });
  try {
    fs.symlinkSync(path.relative(path.dirname(pointer), blob), pointer);
  } catch {
    fs.copyFileSync(blob, pointer);
  }
}

/**
 * The Hub repo a local model folder came from, when it is a snapshot in a Hugging Face cache
 * (.../models--org--name/snapshots/<commit>): that is what the studio records as an adapter's base model.
 */
export function repoFromSnapshotPath(dir: string): { name: string; commit: string } | null {
  const match = /(?:^|[\\/])models--([^\\/]+)[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]?$/.exec(dir);
  if (!match) return null;
  return { name: match[1].split('--').join('/'), commit: match[2] };
}
