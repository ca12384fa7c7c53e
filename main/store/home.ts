// Where the studio keeps its database, runs and checkpoints: PEFT_STUDIO_HOME, else the folder chosen in Settings
// (recorded in the platform's data folder, read at the next start), else the platform's data folder itself.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { writeFileAtomic } from '../util/atomicWrite.js';

export interface HomeEnvironment {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
}

const HERE: HomeEnvironment = { env: process.env, platform: process.platform };
const CHOSEN_FOLDER_FILE = 'storage-folder.txt';

/** The platform's data folder for the studio (where a chosen storage folder is recorded, too). */
export function platformDataDir({ env, platform }: HomeEnvironment = HERE): string {
  const home = os.homedir();
  if (platform === 'win32') return path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'PEFT Studio');
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'PEFT Studio');
  return path.join(env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'peft-studio');
}

/** The storage folder chosen in Settings, or null. */
export function chosenStudioHome(where: HomeEnvironment = HERE): string | null {
  const file = path.join(platformDataDir(where), CHOSEN_FOLDER_FILE);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() || null : null;
}

export function defaultStudioHome(where: HomeEnvironment = HERE): string {
  if (where.env.PEFT_STUDIO_HOME) return path.resolve(where.env.PEFT_STUDIO_HOME);
  return chosenStudioHome(where) ?? platformDataDir(where);
}

/** Where 4-bit copies of full-precision checkpoints are kept (main/model/quant/quantizeOnLoad.ts). */
export function quantizedCacheRoot(where: HomeEnvironment = HERE): string {
  return quantizedCacheIn(defaultStudioHome(where));
}

/** The 4-bit copies' folder in the studio folder `home`. */
export function quantizedCacheIn(home: string): string {
  return path.join(home, 'quantized');
}

/**
 * Folders of pseudo-filesystems, which hold no storage: a recursive mkdir under /proc loops forever. Checked on the
 * path as given and on the real path of its nearest existing folder (a link may lead there).
 */
const PSEUDO_ROOTS: Partial<Record<NodeJS.Platform, readonly string[]>> = {
  linux: ['/proc', '/sys', '/dev'],
  darwin: ['/dev'],
  win32: ['\\\\.\\'], // \\.\ device paths
};
/** Linux statfs types of pseudo-filesystems mounted elsewhere: proc, sysfs, devpts, debugfs, tracefs, cgroup(2). */
const PSEUDO_FILESYSTEMS = new Set([0x9fa0, 0x62656572, 0x1cd1, 0x64626720, 0x74726163, 0x27e0eb, 0x63677270]);
/** Missing folders created for a storage folder at most: a deeper one is a mistake, not a plan. */
const MAX_NEW_LEVELS = 32;

class UnfitFolder extends Error {}

function pathsFor(platform: NodeJS.Platform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

function checkNotPseudo(dir: string, platform: NodeJS.Platform): void {
  const { sep } = pathsFor(platform);
  const root = (PSEUDO_ROOTS[platform] ?? []).find((r) => dir === r || dir.startsWith(r.endsWith(sep) ? r : r + sep));
  if (root !== undefined) throw new UnfitFolder(`inside ${root}, a system folder`);
}

/** The nearest existing folder at or above `dir`, and the missing ones below it, top first. */
function existingAncestor(dir: string, platform: NodeJS.Platform): { existing: string; missing: string[] } {
  const paths = pathsFor(platform);
  const missing: string[] = [];
  for (let at = dir; missing.length <= MAX_NEW_LEVELS; at = paths.dirname(at)) {
    const stats = fs.statSync(at, { throwIfNoEntry: false });
    if (stats) {
      if (!stats.isDirectory()) throw new UnfitFolder('ENOTDIR');
      return { existing: at, missing: missing.reverse() };
    }
    if (paths.dirname(at) === at) break;
    missing.push(at);
  }
  throw new UnfitFolder(`more than ${MAX_NEW_LEVELS} folders would have to be created`);
}

/** Makes `dir` a writable folder: checked first, then created level by level, never recursively. */
function prepareFolder(dir: string, platform: NodeJS.Platform): void {
  checkNotPseudo(dir, platform);
  const { existing, missing } = existingAncestor(dir, platform);
  checkNotPseudo(fs.realpathSync(existing), platform);
  if (platform === 'linux' && PSEUDO_FILESYSTEMS.has(fs.statfsSync(existing).type)) {
    throw new UnfitFolder('on a system filesystem');
  }
  fs.accessSync(existing, fs.constants.W_OK);
  for (const level of missing) {
    try {
      fs.mkdirSync(level);
    } catch (err) {
      // Another process may have made it meanwhile; anything else there is not a folder.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(level).isDirectory()) throw err;
    }
  }
  fs.accessSync(dir, fs.constants.W_OK);
}

/**
 * Records `folder` (an absolute path, created if needed, and writable) as the storage folder from the next start on;
 * null: the default.
 */
export function chooseStudioHome(folder: string | null, where: HomeEnvironment = HERE): void {
  const file = path.join(platformDataDir(where), CHOSEN_FOLDER_FILE);
  if (folder === null) return void fs.rmSync(file, { force: true });
  const paths = pathsFor(where.platform);
  const refuse = (shown: string, why: string) =>
    new UserError(`${shown}: cannot be the storage folder (${why}); choose a folder you can write to`);
  if (folder.includes('\0')) throw refuse(JSON.stringify(folder.slice(0, 200)), 'it holds a NUL byte');
  if (!paths.isAbsolute(folder)) throw refuse(folder, 'not an absolute path');
  const dir = paths.resolve(folder);
  try {
    prepareFolder(dir, where.platform);
  } catch (err) {
    if (err instanceof UnfitFolder) throw refuse(dir, err.message);
    throw refuse(dir, (err as NodeJS.ErrnoException).code ?? (err as Error).message);
  }
  writeFileAtomic(file, `${dir}\n`);
}
