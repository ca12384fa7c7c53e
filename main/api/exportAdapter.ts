// export.run: an adapter as a PEFT folder (a copy), a merged model folder, or a llama.cpp LoRA GGUF with an Ollama
// Modelfile, written into a destination folder that is new or empty.
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { CheckedParams } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import type { AdapterRecord } from '../../shared/runs.js';
import { exportForOllama } from '../adapter/ollamaExport.js';
import { mergeLoraAdapter } from '../adapter/merge.js';

export interface ExportedFiles {
  path: string;
  files: string[];
}

export interface ExportRequest {
  adapter: AdapterRecord;
  baseModelDir: string;
  format: CheckedParams<'export.run'>['format'];
  destination: string;
}

function prepareDestination(destination: string): string {
  const dir = path.resolve(destination);
  if (fs.existsSync(dir) && (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0)) throw new UserError(`${dir}: the export destination must be a new or empty folder`);
  return dir;
}

const listFiles = (dir: string) => (fs.readdirSync(dir, { recursive: true }) as string[]).map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile()).sort();

export function exportAdapter(adapter: AdapterRecord, baseModelDir: string, format: ExportRequest['format'], destination: string): ExportedFiles {
  const dir = prepareDestination(destination);
  switch (format) {
    case 'peft':
      fs.cpSync(adapter.folder, dir, { recursive: true });
      return { path: dir, files: listFiles(dir) };
    case 'merged':
      if (adapter.method !== 'lora') throw new UserError(`adapter ${adapter.id} is a prompt-tuning adapter: only LoRA adapters merge into the model's weights`);
      mergeLoraAdapter({ modelDir: baseModelDir, adapterDir: adapter.folder, outDir: dir, maxShardBytes: 5e9 });
      return { path: dir, files: listFiles(dir) };
    case 'gguf': {
      if (adapter.method !== 'lora') throw new UserError(`adapter ${adapter.id} is a prompt-tuning adapter: llama.cpp and Ollama load only LoRA adapters; export it as a PEFT folder instead`);
      const { gguf, modelfile } = exportForOllama(baseModelDir, adapter.folder, path.join(dir, 'adapter.gguf'));
      return { path: gguf, files: [gguf, modelfile] };
    }
  }
}

/** exportAdapter on a worker thread; a UserError there is a UserError here. */
export function exportInWorker(request: ExportRequest): Promise<ExportedFiles> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./exportWorker.js', import.meta.url), { workerData: request });
    worker.once('message', (reply: { ok: true; value: ExportedFiles } | { ok: false; error: { name: string; message: string } }) => {
      if (reply.ok) resolve(reply.value);
      else reject(reply.error.name === 'UserError' ? new UserError(reply.error.message) : new Error(reply.error.message));
    });
    worker.once('error', reject);
  });
}
