// Where the studio keeps its database, runs and checkpoints: PEFT_STUDIO_HOME, else the platform's data folder.
import os from 'node:os';
import path from 'node:path';

export function defaultStudioHome(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.PEFT_STUDIO_HOME) return path.resolve(env.PEFT_STUDIO_HOME);
  const home = os.homedir();
  if (platform === 'win32') return path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'PEFT Studio');
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'PEFT Studio');
  return path.join(env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'peft-studio');
}
