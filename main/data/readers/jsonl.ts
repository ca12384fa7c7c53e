// JSON Lines: one JSON object per line. Blank lines are skipped; a bad line is reported and reading goes on.
import { describeValue, isRecord } from '../jsonValues.js';
import type { RawRowOrError } from './rows.js';
import { fileLines, overLongLine } from './utf8.js';

export async function* readJsonLines(file: string): AsyncGenerator<RawRowOrError> {
  for await (const entry of fileLines(file)) {
    const { line, text } = entry;
    if (text === null) {
      yield { row: line, error: overLongLine(entry.length) };
      continue;
    }
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      yield { row: line, error: `invalid JSON (${(err as Error).message})` };
      continue;
    }
    yield isRecord(value)
      ? { row: line, record: value }
      : { row: line, error: `expected a JSON object, found ${describeValue(value)}` };
  }
}
