// QLoRA from the command line: `train --quantize nf4` quantizes the demo model's projections once into the studio's
// cache (reused by the next run), trains LoRA on the 4-bit base, and the adapter, applied to the full-precision base
// it was quantized from, lowers the loss on held-out rows. Eval, merge and generate work from the 4-bit base too.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, lastJson, runCliAsync } from '../support/cli.js';

// The built CLI's demo files (main/demo.ts resolves them from dist/).
const DEMO_MODEL_DIR = path.join(ROOT, 'resources/demo/model');
const DEMO_DATA_FILE = path.join(ROOT, 'resources/demo/data.jsonl');

import { tempDir } from '../support/engine.js';

let work: string;
let env: NodeJS.ProcessEnv;
let trainFile: string;
let heldOutFile: string;

beforeAll(() => {
  work = tempDir('qlora-cli');
  env = { ...process.env, PEFT_STUDIO_HOME: path.join(work, 'home') };
  const rows = fs.readFileSync(DEMO_DATA_FILE, 'utf8').trim().split('\n');
  trainFile = path.join(work, 'train.jsonl');
  heldOutFile = path.join(work, 'held-out.jsonl');
  fs.writeFileSync(trainFile, `${rows.slice(0, 150).join('\n')}\n`);
  fs.writeFileSync(heldOutFile, `${rows.slice(150).join('\n')}\n`);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const evalLossOf = async (model: string, adapter: string[]) => {
  const run = await runCliAsync(['eval', '--model', model, ...adapter, '--data', heldOutFile, '--json'], { env });
  expect(run.code, run.stderr).toBe(0);
  return lastJson(run.stdout).loss as number;
};

const evalLoss = async (adapter: string[], quantize: string) => {
  const run = await runCliAsync(
    ['eval', '--model', DEMO_MODEL_DIR, ...adapter, '--data', heldOutFile, '--quantize', quantize, '--json'],
    { env },
  );
  expect(run.code, run.stderr).toBe(0);
  return lastJson(run.stdout).loss as number;
};

describe('train --quantize nf4', () => {
  it('trains on the 4-bit base; the adapter lowers held-out loss on the full-precision base', async () => {
    const out = path.join(work, 'adapter');
    const args = ['train', '--model', DEMO_MODEL_DIR, '--data', trainFile, '--out', out, '--quantize', 'nf4'];
    const recipe = ['--steps', '40', '--lr', '3e-3', '--scheduler', 'constant', '--lora-dropout', '0'];
    const run = await runCliAsync(
      [...args, ...recipe, '--targets', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj'],
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/quantizing base weights to 4 bits: \d+\/\d+ tensors/);
    expect(fs.existsSync(path.join(out, 'adapter_model.safetensors'))).toBe(true);
    const cached = fs.readdirSync(path.join(work, 'home', 'quantized'));
    expect(cached).toHaveLength(1);
    // Saved against the model chosen, as PEFT saves a QLoRA adapter, not against the 4-bit copy in the cache.
    const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(config.base_model_name_or_path).toBe(DEMO_MODEL_DIR);

    const base = await evalLoss([], 'none');
    const tuned = await evalLoss(['--adapter', out], 'none');
    expect(tuned).toBeLessThan(base - 0.05);
    // On the 4-bit base it was trained on, too; that eval reuses the cache.
    expect(await evalLoss(['--adapter', out], 'nf4')).toBeLessThan(base - 0.05);
    expect(fs.readdirSync(path.join(work, 'home', 'quantized'))).toEqual(cached);

    // Merged into the 4-bit base itself (dequantized): an approximation, said so, that answers as base + adapter.
    const fourBit = path.join(work, 'home', 'quantized', cached[0]);
    const merged = path.join(work, 'merged');
    const merge = await runCliAsync(['merge', '--model', fourBit, '--adapter', out, '--out', merged], { env });
    expect(merge.code, merge.stderr).toBe(0);
    expect(merge.stdout).toMatch(/the base was 4-bit: merged into its dequantized weights, an approximation/);
    expect(JSON.parse(fs.readFileSync(path.join(merged, 'config.json'), 'utf8')).quantization_config).toBeUndefined();
    const mergedLoss = lastJson(
      (await runCliAsync(['eval', '--model', merged, '--data', heldOutFile, '--json'], { env })).stdout,
    ).loss as number;
    const unmergedLoss = await evalLossOf(fourBit, ['--adapter', out]);
    expect(Math.abs(mergedLoss - unmergedLoss) / unmergedLoss).toBeLessThan(1e-4);

    // The playground answers from the 4-bit base with the adapter, from the same cache.
    const generate = ['generate', '--model', DEMO_MODEL_DIR, '--adapter', out, '--quantize', 'nf4'];
    const chat = await runCliAsync(
      [...generate, '--prompt', 'Hello', '--max-new-tokens', '6', '--ignore-eos', '--json'],
      {
        env,
      },
    );
    expect(chat.code, chat.stderr).toBe(0);
    expect(lastJson(chat.stdout).ids).toHaveLength(6);
    expect(fs.readdirSync(path.join(work, 'home', 'quantized'))).toEqual(cached);
  });

  it('refuses an unknown format as a usage error naming the choices', async () => {
    const run = await runCliAsync(['eval', '--model', DEMO_MODEL_DIR, '--data', heldOutFile, '--quantize', 'int8'], {
      env,
    });
    expect(run.code).toBe(2);
    expect(run.stderr.split('\n')[0]).toBe('peft-studio eval: --quantize int8: expected one of none, nf4, fp4, int4');
  });
});
