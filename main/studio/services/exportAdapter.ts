// export.run: an adapter as a PEFT folder (a copy), a merged model folder, a llama.cpp LoRA GGUF with an Ollama
// Modelfile, or one merged model GGUF (f16, q8_0, q4_0 or a k-quant mix) with its Modelfile, written into a destination
// folder that is new or empty, outside the adapter folder and the system's folders. Everything is written into a temp
// folder beside the destination, renamed into place once complete: a failure (a full disk) leaves nothing half-written.
import fs from 'node:fs';
import path from 'node:path';
import type { CheckedParams } from '../../../shared/api.js';
import { UserError } from '../../../shared/errors.js';
import type { AdapterRecord } from '../../../shared/runs.js';
import { overlap, realPath } from '../../adapter/adapterFiles.js';
import { exportForOllama, exportModelForOllama, ollamaCreateCommand } from '../../adapter/ollamaExport.js';
import { mergeLoraAdapter } from '../../adapter/merge.js';
import { explainFileError } from '../../util/fileErrors.js';

export interface ExportedFiles {
  path: string;
  files: string[];
  /** A GGUF export: the command that makes an Ollama model of it. */
  ollamaCommand?: string;
}

export interface ExportRequest {
  adapter: AdapterRecord;
  baseModelDir: string;
  format: CheckedParams<'export.run'>['format'];
  /** The tensor types of a gguf-model export. */
  quant: CheckedParams<'export.run'>['quant'];
  destination: string;
}

/** The GGUF file each GGUF export writes beside its Modelfile. */
const GGUF_FILES = { gguf: 'adapter.gguf', 'gguf-model': 'model.gguf' } as const;

/** Folders of the kernel and devices: writing there is never an export. */
const SYSTEM_FOLDERS = ['/proc', '/sys', '/dev'];

function prepareDestination(destination: string, adapterDir: string): string {
  if (destination.includes('\0')) {
    throw new UserError(`export destination ${JSON.stringify(destination)}: has a NUL byte, which no path can hold`);
  }
  const dir = path.resolve(destination);
  // As written and as it really is: /dev/shm may be a link elsewhere, a link elsewhere may lead into /proc.
  const under = (folder: string) => [dir, realPath(dir)].some((p) => p === folder || p.startsWith(`${folder}/`));
  const system = SYSTEM_FOLDERS.find(under);
  if (system) throw new UserError(`${dir}: is under ${system}, a system folder; choose a folder of your own`);
  const how = overlap(dir, adapterDir);
  if (how) throw new UserError(`${dir}: ${how} the adapter folder ${adapterDir}; choose a destination outside it`);
  if (fs.existsSync(dir) && (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0)) {
    throw new UserError(`${dir}: the export destination must be a new or empty folder`);
  }
  return dir;
}

const listFiles = (dir: string) =>
  (fs.readdirSync(dir, { recursive: true }) as string[])
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile())
    .sort();

/** Writes one format's files into `dir` (an empty folder). */
function writeExport({ adapter, baseModelDir, format, quant }: ExportRequest, dir: string): void {
  const notLora = `adapter ${adapter.id} is a prompt-tuning adapter`;
  const adapterDir = adapter.folder;
  switch (format) {
    case 'peft':
      return fs.cpSync(adapterDir, dir, { recursive: true });
    case 'merged':
      if (adapter.method !== 'lora') {
        throw new UserError(`${notLora}: only LoRA adapters merge into the model's weights`);
      }
      return void mergeLoraAdapter({ modelDir: baseModelDir, adapterDir, outDir: dir, maxShardBytes: 5e9 });
    case 'gguf':
      if (adapter.method !== 'lora') {
        const instead = 'export it as a PEFT folder instead';
        throw new UserError(`${notLora}: llama.cpp and Ollama load only LoRA adapters; ${instead}`);
      }
      return void exportForOllama(baseModelDir, adapterDir, path.join(dir, GGUF_FILES.gguf));
    case 'gguf-model':
      if (adapter.method !== 'lora') {
        throw new UserError(`${notLora}: it has no weights to merge into a model file; export it as a PEFT folder`);
      }
      return void exportModelForOllama({
        modelDir: baseModelDir,
        adapterDir,
        outFile: path.join(dir, GGUF_FILES['gguf-model']),
        quant,
      });
  }
}

export function exportAdapter(request: ExportRequest): ExportedFiles {
  const dir = prepareDestination(request.destination, request.adapter.folder);
  let temp: string | null = null;
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    temp = fs.mkdtempSync(path.join(path.dirname(dir), `.${path.basename(dir)}.partial-`));
    writeExport(request, temp);
    if (fs.existsSync(dir)) fs.rmdirSync(dir);
    fs.renameSync(temp, dir);
  } catch (err) {
    if (temp) fs.rmSync(temp, { recursive: true, force: true });
    throw explainFileError(err, dir) ?? err;
  }
  if (request.format !== 'gguf' && request.format !== 'gguf-model') return { path: dir, files: listFiles(dir) };
  const gguf = path.join(dir, GGUF_FILES[request.format]);
  const modelfile = path.join(dir, 'Modelfile');
  return { path: gguf, files: [gguf, modelfile], ollamaCommand: ollamaCreateCommand(dir, modelfile) };
}
