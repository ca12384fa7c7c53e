// The Hugging Face cache layout, shared with Python's huggingface_hub:
//   <cache>/models--org--name/blobs/<etag>                  file contents, named by LFS sha256 or git blob sha1
//   <cache>/models--org--name/snapshots/<commit>/<path>     relative symlinks to the blobs
//   <cache>/models--org--name/refs/<revision>               the commit a branch or tag pointed to
// A download in progress is blobs/<etag>.incomplete, as Python names it, so either tool resumes the other's.
// Every name in these paths comes from the Hub (commit, hashes, file paths: HF_ENDPOINT may be any server) or from the
// user (repo id, revision): each is checked for its form, and each path for staying inside the cache with symlinks
// followed, before anything there is read, written, linked or deleted.
import fs from 'node:fs';
import path from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';
import { UserError } from '../../shared/errors.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import { checkRepoName, type HubRepo } from './access.js';
import { shortQuote } from './errors.js';

export const COMMIT_HASH = /^[0-9a-f]{40}$/;
/** A blob's name: a git blob sha1 (40 hex digits) or an LFS sha256 (64). */
export const OBJECT_ID = /^([0-9a-f]{40}|[0-9a-f]{64})$/;

const HASH_FORMS = {
  commit: [COMMIT_HASH, 'a 40-digit hex commit hash'],
  object: [OBJECT_ID, 'a 40- or 64-digit hex hash'],
} as const;

/** A commit names the snapshot folder and a file hash its blob: refuse anything else the Hub sends in their place. */
export function checkHash(
  repo: HubRepo,
  value: unknown,
  field: string,
  form: keyof typeof HASH_FORMS,
): asserts value is string {
  const [pattern, expected] = HASH_FORMS[form];
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new UserError(`${repo.name}: the Hub sent ${shortQuote(value)} as ${field}, not ${expected}; refusing it`);
  }
}

/** A relative path of plain names: no absolute path, drive, empty, `.` or `..` part, or control character. */
function isPlainRelative(file: unknown): file is string {
  if (typeof file !== 'string' || !file || path.isAbsolute(file) || /^[a-zA-Z]:/.test(file)) return false;
  if ([...file].some((c) => c.charCodeAt(0) < 0x20)) return false;
  return file.split(/[\\/]/).every((part) => part !== '' && part !== '.' && part !== '..');
}

/** Repo paths come from the Hub's file listing and are joined onto the cache: refuse any that would leave it. */
export function checkRepoPath(repo: HubRepo, file: unknown): asserts file is string {
  if (!isPlainRelative(file)) {
    throw new UserError(`${repo.name}: the Hub listed an unsafe file path ${shortQuote(file)}; refusing to write it`);
  }
}

/** Where `file` is, or would be once created: every symlink on the way followed, dangling ones included. */
function realTarget(file: string, hops = 0): string {
  try {
    return fs.realpathSync(file);
  } catch {
    // It, or a folder on the way, does not exist yet: resolve its parent, then this name.
  }
  const parent = path.dirname(file);
  if (parent === file) return file;
  const here = path.join(realTarget(parent, hops), path.basename(file));
  let link: string;
  try {
    link = fs.readlinkSync(here);
  } catch {
    return here;
  }
  // A link to nothing: writing through it would create its target, wherever that is.
  if (hops >= 40) throw new UserError(`${file}: too many levels of symbolic links`);
  return realTarget(path.resolve(path.dirname(here), link), hops + 1);
}

/** `parts` under the repo's cache folder, refused unless the result stays in the cache once symlinks are followed. */
function inRepoCache(cacheDir: string, repo: HubRepo, ...parts: string[]): string {
  const target = path.join(repoCacheDir(cacheDir, repo), ...parts);
  const inside = path.relative(realTarget(path.resolve(cacheDir)), realTarget(path.resolve(target)));
  if (!inside || inside === '..' || inside.startsWith(`..${path.sep}`) || path.isAbsolute(inside)) {
    const shown = shortQuote(path.relative(cacheDir, target), 200);
    throw new UserError(`${repo.name}: ${shown} leads outside the Hub cache ${cacheDir}; refusing to touch it`);
  }
  return target;
}

export function repoCacheDir(cacheDir: string, repo: HubRepo): string {
  checkRepoName(repo);
  return path.join(cacheDir, getRepoFolderName(repo));
}

export function snapshotDir(cacheDir: string, repo: HubRepo, commit: string): string {
  checkHash(repo, commit, 'the commit sha', 'commit');
  return inRepoCache(cacheDir, repo, 'snapshots', commit);
}

/** snapshots/<commit>/<path>: where a repo file appears, a link to its blob. */
export function snapshotFile(cacheDir: string, repo: HubRepo, commit: string, file: string): string {
  checkHash(repo, commit, 'the commit sha', 'commit');
  checkRepoPath(repo, file);
  return inRepoCache(cacheDir, repo, 'snapshots', commit, file);
}

/** blobs/<etag>, or blobs/<etag>.incomplete while it downloads. */
export function blobPath(cacheDir: string, repo: HubRepo, etag: string, suffix: '' | '.incomplete' = ''): string {
  checkHash(repo, etag, 'a file hash', 'object');
  return inRepoCache(cacheDir, repo, 'blobs', `${etag}${suffix}`);
}

/** refs/<revision>; a revision such as pr/1 is a folder and a file, as Python writes it. */
function refFile(cacheDir: string, repo: HubRepo, revision: string): string {
  if (!isPlainRelative(revision)) {
    throw new UserError(`${repo.name}: revision ${shortQuote(revision)} is not a branch, tag or commit name`);
  }
  return inRepoCache(cacheDir, repo, 'refs', revision);
}

/** Refuses a revision that could not be recorded under refs/: checked before anything is requested. */
export function checkRevision(cacheDir: string, repo: HubRepo, revision: string): void {
  refFile(cacheDir, repo, revision);
}

export function readRef(cacheDir: string, repo: HubRepo, revision: string): string | null {
  if (COMMIT_HASH.test(revision)) return revision;
  const file = refFile(cacheDir, repo, revision);
  try {
    const commit = fs.readFileSync(file, 'utf8').trim();
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
