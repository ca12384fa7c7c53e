// Reading and writing the safetensors format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}} and the raw little-endian tensor bytes.
// We read headers only and hand out absolute byte ranges, so ONNX external data can point straight into the file.
import fs from 'node:fs';
import { UserError } from '../../shared/errors.js';
import { AtomicFileStream } from '../util/atomicWrite.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, BOOL: 1 };

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Absolute byte offset of the first element in `file`. */
  byteOffset: number;
  byteLength: number;
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Reads and validates a safetensors header; every error names the file. */
export function readSafetensorsHeader(file: string): Map<string, TensorEntry> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new UserError(`${file}: cannot open (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new UserError(`${file}: not a safetensors file (not a regular file)`);
    const fileSize = stat.size;
    const prefix = Buffer.alloc(8);
    if (fileSize < 8 || fs.readSync(fd, prefix, 0, 8, 0) !== 8)
      throw new UserError(`${file}: not a safetensors file (shorter than its 8-byte header length)`);
    const headerLength = Number(prefix.readBigUInt64LE(0));
    if (headerLength < 2 || headerLength > 100_000_000 || 8 + headerLength > fileSize) {
      throw new UserError(
        `${file}: not a safetensors file (header length ${headerLength} does not fit a ${fileSize}-byte file)`,
      );
    }
    const headerBytes = Buffer.alloc(headerLength);
    fs.readSync(fd, headerBytes, 0, headerLength, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch {
      throw new UserError(`${file}: not a safetensors file (header is not JSON)`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new UserError(`${file}: not a safetensors file (header is not a JSON object)`);
    }
    const dataStart = 8 + headerLength;
    const entries = new Map<string, TensorEntry>();
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const info = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const shown = name.length > 100 ? `${name.slice(0, 100)}…` : name;
      if (!info || typeof info.dtype !== 'string' || !isShape(info.shape) || !Array.isArray(info.data_offsets)) {
        throw new UserError(`${file}: tensor "${shown}" has a malformed header entry`);
      }
      if (!Object.hasOwn(BYTES_PER_ELEMENT, info.dtype)) {
        throw new UserError(`${file}: tensor "${shown}" has unsupported dtype ${info.dtype.slice(0, 20)}`);
      }
      const dtype = info.dtype as SafetensorsDtype;
      const [begin, end] = info.data_offsets;
      const elements = info.shape.reduce((a, b) => a * b, 1);
      if (!Number.isInteger(begin) || begin < 0 || end - begin !== elements * BYTES_PER_ELEMENT[dtype]) {
        const range = `byte range ${begin}..${end}`;
        throw new UserError(`${file}: tensor "${shown}" ${range} does not match shape [${info.shape}] ${dtype}`);
      }
      if (dataStart + end > fileSize) {
        const ends = `ends at byte ${dataStart + end}`;
        throw new UserError(`${file}: truncated (tensor "${shown}" ${ends}, file has ${fileSize})`);
      }
      entries.set(name, {
        name,
        dtype,
        shape: info.shape,
        file,
        byteOffset: dataStart + begin,
        byteLength: end - begin,
      });
    }
    return entries;
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads one tensor's raw bytes. */
export function readTensorBytes(entry: TensorEntry): Buffer {
  const bytes = Buffer.alloc(entry.byteLength);
  const fd = fs.openSync(entry.file, 'r');
  try {
    let read = 0;
    while (read < entry.byteLength) {
      const n = fs.readSync(fd, bytes, read, entry.byteLength - read, entry.byteOffset + read);
      if (n === 0) throw new UserError(`${entry.file}: truncated while reading tensor "${entry.name}"`);
      read += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return bytes;
}

/** Reads one tensor as fp32, widening F16 and BF16. */
export function readTensorF32(entry: TensorEntry): Float32Array {
  return widenToF32(readTensorBytes(entry), entry);
}

/**
 * Rows `ids` of a 2-D float tensor [rows, width] as fp32 [ids.length, width], each read where it lies in the file:
 * nothing else of the tensor is read (an embedding table stays on disk).
 */
export function readTensorRowsF32(entry: TensorEntry, ids: ArrayLike<number>): Float32Array {
  const [rows, width] = entry.shape;
  const rowBytes = entry.byteLength / rows;
  const bytes = Buffer.alloc(ids.length * rowBytes);
  const fd = fs.openSync(entry.file, 'r');
  try {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= rows)
        throw new Error(`token id ${id} is outside the ${rows} rows of "${entry.name}"`);
      let read = 0;
      while (read < rowBytes) {
        const at = i * rowBytes + read;
        const n = fs.readSync(fd, bytes, at, rowBytes - read, entry.byteOffset + id * rowBytes + read);
        if (n === 0) throw new UserError(`${entry.file}: truncated while reading tensor "${entry.name}"`);
        read += n;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return widenToF32(bytes, { ...entry, shape: [ids.length, width] });
}

function widenToF32(bytes: Buffer, entry: Pick<TensorEntry, 'file' | 'name' | 'dtype' | 'shape'>): Float32Array {
  const count = entry.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  switch (entry.dtype) {
    case 'F32':
      new Uint8Array(out.buffer).set(bytes);
      return out;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = bytes.readUInt16LE(2 * i) << 16;
      return out;
    }
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(bytes.readUInt16LE(2 * i));
      return out;
    default:
      throw new UserError(`${entry.file}: tensor "${entry.name}" is ${entry.dtype}, expected a float tensor`);
  }
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Rounds fp32 to bf16 bits (round to nearest even), as torch does. */
export function floatToBf16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Rounds fp32 to IEEE binary16 bits (round to nearest even; overflow to infinity, tiny values to subnormals or zero).
 */
export function floatToF16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    const sign = (b >>> 16) & 0x8000;
    const exponent = (b >>> 23) & 0xff;
    const mantissa = b & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      const m = mantissa | 0x800000;
      const shift = 14 - e;
      let half = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && half & 1)) half++;
      out[i] = sign | half;
    } else {
      let half = (e << 10) | (mantissa >>> 13);
      const rest = mantissa & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
      out[i] = sign | half;
    }
  }
  return out;
}

export interface TensorToWrite {
  dtype: 'F32' | 'BF16' | 'F16' | 'I64' | 'U8';
  shape: number[];
  /** fp32 values (rounded for BF16 and F16), int64 values for I64, or the raw little-endian bytes of any dtype. */
  data: Float32Array | BigInt64Array | Uint8Array;
}

/**
 * Writes a safetensors file tensor by tensor, in the order declared: the header is known up front from names, dtypes
 * and shapes, so no more than one tensor is ever held. Written to a temp file, fsynced and renamed on close.
 */
export class SafetensorsStreamWriter {
  private readonly out: AtomicFileStream;
  private next = 0;

  constructor(
    file: string,
    private readonly layout: { name: string; dtype: TensorToWrite['dtype']; shape: number[] }[],
    metadata?: Record<string, string>,
  ) {
    const header: Record<string, unknown> = {};
    if (metadata) header.__metadata__ = metadata;
    let offset = 0;
    for (const t of layout) {
      const size = t.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[t.dtype];
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
      offset += size;
    }
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    // Pad with spaces (in bytes) so tensor data starts 8-byte aligned.
    const headerBytes = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(headerBytes.length));
    this.out = new AtomicFileStream(file);
    try {
      this.out.write(prefix);
      this.out.write(headerBytes);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** The next tensor of the declared layout. */
  write(name: string, data: TensorToWrite['data']): void {
    const t = this.layout[this.next++];
    if (!t || t.name !== name)
      throw new Error(`SafetensorsStreamWriter: expected ${t?.name ?? 'no more tensors'}, got ${name}`);
    const bytes =
      data instanceof Uint8Array
        ? data // raw little-endian bytes of any dtype
        : t.dtype === 'BF16'
          ? new Uint8Array(floatToBf16Bits(data as Float32Array).buffer)
          : t.dtype === 'F16'
            ? new Uint8Array(floatToF16Bits(data as Float32Array).buffer)
            : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const expected = t.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[t.dtype];
    if (bytes.byteLength !== expected)
      throw new Error(
        `SafetensorsStreamWriter: ${name} has ${bytes.byteLength} bytes, shape [${t.shape}] ${t.dtype} needs ${expected}`,
      );
    this.out.write(bytes);
  }

  close(): void {
    if (this.next !== this.layout.length)
      throw new Error(`SafetensorsStreamWriter: ${this.layout.length - this.next} tensors not written`);
    this.out.commit();
  }

  /** Gives up a file that failed half-way (a full disk): its descriptor closed, its temp file gone, its space freed. */
  abort(): void {
    this.out.abort();
  }
}

/** Writes a safetensors file atomically (temp file, fsync, rename). Tensors are laid out in sorted key order. */
export function writeSafetensors(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const names = Object.keys(tensors).sort();
  const writer = new SafetensorsStreamWriter(
    file,
    names.map((name) => ({ name, dtype: tensors[name].dtype, shape: tensors[name].shape })),
    metadata,
  );
  try {
    for (const name of names) writer.write(name, tensors[name].data);
    writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  }
}
