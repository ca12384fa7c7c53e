// Quantize on load: a full-precision model folder becomes a 4-bit folder in a cache, once: bitsandbytes' nf4/fp4, or
// the studio's int4 (int4Checkpoint.ts). The folder is a complete checkpoint (config.json with quantization_config,
// one model.safetensors, the tokenizer files), so the engine loads a bitsandbytes one exactly as it loads a downloaded
// `*-bnb-4bit` repository.
// Written tensor by tensor: one full-precision weight is in memory at a time, never the model. The folder is built
// under a temp name and renamed when complete, with the SHA-256 of its weights in a manifest checked at every load:
// a truncated or corrupted cache is rebuilt, never used.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expectedShapes } from '../architecture.js';
import { UserError } from '../../../shared/errors.js';
import { explainFileError } from '../../util/fileErrors.js';
import type { QuantizeChoice } from '../../../shared/training.js';
import { openModelFolder, type ModelFolder } from '../modelFolder.js';
import { readTensorBytes, readTensorF32, SafetensorsStreamWriter, type TensorToWrite } from '../safetensors.js';
import { quantizableWeightNames, quantizationConfigJson, type Quant4bitConfig } from './bnb4bit.js';
import { INT4_BLOCK_SIZE, quantizeInt4 } from './int4.js';
import { int4QuantizationConfigJson } from './int4Checkpoint.js';
import { dynamicMap8bit, packedShape4bit, quantize4bit, quantMap4bit, quantStateJson } from './nf4.js';

const FORMAT_VERSION = 2; // 2: an untied lm_head is quantized too
const MANIFEST = 'peft-studio-quantized.json';
/** Fixed width of each quant-state JSON (about 200 bytes used). */
const STATE_BYTES = 512;
const WEIGHTS = 'model.safetensors';
const LM_HEAD = 'lm_head.weight';
const EMBEDDING = 'model.embed_tokens.weight';
/** Small files of the source folder copied beside the weights (tokenizer, generation and chat settings). */
const MAX_SIDE_FILE_BYTES = 64 * 2 ** 20;

export interface QuantizeProgress {
  /** Tensors written so far, of `total`. */
  done: number;
  total: number;
  /** True when the cache already held this model: nothing was quantized. */
  cached: boolean;
}

interface Manifest {
  version: number;
  key: string;
  sha256: string;
  bytes: number;
}

/** Identity of the source checkpoint and the format: its weight files' paths, sizes and modification times. */
function cacheKey(folder: ModelFolder, config: Quant4bitConfig): string {
  const files = [...new Set([...folder.tensors.values()].map((e) => e.file)), path.join(folder.dir, 'config.json')]
    .sort()
    .map((file) => {
      const stat = fs.statSync(file);
      return [file, stat.size, stat.mtimeMs];
    });
  const identity = JSON.stringify({ version: FORMAT_VERSION, ...config, blockSize: 64, files });
  return crypto.createHash('sha256').update(identity).digest('hex').slice(0, 32);
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 8 * 2 ** 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The cached folder when complete and intact; false when missing or damaged (then removed). */
async function intactCache(dir: string, key: string): Promise<boolean> {
  if (!fs.existsSync(dir)) return false;
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8')) as Manifest;
    const weights = path.join(dir, WEIGHTS);
    if (manifest.version === FORMAT_VERSION && manifest.key === key && fs.statSync(weights).size === manifest.bytes) {
      if ((await sha256File(weights)) === manifest.sha256) return true;
    }
  } catch {
    // unreadable manifest or weights: rebuilt below
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return false;
}

/**
 * The model a job runs on: the checkpoint as it is (`none`, or already 4-bit in the chosen format), or its 4-bit copy
 * under `cacheRoot`, quantized now or reused. bitsandbytes' double quantization is always on, as QLoRA has it: 0.37
 * bits less per weight.
 */
export async function openBaseModel(
  modelDir: string,
  quantize: QuantizeChoice,
  cacheRoot: string,
  onProgress: (progress: QuantizeProgress) => void,
): Promise<ModelFolder> {
  const folder = openModelFolder(modelDir);
  if (quantize === 'none' || folder.quantization?.quantType === quantize) return folder;
  if (folder.quantization) {
    const has = folder.quantization.quantType;
    throw new UserError(`${folder.dir}: already a 4-bit ${has} checkpoint; choose quantize none or ${has}`, {
      field: 'quantize',
    });
  }
  return openModelFolder(
    await quantizedFolder(folder, { quantType: quantize, doubleQuant: quantize !== 'int4' }, cacheRoot, onProgress),
  );
}

type LayoutEntry = { name: string; dtype: TensorToWrite['dtype']; shape: number[] };

/**
 * The 4-bit folder for `folder` under `cacheRoot`, quantized now unless an intact copy is there. Returns its path;
 * open it with openModelFolder.
 */
export async function quantizedFolder(
  folder: ModelFolder,
  config: Quant4bitConfig,
  cacheRoot: string,
  onProgress: (progress: QuantizeProgress) => void = () => {},
): Promise<string> {
  const key = cacheKey(folder, config);
  const dir = path.join(cacheRoot, key);
  const bnbType = config.quantType === 'int4' ? null : config.quantType;
  // int4 gives a tied model an lm_head of its own, the embedding quantized (llama.cpp's Q4_0 files multiply by their
  // Q4_0 token_embd too), so that decoding reads the [V, C] product in 4 bits; the embedding stays as stored.
  const untie = !bnbType && folder.spec.tieWordEmbeddings;
  const spec = untie ? { ...folder.spec, tieWordEmbeddings: false } : folder.spec;
  const sourceOf = (name: string) => folder.tensors.get(untie && name === LM_HEAD ? EMBEDDING : name)!;
  const shapes = expectedShapes(spec);
  const quantized = new Set(quantizableWeightNames(spec));
  const names = [...shapes.keys()].sort();
  const stateSuffix = `quant_state.bitsandbytes__${config.quantType}`;
  if (await intactCache(dir, key)) {
    onProgress({ done: names.length, total: names.length, cached: true });
    return dir;
  }

  // The header comes first, so every tensor's size is laid out before any is quantized. The quant-state JSON holds
  // the double quantization's float offset, known only once quantized: its bytes are padded with spaces to a fixed
  // width, which JSON readers ignore.
  const layout: LayoutEntry[] = [];
  for (const name of names) {
    const entry = sourceOf(name);
    if (!quantized.has(name)) {
      layout.push({ name, dtype: entry.dtype as TensorToWrite['dtype'], shape: entry.shape });
      continue;
    }
    const [rows, cols] = entry.shape;
    if (!bnbType) {
      if (cols % INT4_BLOCK_SIZE !== 0)
        throw new UserError(`${name} is [${rows}, ${cols}]: int4 needs rows whose width is a multiple of 32; use nf4`, {
          field: 'quantize',
        });
      layout.push({ name, dtype: 'U8', shape: [rows, cols / INT4_BLOCK_SIZE, INT4_BLOCK_SIZE / 2] });
      layout.push({ name: `${name}.scales`, dtype: 'F16', shape: [rows, cols / INT4_BLOCK_SIZE] });
      continue;
    }
    const n = rows * cols;
    if (n % 64 !== 0) throw new Error(`${name}: ${n} elements, not a multiple of the 4-bit block size 64`);
    const blocks = n / 64;
    layout.push({ name, dtype: 'U8', shape: packedShape4bit(n) });
    layout.push({ name: `${name}.absmax`, dtype: config.doubleQuant ? 'U8' : 'F32', shape: [blocks] });
    layout.push({ name: `${name}.quant_map`, dtype: 'F32', shape: [16] });
    if (config.doubleQuant) {
      layout.push({ name: `${name}.nested_absmax`, dtype: 'F32', shape: [Math.ceil(blocks / 256)] });
      layout.push({ name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256] });
    }
    layout.push({ name: `${name}.${stateSuffix}`, dtype: 'U8', shape: [STATE_BYTES] });
  }
  layout.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  let temp: string;
  try {
    fs.mkdirSync(cacheRoot, { recursive: true });
    temp = fs.mkdtempSync(path.join(cacheRoot, `${key}.tmp-`));
  } catch (err) {
    throw explainFileError(err, cacheRoot) ?? err;
  }
  try {
    const weightsFile = path.join(temp, WEIGHTS);
    const writer = new SafetensorsStreamWriter(weightsFile, layout, { format: 'pt' });
    try {
      const pending = new Map<string, TensorToWrite['data']>();
      let done = 0;
      for (const item of layout) {
        // A weight's name sorts before its `.absmax`, `.quant_map`... tensors: quantizing it fills those in.
        let data = pending.get(item.name);
        pending.delete(item.name);
        if (data === undefined) {
          const source = sourceOf(item.name);
          if (quantized.has(item.name) && !bnbType) {
            const q = quantizeInt4(readTensorF32(source), source.shape[0], source.shape[1]);
            data = q.packed;
            pending.set(
              `${item.name}.scales`,
              new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength),
            );
          } else if (quantized.has(item.name)) {
            const q = quantize4bit(readTensorF32(source), { quantType: bnbType!, doubleQuant: config.doubleQuant });
            data = q.packed;
            pending.set(`${item.name}.absmax`, q.nested ? q.nested.codes : q.absmax!);
            pending.set(`${item.name}.quant_map`, quantMap4bit(bnbType!));
            if (q.nested) {
              pending.set(`${item.name}.nested_absmax`, q.nested.absmax);
              pending.set(`${item.name}.nested_quant_map`, dynamicMap8bit(true));
            }
            const dtype = ({ F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const)[source.dtype as 'F32'];
            const state = new Uint8Array(STATE_BYTES).fill(0x20); // spaces
            state.set(Buffer.from(JSON.stringify(quantStateJson(q, source.shape, dtype)), 'utf8'));
            pending.set(`${item.name}.${stateSuffix}`, state);
          } else {
            data = readTensorBytes(source);
          }
          onProgress({ done: ++done, total: names.length, cached: false });
          await new Promise((resolve) => setImmediate(resolve)); // lets progress reach the parent process
        }
        writer.write(item.name, data);
      }
      writer.close();
    } catch (err) {
      writer.abort();
      throw err;
    }
    const configFile = path.join(folder.dir, 'config.json');
    const modelConfig = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    if (untie) modelConfig.tie_word_embeddings = false;
    modelConfig.quantization_config = bnbType
      ? quantizationConfigJson({ ...config, quantType: bnbType }, quantized.has(LM_HEAD))
      : int4QuantizationConfigJson();
    fs.writeFileSync(path.join(temp, 'config.json'), JSON.stringify(modelConfig, null, 2));
    for (const name of fs.readdirSync(folder.dir)) {
      const from = path.join(folder.dir, name);
      const stat = fs.statSync(from, { throwIfNoEntry: false });
      const sideFile = /\.(json|jinja|txt|model)$/.test(name) && !/safetensors|^config\.json$/.test(name);
      if (stat?.isFile() && sideFile && stat.size <= MAX_SIDE_FILE_BYTES) fs.copyFileSync(from, path.join(temp, name));
    }
    const manifest: Manifest = {
      version: FORMAT_VERSION,
      key,
      sha256: await sha256File(weightsFile),
      bytes: fs.statSync(weightsFile).size,
    };
    fs.writeFileSync(path.join(temp, MANIFEST), JSON.stringify(manifest, null, 2));
    fs.renameSync(temp, dir);
  } catch (err) {
    fs.rmSync(temp, { recursive: true, force: true });
    // A full disk or a read-only cache is the user's to act on: said where, in one line.
    throw explainFileError(err, cacheRoot) ?? err;
  }
  return dir;
}
