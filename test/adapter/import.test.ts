// Importing adapters made elsewhere: PEFT's name variants are accepted, unsafe or foreign files are refused clearly.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAdapter } from '../../main/adapter/anyAdapter.js';
import { saveLoraAdapter, peftKey } from '../../main/adapter/loraAdapter.js';
import { openModelFolder, type ModelFolder } from '../../main/model/modelFolder.js';
import {
  readSafetensorsHeader,
  readTensorF32,
  writeSafetensors,
  type TensorToWrite,
} from '../../main/model/safetensors.js';
import { createTinyModel } from '../../main/model/tinyModel.js';
import { randomLora, tempDir } from '../support/engine.js';

let work: string;
let folder: ModelFolder;
let original: string;

beforeAll(() => {
  work = tempDir('import');
  createTinyModel(path.join(work, 'model'), { layers: 2, hidden: 32, heads: 4, kvHeads: 2, intermediate: 64 });
  folder = openModelFolder(path.join(work, 'model'));
  original = path.join(work, 'original');
  saveLoraAdapter(
    original,
    randomLora(folder, { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'], useRslora: false }, 1),
    folder.dir,
  );
});

/** A copy of the saved adapter whose tensors are renamed (or extended) by `rename`. */
function variant(name: string, rename: (key: string) => string, extra: Record<string, TensorToWrite> = {}): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(original, 'adapter_config.json'), path.join(dir, 'adapter_config.json'));
  const tensors: Record<string, TensorToWrite> = { ...extra };
  for (const [key, entry] of readSafetensorsHeader(path.join(original, 'adapter_model.safetensors')))
    tensors[rename(key)] = { dtype: 'F32', shape: entry.shape, data: readTensorF32(entry) };
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors);
  return dir;
}

describe('adapter import', () => {
  it('accepts .default adapter names and a missing base_model.model. prefix, with the same weights', () => {
    const reference = loadAdapter(original, folder.spec);
    const renamed = variant('renamed', (key) =>
      key.replace('.weight', '.default.weight').replace('base_model.model.', ''),
    );
    expect(
      readSafetensorsHeader(path.join(renamed, 'adapter_model.safetensors')).has(
        'model.layers.0.self_attn.q_proj.lora_A.default.weight',
      ),
    ).toBe(true);
    const loaded = loadAdapter(renamed, folder.spec);
    if (loaded.kind !== 'lora' || reference.kind !== 'lora') throw new Error('expected LoRA');
    expect(loaded.lora.layers[1].get('v_proj')!.b).toEqual(reference.lora.layers[1].get('v_proj')!.b);
  });

  it('refuses pickled .bin adapters with the reason', () => {
    const dir = path.join(work, 'pickled');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(original, 'adapter_config.json'), path.join(dir, 'adapter_config.json'));
    fs.writeFileSync(path.join(dir, 'adapter_model.bin'), 'not really a pickle');
    expect(() => loadAdapter(dir, folder.spec)).toThrow(
      /adapter_model\.bin, a pickled PyTorch file that can run code when loaded/,
    );
  });

  it('refuses weights that live outside the adapter folder', () => {
    const dir = path.join(work, 'escaping');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(original, 'adapter_config.json'), path.join(dir, 'adapter_config.json'));
    fs.symlinkSync(path.join(original, 'adapter_model.safetensors'), path.join(dir, 'adapter_model.safetensors'));
    expect(() => loadAdapter(dir, folder.spec)).toThrow(/points outside the adapter folder/);
  });

  it('says precisely what does not match: a foreign tensor, a wrong shape', () => {
    const extra = variant('extra', (key) => key, {
      'base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight': {
        dtype: 'F32',
        shape: [2, 32],
        data: new Float32Array(64),
      },
    });
    expect(() => loadAdapter(extra, folder.spec)).toThrow(
      /tensor "base_model\.model\.model\.layers\.5\.self_attn\.q_proj\.lora_A\.weight" does not belong to a q_proj\/v_proj LoRA of this 2-layer model/,
    );
    const other = path.join(work, 'other-model');
    createTinyModel(other, { layers: 2, hidden: 48, heads: 4, kvHeads: 2, intermediate: 64 });
    expect(() => loadAdapter(original, openModelFolder(other).spec)).toThrow(
      new RegExp(`"${peftKey(0, 'q_proj', 'A').replace(/\./g, '\\.')}" has shape \\[2,32\\], expected \\[2,48\\]`),
    );
  });
});
