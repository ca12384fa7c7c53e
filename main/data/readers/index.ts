// Readers: a data file to RawRows, streamed (a file of any size is never in memory whole), in file order.
// A row that cannot be read is yielded as { row, error } and reading goes on; a file that cannot be read at all
// (missing, not UTF-8, broken JSON array, unclosed CSV quote, not Parquet) throws a UserError naming it.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../../shared/errors.js';
import type { FileKind } from '../samples.js';
import { readDelimited } from './delimited.js';
import { readJsonArray } from './jsonArray.js';
import { readJsonLines } from './jsonl.js';
import { readParquet } from './parquet.js';
import type { RawRowOrError } from './rows.js';
import { readText, type TextMode } from './text.js';

export type { RawRowOrError, UnreadableRow } from './rows.js';
export type { TextMode } from './text.js';

export interface ReadOptions {
  /** The file's format; by default from its extension. */
  kind?: FileKind;
  /** Plain text only: a sample per line (default) or per blank-line-separated block. */
  textMode?: TextMode;
}

const KIND_BY_EXTENSION: ReadonlyMap<string, FileKind> = new Map([
  ['.jsonl', 'jsonl'],
  ['.ndjson', 'jsonl'],
  ['.json', 'json'],
  ['.csv', 'csv'],
  ['.tsv', 'tsv'],
  ['.parquet', 'parquet'],
  ['.txt', 'text'],
  ['.text', 'text'],
  ['.md', 'text'],
]);

/** The file's format from its extension (any case). */
export function detectFileKind(file: string): FileKind {
  const extension = path.extname(file).toLowerCase();
  const kind = KIND_BY_EXTENSION.get(extension);
  if (kind === undefined) {
    const known = [...KIND_BY_EXTENSION.keys()].join(', ');
    throw new UserError(
      `${file}: cannot tell the data format from the extension ${extension ? `"${extension}"` : '(none)'}; use one of ${known}, or choose the file format`,
    );
  }
  return kind;
}

/** Throws a UserError unless `file` is a readable file. */
export async function checkDataFile(file: string): Promise<void> {
  let stats: fs.Stats;
  try {
    stats = await fs.promises.stat(file);
    await fs.promises.access(file, fs.constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${file}: no such file`);
    if (code === 'EACCES' || code === 'EPERM') throw new UserError(`${file}: cannot read the file (permission denied)`);
    throw new UserError(`${file}: cannot read the file (${code ?? (err as Error).message})`);
  }
  if (stats.isDirectory()) throw new UserError(`${file}: is a folder; choose a data file inside it`);
  if (!stats.isFile()) throw new UserError(`${file}: not a regular file`);
}

export async function* readRawRows(file: string, options: ReadOptions = {}): AsyncGenerator<RawRowOrError> {
  await checkDataFile(file);
  const kind = options.kind ?? detectFileKind(file);
  switch (kind) {
    case 'jsonl':
      return yield* readJsonLines(file);
    case 'json':
      return yield* readJsonArray(file);
    case 'csv':
      return yield* readDelimited(file, ',');
    case 'tsv':
      return yield* readDelimited(file, '\t');
    case 'parquet':
      return yield* readParquet(file);
    case 'text':
      return yield* readText(file, options.textMode ?? 'line');
  }
}
