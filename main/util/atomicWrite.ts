import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes `parts` to `file` through a temp file in the same folder, fsynced then renamed: never half-written. `mode`
 * applies from the first byte (a secret is never readable by others, not even while it is written).
 */
export function writeFileAtomic(file: string, parts: Uint8Array[] | string, options: { mode?: number } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fd = fs.openSync(temp, 'w', options.mode ?? 0o666);
  try {
    for (const part of typeof parts === 'string' ? [Buffer.from(parts, 'utf8')] : parts) {
      let written = 0;
      while (written < part.byteLength) written += fs.writeSync(fd, part, written, part.byteLength - written);
    }
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(temp, file);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw err;
  }
}
