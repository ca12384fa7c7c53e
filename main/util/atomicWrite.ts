import fs from 'node:fs';
import path from 'node:path';

/**
 * A file written piece by piece through a temp file in its folder, then fsynced and renamed by `commit`: never seen
 * half-written. `abort` gives up one that failed half-way (a full disk): descriptor closed, temp file and space gone.
 * `mode` applies from the first byte (a secret is never readable by others, not even while it is written).
 */
export class AtomicFileStream {
  private readonly fd: number;
  private readonly temp: string;
  /** Bytes written so far. */
  length = 0;

  constructor(
    readonly file: string,
    options: { mode?: number } = {},
  ) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.temp = `${file}.tmp-${process.pid}-${Date.now()}`;
    this.fd = fs.openSync(this.temp, 'w', options.mode ?? 0o666);
  }

  write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.byteLength) done += fs.writeSync(this.fd, bytes, done, bytes.byteLength - done);
    this.length += bytes.byteLength;
  }

  commit(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    try {
      fs.renameSync(this.temp, this.file);
    } catch (err) {
      fs.rmSync(this.temp, { force: true });
      throw err;
    }
  }

  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed by commit(), which failed after it
    }
    fs.rmSync(this.temp, { force: true });
  }
}

/** Writes `parts` to `file` at once through an AtomicFileStream: never half-written. */
export function writeFileAtomic(file: string, parts: Uint8Array[] | string, options: { mode?: number } = {}): void {
  const out = new AtomicFileStream(file, options);
  try {
    for (const part of typeof parts === 'string' ? [Buffer.from(parts, 'utf8')] : parts) out.write(part);
    out.commit();
  } catch (err) {
    out.abort();
    throw err;
  }
}
