// A LoRA adapter for llama.cpp and Ollama: the LoRA GGUF file, and beside it a Modelfile that names the base and
// carries its chat template (a template mismatch is what makes exported adapters answer gibberish in Ollama); or the
// adapter merged into its base as one model GGUF, with a Modelfile FROM that file.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { chatTemplateFor } from '../model/chatTemplate.js';
import { openModelFolder } from '../model/modelFolder.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import { loadAdapter } from './anyAdapter.js';
import { ollamaModelfile, writeGgufLoraAdapter } from './gguf.js';
import { writeGgufModel, type GgufModelOptions, type GgufModelResult } from './ggufModel.js';

/**
 * The command that makes an Ollama model of the export: `ollama create <name> -f <Modelfile>`, the name from the
 * adapter folder's (Ollama's rules: lower case letters, digits, `-`, `_`, `.`), paths quoted for a POSIX shell.
 */
export function ollamaCreateCommand(adapterDir: string, modelfile: string): string {
  const name =
    path
      .basename(adapterDir)
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'adapter';
  const quoted = /^[\w./-]+$/.test(modelfile) ? modelfile : `'${modelfile.replace(/'/g, `'\\''`)}'`;
  return `ollama create ${name} -f ${quoted}`;
}

export function exportForOllama(
  modelDir: string,
  adapterDir: string,
  ggufFile: string,
): { gguf: string; modelfile: string } {
  const folder = openModelFolder(modelDir);
  const adapter = loadAdapter(adapterDir, folder.spec);
  if (adapter.kind !== 'lora') {
    throw new UserError(
      "prompt-tuning adapters cannot be exported to GGUF: llama.cpp, Ollama and most serving tools (transformers' load_adapter too) load only LoRA; PEFT's PeftModel.from_pretrained loads the adapter folder as it is",
    );
  }
  const gguf = path.resolve(ggufFile);
  fs.mkdirSync(path.dirname(gguf), { recursive: true });
  writeGgufLoraAdapter(gguf, adapter.lora, folder.spec, folder.dir);
  const template = chatTemplateFor(folder.dir, loadTokenizer(folder.dir).config, adapterDir)?.text ?? null;
  const modelfile = path.join(path.dirname(gguf), 'Modelfile');
  writeFileAtomic(modelfile, ollamaModelfile(folder.dir, gguf, template));
  return { gguf, modelfile };
}

/** The merged model GGUF (ggufModel.ts) and beside it a Modelfile FROM ./<file>, with the base's chat format. */
export function exportModelForOllama(options: GgufModelOptions): GgufModelResult & { modelfile: string } {
  const result = writeGgufModel(options);
  const modelfile = path.join(path.dirname(result.gguf), 'Modelfile');
  try {
    const { modelDir, adapterDir } = options;
    const template = chatTemplateFor(modelDir, loadTokenizer(modelDir).config, path.resolve(adapterDir))?.text ?? null;
    writeFileAtomic(modelfile, ollamaModelfile(`./${path.basename(result.gguf)}`, null, template));
  } catch (err) {
    fs.rmSync(result.gguf, { force: true }); // a model without its Modelfile is not the export asked for
    throw err;
  }
  return { ...result, modelfile };
}
