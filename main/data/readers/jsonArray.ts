// A JSON file holding one array of records, parsed as a stream: only the element being read is in memory.
// Rows are the 1-based element numbers. A syntax error stops the read, since nothing after it can be trusted.
import { JSONParser } from '@streamparser/json';
import { UserError } from '../../../shared/errors.js';
import { describeValue, isRecord } from '../jsonValues.js';
import type { RawRowOrError } from './rows.js';
import { utf8Chunks } from './utf8.js';

export async function* readJsonArray(file: string): AsyncGenerator<RawRowOrError> {
  // keepStack: false drops each element from the parser's copy of the array once it is emitted.
  const parser = new JSONParser({ paths: ['$.*'], keepStack: false });
  const parsed: RawRowOrError[] = [];
  parser.onValue = ({ value, key }) => {
    const row = (key as number) + 1;
    parsed.push(
      isRecord(value)
        ? { row, record: value }
        : { row, error: `expected a JSON object, found ${describeValue(value)}` },
    );
  };
  let rowsRead = 0;
  let started = false;
  for await (const chunk of utf8Chunks(file)) {
    if (!started) {
      const first = chunk.trimStart()[0];
      if (first === undefined) continue;
      if (first !== '[')
        throw new UserError(
          `${file}: ${first === '{' ? 'the file holds one JSON object' : 'the file is not a JSON array'}; expected an array of records ([{...}, {...}]); for one record per line, name the file .jsonl`,
        );
      started = true;
    }
    try {
      parser.write(chunk);
    } catch (err) {
      throw new UserError(
        `${file}: invalid JSON after element ${rowsRead + parsed.length} (${(err as Error).message})`,
      );
    }
    rowsRead += parsed.length;
    yield* parsed;
    parsed.length = 0;
  }
  if (started && !parser.isEnded)
    throw new UserError(`${file}: the JSON array is not closed after element ${rowsRead} (is the file truncated?)`);
}
