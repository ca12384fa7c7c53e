// A data file as UTF-8 text, chunk by chunk. Invalid bytes stop the read: a Latin-1 (Excel) or UTF-16 (Notepad) file
// decoded leniently would train on U+FFFD replacement characters without a word.
import fs from 'node:fs';
import { UserError } from '../../../shared/errors.js';

const NEWLINE = 0x0a;

/** The file's text in chunks, a leading byte-order mark removed. */
export async function* utf8Chunks(file: string): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true }); // also drops a leading BOM
  let linesBefore = 0;
  let firstChunk = true;
  for await (const bytes of fs.createReadStream(file) as AsyncIterable<Buffer>) {
    if (firstChunk) refuseBinary(file, bytes);
    let text: string;
    try {
      text = decoder.decode(bytes, { stream: true });
    } catch {
      if (firstChunk && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
        throw new UserError(`${file}: the file is UTF-16 text; save it as UTF-8`);
      }
      const line = linesBefore + countNewlines(bytes.subarray(0, firstInvalidByte(bytes))) + 1;
      throw new UserError(`${file}:${line}: not valid UTF-8 text; save the file as UTF-8`);
    }
    firstChunk = false;
    linesBefore += countNewlines(bytes);
    if (text !== '') yield text;
  }
  try {
    const rest = decoder.decode();
    if (rest !== '') yield rest;
  } catch {
    throw new UserError(`${file}:${linesBefore + 1}: the file ends inside a UTF-8 character (is it truncated?)`);
  }
}

/** Text never holds a NUL byte; images, programs and archives do within their first bytes (UTF-16 aside). */
function refuseBinary(file: string, firstBytes: Buffer): void {
  const utf16 =
    (firstBytes[0] === 0xff && firstBytes[1] === 0xfe) || (firstBytes[0] === 0xfe && firstBytes[1] === 0xff);
  const nul = firstBytes.subarray(0, BINARY_PROBE_BYTES).indexOf(0);
  if (nul !== -1 && !utf16)
    throw new UserError(
      `${file}: binary data, not text (a zero byte at offset ${nul}); choose a JSONL, JSON, CSV/TSV, Parquet or text file`,
    );
}
const BINARY_PROBE_BYTES = 8192;

/**
 * The longest line kept: a longer one (a whole file on one line) is skipped, counted but never held, so that neither
 * memory nor V8's limit on string length is reached.
 */
export const MAX_LINE_CHARS = 16 * 2 ** 20;

/** A line of the file: its text, or null with its length when it is longer than MAX_LINE_CHARS. */
export type FileLine = { line: number; text: string } | { line: number; text: null; length: number };

/** The file's lines with their 1-based numbers; a "\r" before the "\n" is dropped. */
export async function* fileLines(file: string): AsyncGenerator<FileLine> {
  let partial = '';
  let skipped = 0; // characters of an over-long line read so far, not kept
  let line = 0;
  const ended = (rest: string): FileLine => {
    const length = skipped + rest.length;
    line++;
    return length > MAX_LINE_CHARS ? { line, text: null, length } : { line, text: withoutCarriageReturn(rest) };
  };
  for await (const chunk of utf8Chunks(file)) {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end !== -1; start = end + 1, end = chunk.indexOf('\n', start)) {
      yield ended(partial + chunk.slice(start, end));
      [partial, skipped] = ['', 0];
    }
    // A line still going on: kept whole until it ends, so a line is never rescanned, unless it grows too long.
    if (skipped > 0 || partial.length + chunk.length - start > MAX_LINE_CHARS) {
      skipped += partial.length + chunk.length - start;
      partial = '';
    } else partial += chunk.slice(start);
  }
  if (partial !== '' || skipped > 0) yield ended(partial);
}

/** Why an over-long line is a bad row. */
export function overLongLine(length: number): string {
  return `the line holds ${length} characters, more than the ${MAX_LINE_CHARS} a row may hold; split it`;
}

function withoutCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

function countNewlines(bytes: Uint8Array): number {
  let count = 0;
  for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, at + 1)) count++;
  return count;
}

/** Where a chunk stops being UTF-8: lenient decoding turns bad bytes into U+FFFD, so the re-encoding differs there. */
function firstInvalidByte(bytes: Buffer): number {
  let start = 0;
  // ends a character begun in the previous chunk
  while (start < 3 && start < bytes.length && (bytes[start] & 0xc0) === 0x80) start++;
  const reencoded = Buffer.from(new TextDecoder().decode(bytes.subarray(start)));
  let at = 0;
  while (start + at < bytes.length && bytes[start + at] === reencoded[at]) at++;
  return start + at;
}
