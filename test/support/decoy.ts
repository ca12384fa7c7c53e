// A folder of the user's own files that no attack may touch: made before, hashed before and after.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Writes a small tree of ordinary user files (a dotfile, a document, a nested folder) into `dir`. */
export function makeDecoy(dir: string): string {
  fs.mkdirSync(path.join(dir, 'notes', 'old'), { recursive: true });
  fs.writeFileSync(path.join(dir, '.bashrc'), 'export PATH="$HOME/bin:$PATH"\n');
  fs.writeFileSync(path.join(dir, 'thesis.txt'), 'Chapter 1\n'.repeat(100));
  fs.writeFileSync(path.join(dir, 'notes', 'todo.md'), '- back up the thesis\n');
  fs.writeFileSync(path.join(dir, 'notes', 'old', 'data.jsonl'), '{"text": "mine"}\n');
  return dir;
}

/**
 * Every file, folder and link under `dir`, by its path relative to `dir`, with its sha256 (files), target (links) or
 * kind (folders); `skip` leaves entries out (a skipped folder's contents still count).
 */
export function treeHashes(dir: string, skip: (relative: string) => boolean = () => false): Record<string, string> {
  const hashes: Record<string, string> = {};
  const walk = (folder: string) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      const key = path.relative(dir, full);
      if (entry.isSymbolicLink()) {
        if (!skip(key)) hashes[key] = `link -> ${fs.readlinkSync(full)}`;
      } else if (entry.isDirectory()) {
        if (!skip(key)) hashes[key] = 'folder';
        walk(full);
      } else if (!skip(key)) hashes[key] = crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex');
    }
  };
  walk(dir);
  return hashes;
}
