// The studio's settings: device and theme in <home>/settings.json; the Hugging Face token in its own file, readable by
// the user only, and never handed to the UI (settings carry only whether one is set).
import fs from 'node:fs';
import path from 'node:path';
import type { StudioSettings, Theme } from '../../shared/api.js';
import type { DeviceChoice } from '../../shared/training.js';
import { UserError } from '../../shared/errors.js';
import { writeFileAtomic } from '../util/atomicWrite.js';

interface StoredSettings {
  device: DeviceChoice;
  theme: Theme;
}

const DEFAULTS: StoredSettings = { device: 'auto', theme: 'system' };

export class SettingsFile {
  private readonly settingsPath: string;
  private readonly tokenPath: string;

  constructor(home: string) {
    this.settingsPath = path.join(home, 'settings.json');
    this.tokenPath = path.join(home, 'hf-token');
  }

  private stored(): StoredSettings {
    if (!fs.existsSync(this.settingsPath)) return { ...DEFAULTS };
    try {
      return { ...DEFAULTS, ...(JSON.parse(fs.readFileSync(this.settingsPath, 'utf8')) as Partial<StoredSettings>) };
    } catch (err) {
      throw new UserError(`${this.settingsPath}: unreadable settings (${(err as Error).message}); delete the file to start from the defaults`);
    }
  }

  /** The token set in the studio, if any. */
  hfToken(): string | undefined {
    return fs.existsSync(this.tokenPath) ? fs.readFileSync(this.tokenPath, 'utf8').trim() || undefined : undefined;
  }

  get(): StudioSettings {
    return { ...this.stored(), hasToken: this.hfToken() !== undefined };
  }

  set(change: { device?: DeviceChoice; theme?: Theme; hfToken?: string | null }): StudioSettings {
    const { hfToken, ...rest } = change;
    writeFileAtomic(this.settingsPath, `${JSON.stringify({ ...this.stored(), ...rest }, null, 2)}\n`);
    if (hfToken === null) fs.rmSync(this.tokenPath, { force: true });
    else if (hfToken !== undefined) {
      writeFileAtomic(this.tokenPath, hfToken);
      fs.chmodSync(this.tokenPath, 0o600);
    }
    return this.get();
  }
}
