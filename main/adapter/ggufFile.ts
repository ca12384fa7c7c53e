// The GGUF v3 container, as ggml's gguf.cpp reads it, shared by the LoRA adapter writer (gguf.ts) and the model writer
// (ggufModel.ts): magic, version, tensor and metadata counts, typed metadata, tensor infos, then the tensor data, each
// tensor starting on a multiple of ALIGNMENT. The header needs every tensor's type, shape and offset, so writers plan
// sizes from shapes first and stream the data after. Legend: GGUF lists a tensor's dims innermost first, so a
// row-major W [rows, cols] is ne = (cols, rows).
import { GgmlType } from '../model/quant/ggmlQuants.js';
import { AtomicFileStream } from '../util/atomicWrite.js';

export { GgmlType };

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const ALIGNMENT = 32;

/** gguf.h enum gguf_type. */
export enum ValueType {
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
}

/** One metadata value; arrays hold strings or int32 (token lists, merges, token types). */
export type MetadataValue =
  | { type: ValueType.UINT32 | ValueType.INT32 | ValueType.FLOAT32; value: number }
  | { type: ValueType.BOOL; value: boolean }
  | { type: ValueType.STRING; value: string }
  | { type: ValueType.ARRAY; items: ValueType.STRING; value: readonly string[] }
  | { type: ValueType.ARRAY; items: ValueType.INT32; value: ArrayLike<number> };

export const u32 = (value: number): MetadataValue => ({ type: ValueType.UINT32, value });
export const f32 = (value: number): MetadataValue => ({ type: ValueType.FLOAT32, value });
export const str = (value: string): MetadataValue => ({ type: ValueType.STRING, value });
export const bool = (value: boolean): MetadataValue => ({ type: ValueType.BOOL, value });

export interface TensorInfo {
  name: string;
  /** Dims innermost first. */
  ne: number[];
  type: GgmlType;
  /** Bytes of the tensor's data (without alignment padding). */
  bytes: number;
}

const padTo = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

/** Grows a buffer as it is written; the header of a 150k-token vocabulary is a few MB. */
class ByteWriter {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;
  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
  u32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeInt32LE(v, this.length);
  }
  u64(v: number): void {
    this.reserve(8);
    this.length = this.buffer.writeBigUInt64LE(BigInt(v), this.length);
  }
  f32(v: number): void {
    this.reserve(4);
    this.length = this.buffer.writeFloatLE(v, this.length);
  }
  u8(v: number): void {
    this.reserve(1);
    this.length = this.buffer.writeUInt8(v, this.length);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.reserve(bytes.length);
    this.length += bytes.copy(this.buffer, this.length);
  }
  pad(): void {
    this.reserve(ALIGNMENT);
    this.length = padTo(this.length); // Buffer.alloc zero-filled the gap
  }
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

function writeValue(w: ByteWriter, v: MetadataValue): void {
  w.u32(v.type);
  switch (v.type) {
    case ValueType.UINT32:
      return w.u32(v.value);
    case ValueType.INT32:
      return w.i32(v.value);
    case ValueType.FLOAT32:
      return w.f32(v.value);
    case ValueType.BOOL:
      return w.u8(v.value ? 1 : 0);
    case ValueType.STRING:
      return w.string(v.value);
    case ValueType.ARRAY:
      w.u32(v.items);
      w.u64(v.value.length);
      if (v.items === ValueType.STRING) for (const s of v.value as readonly string[]) w.string(s);
      else for (let i = 0; i < v.value.length; i++) w.i32((v.value as ArrayLike<number>)[i]);
  }
}

/**
 * The bytes before the tensor data: header, metadata, tensor infos with offsets laid out in order, and the padding
 * up to the first tensor. `offsets[i]` is tensor i's start relative to the data section.
 */
export function ggufHeader(
  metadata: ReadonlyMap<string, MetadataValue>,
  tensors: readonly TensorInfo[],
): { header: Buffer; offsets: number[] } {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    w.string(key);
    writeValue(w, value);
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const n of t.ne) w.u64(n);
    w.u32(t.type);
    w.u64(offset);
    offsets.push(offset);
    offset += padTo(t.bytes);
  }
  w.pad();
  return { header: w.bytes(), offsets };
}

/**
 * Streams a GGUF file: the header at once, then each tensor's bytes in the order declared, into a temp file beside
 * `file` that is fsynced and renamed on close; abort (or a failed write: a full disk) removes it.
 */
export class GgufStreamWriter {
  private readonly out: AtomicFileStream;
  private next = 0;

  constructor(
    file: string,
    metadata: ReadonlyMap<string, MetadataValue>,
    private readonly tensors: readonly TensorInfo[],
  ) {
    this.out = new AtomicFileStream(file);
    try {
      this.out.write(ggufHeader(metadata, tensors).header);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** The next declared tensor's data, exactly its planned size. */
  write(data: Uint8Array): void {
    const info = this.tensors[this.next];
    if (!info) throw new Error('GgufStreamWriter: more tensors written than declared');
    if (data.byteLength !== info.bytes)
      throw new Error(`GgufStreamWriter: ${info.name}: ${data.byteLength} bytes, planned ${info.bytes}`);
    this.out.write(data);
    // gguf-py pads after the last tensor too; ggml's reader, without mmap, reads the padded size.
    const gap = padTo(this.out.length) - this.out.length;
    if (gap) this.out.write(new Uint8Array(gap));
    this.next++;
  }

  close(): void {
    if (this.next !== this.tensors.length)
      throw new Error(`GgufStreamWriter: ${this.next} of ${this.tensors.length} tensors written`);
    this.out.commit();
  }

  abort(): void {
    this.out.abort();
  }
}

/** Row order llama.cpp's converter gives q/k rows: per head, [x0, x_{d/2}, x1, x_{d/2+1}, ...] from halves. */
function permutedRow(row: number, heads: number, rows: number): number {
  const half = rows / heads / 2; // rows per half of a head
  const head = Math.floor(row / (2 * half));
  const within = row % (2 * half);
  // reshape (heads, 2, half) -> swap to (heads, half, 2): source (h, j, k) lands at (h, k, j).
  const j = Math.floor(within / half);
  const k = within % half;
  return head * 2 * half + k * 2 + j;
}

/**
 * llama.cpp's HF converter permutes q/k rows for the llama architecture (its RoPE pairs neighbouring dimensions,
 * transformers' rotate_half pairs halves): applies (inverse = false) or undoes that on M [rows, cols], row-major.
 */
export function permuteRopeRows(m: Float32Array, cols: number, heads: number, inverse: boolean): Float32Array {
  const rows = m.length / cols;
  const result = new Float32Array(m.length);
  for (let row = 0; row < rows; row++) {
    const target = permutedRow(row, heads, rows);
    const [from, to] = inverse ? [target, row] : [row, target];
    result.set(m.subarray(from * cols, (from + 1) * cols), to * cols);
  }
  return result;
}
