// Plain text: each non-blank line is a sample, or (block mode) each run of lines between blank lines.
// A sample's row is its first line. Records are { text }.
import type { RawRowOrError } from './rows.js';
import { fileLines, MAX_LINE_CHARS, overLongLine } from './utf8.js';

export type TextMode = 'line' | 'block';

export async function* readText(file: string, mode: TextMode): AsyncGenerator<RawRowOrError> {
  let block: string[] = [];
  let blockStart = 0;
  let blockChars = 0;
  /** Set when the block grew too long to keep: it is a bad row. */
  let overLong: string | null = null;
  const endBlock = (): RawRowOrError =>
    overLong === null ? { row: blockStart, record: { text: block.join('\n') } } : { row: blockStart, error: overLong };
  for await (const entry of fileLines(file)) {
    const { line, text } = entry;
    if (text === null) {
      if (mode === 'line') yield { row: line, error: overLongLine(entry.length) };
      else {
        if (block.length === 0 && overLong === null) blockStart = line;
        [block, overLong] = [[], overLongLine(entry.length)];
      }
      continue;
    }
    const blank = text.trim() === '';
    if (mode === 'line') {
      if (!blank) yield { row: line, record: { text } };
    } else if (blank) {
      if (block.length > 0 || overLong !== null) yield endBlock();
      [block, blockChars, overLong] = [[], 0, null];
    } else {
      if (block.length === 0 && overLong === null) blockStart = line;
      blockChars += text.length + 1;
      if (blockChars > MAX_LINE_CHARS) {
        [block, overLong] = [[], `the block of lines holds more than ${MAX_LINE_CHARS} characters; split it`];
      } else if (overLong === null) block.push(text);
    }
  }
  if (block.length > 0 || overLong !== null) yield endBlock();
}
