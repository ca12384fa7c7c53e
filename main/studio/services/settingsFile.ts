// The studio's settings: device, CPU threads and theme in <home>/settings.json; the Hugging Face token in a
// TokenVault, never handed to the UI (settings carry only whether one is set).
import fs from 'node:fs';
import path from 'node:path';
import type { StudioSettings, Theme } from '../../../shared/api.js';
import type { DeviceChoice } from '../../../shared/training.js';
import { UserError } from '../../../shared/errors.js';
import { JOB_BOUNDS, numberSchema } from '../../../shared/trainJob.js';
import { writeFileAtomic } from '../../util/atomicWrite.js';
import { engineThreads } from '../../engine/runtime/threads.js';
import { chooseStudioHome, chosenStudioHome, platformDataDir, type HomeEnvironment } from '../../store/home.js';
import type { TokenVault } from './tokenVault.js';

interface StoredSettings {
  device: DeviceChoice;
  threads: number | null;
  theme: Theme;
}

const THREADS = numberSchema(JOB_BOUNDS.threads).nullable();

const DEFAULTS: StoredSettings = { device: 'auto', threads: null, theme: 'system' };

export class SettingsFile {
  private readonly settingsPath: string;

  constructor(
    private readonly home: string,
    private readonly vault: TokenVault,
    private readonly where: HomeEnvironment,
  ) {
    this.settingsPath = path.join(home, 'settings.json');
  }

  private stored(): StoredSettings {
    if (!fs.existsSync(this.settingsPath)) return { ...DEFAULTS };
    const unreadable = (why: string) =>
      new UserError(`${this.settingsPath}: unreadable settings (${why}); delete the file to start from the defaults`);
    let stored: unknown;
    try {
      stored = JSON.parse(fs.readFileSync(this.settingsPath, 'utf8'));
    } catch (err) {
      throw unreadable((err as Error).message);
    }
    if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) throw unreadable('not a JSON object');
    const settings = { ...DEFAULTS, ...(stored as Partial<StoredSettings>) };
    // The count goes to every engine session: a hand-edited file must not ask for a million threads.
    const threads = THREADS.safeParse(settings.threads);
    if (!threads.success) throw unreadable(`"threads" ${threads.error.issues[0].message}`);
    return settings;
  }

  /** The token set in the studio, if any. */
  hfToken(): string | undefined {
    return this.vault.read();
  }

  get(): StudioSettings {
    return {
      ...this.stored(),
      defaultThreads: engineThreads(null),
      hasToken: this.hfToken() !== undefined,
      storageFolder: this.home,
      chosenStorageFolder: chosenStudioHome(this.where),
      defaultStorageFolder: platformDataDir(this.where),
    };
  }

  set(change: {
    device?: DeviceChoice;
    threads?: number | null;
    theme?: Theme;
    hfToken?: string | null;
    storageFolder?: string | null;
  }): StudioSettings {
    const { hfToken, storageFolder, ...rest } = change;
    // The folder first: a refused one leaves every setting as it was.
    if (storageFolder !== undefined) chooseStudioHome(storageFolder, this.where);
    writeFileAtomic(this.settingsPath, `${JSON.stringify({ ...this.stored(), ...rest }, null, 2)}\n`);
    if (hfToken !== undefined) this.vault.write(hfToken);
    return this.get();
  }
}
