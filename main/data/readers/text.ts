// Plain text: each non-blank line is a sample, or (block mode) each run of lines between blank lines.
// A sample's row is its first line. Records are { text }.
import type { RawRowOrError } from './rows.js';
import { fileLines } from './utf8.js';

export type TextMode = 'line' | 'block';

export async function* readText(file: string, mode: TextMode): AsyncGenerator<RawRowOrError> {
  let block: string[] = [];
  let blockStart = 0;
  for await (const { line, text } of fileLines(file)) {
    const blank = text.trim() === '';
    if (mode === 'line') {
      if (!blank) yield { row: line, record: { text } };
    } else if (blank) {
      if (block.length > 0) yield { row: blockStart, record: { text: block.join('\n') } };
      block = [];
    } else {
      if (block.length === 0) blockStart = line;
      block.push(text);
    }
  }
  if (block.length > 0) yield { row: blockStart, record: { text: block.join('\n') } };
}
