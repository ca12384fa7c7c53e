// Parquet, one row group at a time: memory holds the current row group, never the whole file.
// Rows are 1-based row numbers. 64-bit integers arrive as bigint and become numbers (or digit strings past 2^53).
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { UserError } from '../../../shared/errors.js';
import { isRecord } from '../jsonValues.js';
import type { RawRowOrError } from './rows.js';

export async function* readParquet(file: string): AsyncGenerator<RawRowOrError> {
  const buffer = await asyncBufferFromFile(file);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new UserError(`${file}: not a readable Parquet file (${(err as Error).message})`);
  }
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let records: Record<string, unknown>[];
    try {
      records = await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd, compressors });
    } catch (err) {
      throw new UserError(`${file}: cannot decode rows ${rowStart + 1}-${rowEnd} (${(err as Error).message})`);
    }
    for (let i = 0; i < records.length; i++) yield { row: rowStart + i + 1, record: plainRecord(records[i]) };
    rowStart = rowEnd;
  }
}

function plainRecord(record: Record<string, unknown>): Record<string, unknown> {
  const plain: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record)) plain[name] = plainValue(value);
  return plain;
}

/** Values as JSON would give them: numbers instead of bigints, lists instead of typed arrays. */
function plainValue(value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (Array.isArray(value)) return value.map(plainValue);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView))
    return Array.from(value as unknown as ArrayLike<unknown>, plainValue);
  if (isRecord(value) && !(value instanceof Date)) return plainRecord(value);
  return value;
}
