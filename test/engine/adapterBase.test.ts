// The base model an adapter names (adapter_config.json's base_model_name_or_path), as PEFT records it for QLoRA.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { adapterBaseModel } from '../../main/engine/jobs/trainer.js';
import { tempDir } from '../support/engine.js';

function modelFolder(config: Record<string, unknown>): string {
  const dir = path.join(tempDir('adapter-base'), 'model');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', ...config }));
  return dir;
}

const BNB = { quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true } };

describe('adapterBaseModel', () => {
  it('is the folder chosen for a 16-bit or 32-bit checkpoint, whatever its config says it came from', () => {
    const dir = modelFolder({ _name_or_path: 'meta-llama/Llama-3.2-1B' });
    expect(adapterBaseModel(dir)).toBe(dir);
  });

  it('is the Hub model a pre-quantized (bnb-4bit) checkpoint names, as PEFT saves it', () => {
    expect(adapterBaseModel(modelFolder({ ...BNB, _name_or_path: 'unsloth/Llama-3.2-1B' }))).toBe(
      'unsloth/Llama-3.2-1B',
    );
  });

  it('is a local model folder the pre-quantized checkpoint names, when that folder is here', () => {
    const original = modelFolder({});
    expect(adapterBaseModel(modelFolder({ ...BNB, _name_or_path: original }))).toBe(original);
  });

  it('is the checkpoint itself when the name leads nowhere', () => {
    for (const named of ['/no/such/model', 'not a repo', 42]) {
      const dir = modelFolder({ ...BNB, _name_or_path: named });
      expect(adapterBaseModel(dir)).toBe(dir);
    }
    const bare = modelFolder(BNB);
    expect(adapterBaseModel(bare)).toBe(bare);
  });
});
