// One studio per storage folder: two would run the same queue twice and overwrite each other's records. The lock is
// a file holding the owner's pid, linked into place whole (never seen empty); one whose process is gone (a crash, a
// kill) is taken over.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { isProcessAlive } from '../util/process.js';

export const LOCK_FILE = 'studio.lock';

export interface HomeLock {
  release(): void;
}

/** Takes `<home>/studio.lock` for this process, or says which process holds it. */
export function lockHome(home: string): HomeLock {
  const file = path.join(home, LOCK_FILE);
  fs.mkdirSync(home, { recursive: true });
  const draft = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(draft, `${process.pid}\n`, { mode: 0o600 });
  try {
    // Two tries: the second after removing a lock whose owner died.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.linkSync(draft, file);
        return ownLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number.parseInt(readLock(file), 10);
      if (owner !== process.pid && isProcessAlive(owner)) {
        throw new UserError(
          `${home}: another PEFT Studio (process ${owner}) is using this storage folder; close it first, or choose another folder`,
        );
      }
      fs.rmSync(file, { force: true });
    }
  } finally {
    fs.rmSync(draft, { force: true });
  }
  throw new UserError(`${file}: another process keeps taking the storage folder's lock; try again`);
}

function ownLock(file: string): HomeLock {
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      // Only our own lock: a lock taken over after ours went stale is someone else's now.
      if (readLock(file).trim() === String(process.pid)) fs.rmSync(file, { force: true });
    },
  };
}

function readLock(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
