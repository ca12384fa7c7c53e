// File-system failures (full disk, read-only or forbidden folder) said in one line that names where and what to do.
import { UserError } from '../../shared/errors.js';

/** A UserError for a full, read-only or forbidden location, or null when `err` is something else. */
export function explainFileError(err: unknown, where = (err as { path?: string }).path ?? 'a file'): UserError | null {
  switch ((err as { code?: string }).code) {
    case 'ENOSPC':
      return new UserError(`${where}: the disk is full; free some space and try again`);
    case 'EROFS':
      return new UserError(`${where}: the folder is read-only; choose a writable folder (PEFT_STUDIO_HOME)`);
    case 'EACCES':
    case 'EPERM':
      return new UserError(`${where}: permission denied; choose a folder you can write to (PEFT_STUDIO_HOME)`);
    default:
      return null;
  }
}
