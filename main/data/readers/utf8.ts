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

/** The file's lines with their 1-based numbers; a "\r" before the "\n" is dropped. */
export async function* fileLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  let partial = '';
  let line = 0;
  for await (const chunk of utf8Chunks(file)) {
    if (!chunk.includes('\n')) {
      partial += chunk; // a long line: split once it ends, so a line is never rescanned
      continue;
    }
    const pieces = (partial + chunk).split('\n');
    partial = pieces.pop() ?? '';
    for (const piece of pieces) yield { line: ++line, text: withoutCarriageReturn(piece) };
  }
  if (partial !== '') yield { line: ++line, text: withoutCarriageReturn(partial) };
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
  while (start < 3 && start < bytes.length && (bytes[start] & 0xc0) === 0x80) start++; // ends a character begun in the previous chunk
  const reencoded = Buffer.from(new TextDecoder().decode(bytes.subarray(start)));
  let at = 0;
  while (start + at < bytes.length && bytes[start + at] === reencoded[at]) at++;
  return start + at;
}
