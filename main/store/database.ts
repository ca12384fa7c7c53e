// Opens the studio's SQLite file: WAL (readers never wait for the training writer), foreign keys on, migrations run
// forward. File-system trouble becomes one line that names the folder and what to do.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../../shared/errors.js';
import { explainFileError } from '../util/fileErrors.js';
import { MIGRATIONS } from './migrations.js';

export type SqliteDatabase = Database.Database;
export const DATABASE_FILE = 'studio.db';

/** Turns an error from the file system or SQLite about `where` into a UserError the user can act on. */
export function storageError(err: unknown, where: string): Error {
  const code = (err as { code?: string }).code ?? '';
  const message = (err as Error).message;
  const fileError = explainFileError(err, where);
  if (fileError) return fileError;
  if (code === 'SQLITE_FULL') return new UserError(`${where}: the disk is full; free some space and try again`);
  if (code.startsWith('SQLITE_READONLY'))
    return new UserError(`${where}: the folder is read-only; choose a writable folder (PEFT_STUDIO_HOME)`);
  if (code.startsWith('SQLITE_IOERR'))
    return new UserError(
      `${where}: the disk refused a write (${message}); check free space and that the folder is writable`,
    );
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB')
    return new UserError(`${where}: the database file is damaged (${message}); move it aside to start a new one`);
  if (code.startsWith('SQLITE_CANTOPEN')) return new UserError(`${where}: cannot open the database (${message})`);
  if (code.startsWith('SQLITE_BUSY'))
    return new UserError(`${where}: the database stayed locked by another process; try again`);
  return err as Error;
}

/** Applies the migrations after `user_version`, each in its own transaction; `upTo` stops early (for tests). */
export function migrate(db: SqliteDatabase, upTo = MIGRATIONS.length): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length)
    throw new UserError(
      `${db.name}: made by a newer PEFT Studio (schema ${current}, this one knows ${MIGRATIONS.length}); update the app`,
    );
  for (let version = current; version < upTo; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

/**
 * The database holds the user's paths, prompts and logs: readable by its owner only. Created so before SQLite opens
 * it (SQLite gives its -wal and -shm files the database's mode); an older, wider one is narrowed.
 */
function ownerOnly(file: string): void {
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  if ((fs.statSync(file).mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
  for (const companion of [`${file}-wal`, `${file}-shm`]) if (fs.existsSync(companion)) fs.chmodSync(companion, 0o600);
}

export function openDatabase(home: string, options: { upTo?: number; readonly?: boolean } = {}): SqliteDatabase {
  const file = path.join(home, DATABASE_FILE);
  try {
    if (!options.readonly) {
      fs.mkdirSync(home, { recursive: true, mode: 0o700 });
      ownerOnly(file);
    }
    const db = new Database(file, { readonly: options.readonly === true, fileMustExist: options.readonly === true });
    try {
      db.pragma('busy_timeout = 10000');
      if (!options.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
      }
      db.pragma('foreign_keys = ON');
      if (!options.readonly) migrate(db, options.upTo);
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  } catch (err) {
    // SQLite says only "unable to open database file"; the folder itself tells whether it is read-only or forbidden.
    if ((err as { code?: string }).code?.startsWith('SQLITE_CANTOPEN') && !options.readonly) {
      try {
        fs.accessSync(home, fs.constants.W_OK);
      } catch (accessErr) {
        throw storageError(accessErr, file);
      }
    }
    throw storageError(err, file);
  }
}
