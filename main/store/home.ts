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

/** Records `folder` (created if needed, and writable) as the storage folder from the next start on; null: the default. */
export function chooseStudioHome(folder: string | null, where: HomeEnvironment = HERE): void {
  const file = path.join(platformDataDir(where), CHOSEN_FOLDER_FILE);
  if (folder === null) return void fs.rmSync(file, { force: true });
  const dir = path.resolve(folder);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw new UserError(`${dir}: cannot be the storage folder (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose a folder you can write to`);
  }
  writeFileAtomic(file, `${dir}\n`);
}
