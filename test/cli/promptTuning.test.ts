// Prompt tuning from the command line: train soft prompts, save them as PEFT does, evaluate and generate with them.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader } from '../../main/model/safetensors.js';
import { lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

// Asynchronous: a test worker blocked for long misses Vitest's RPC deadline.
const cli = (...args: string[]) => runCliAsync(args);

const WORDS = [
  'apple',
  'river',
  'stone',
  'cloud',
  'green',
  'table',
  'music',
  'light',
  'paper',
  'chair',
  'bread',
  'glass',
];
const HELD_OUT = ['tiger', 'ocean', 'candle', 'mirror', 'pencil', 'garden'];
const line = (a: string, b: string) => JSON.stringify({ text: `Q: ${a} or ${b}?\nA: yes, ${a}.` });

let work: string;
let model: string;
let train: string;
let heldOut: string;

beforeAll(async () => {
  work = tempDir('prompt-tuning');
  model = path.join(work, 'model');
  expect(
    (
      await cli(
        'create-tiny-model',
        model,
        '--layers',
        '2',
        '--hidden',
        '64',
        '--heads',
        '4',
        '--kv-heads',
        '2',
        '--intermediate',
        '128',
      )
    ).code,
  ).toBe(0);
  train = path.join(work, 'train.jsonl');
  fs.writeFileSync(
    train,
    WORDS.flatMap((a, i) => [line(a, WORDS[(i + 1) % WORDS.length]), line(a, WORDS[(i + 5) % WORDS.length])]).join(
      '\n',
    ),
  );
  heldOut = path.join(work, 'held-out.jsonl');
  fs.writeFileSync(heldOut, HELD_OUT.map((a, i) => line(a, HELD_OUT[(i + 1) % HELD_OUT.length])).join('\n'));
});

describe('train --method prompt-tuning', () => {
  it('lowers held-out loss and saves the adapter as PEFT does', async () => {
    const out = path.join(work, 'soft-prompt');
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      train,
      '--out',
      out,
      '--method',
      'prompt-tuning',
      '--num-virtual-tokens',
      '8',
      '--epochs',
      '15',
      '--batch-size',
      '8',
      '--prompt-init-text',
      'Answer',
      '--device',
      'cpu',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'PROMPT_TUNING',
      task_type: 'CAUSAL_LM',
      num_virtual_tokens: 8,
      token_dim: 64,
      num_transformer_submodules: 1,
      prompt_tuning_init: 'TEXT',
    });
    const tensors = readSafetensorsHeader(path.join(out, 'adapter_model.safetensors'));
    expect([...tensors.keys()]).toEqual(['prompt_embeddings']);
    expect(tensors.get('prompt_embeddings')!.shape).toEqual([8, 64]);

    const base = lastJson((await cli('eval', '--model', model, '--data', heldOut, '--device', 'cpu', '--json')).stdout);
    const tuned = lastJson(
      (await cli('eval', '--model', model, '--adapter', out, '--data', heldOut, '--device', 'cpu', '--json')).stdout,
    );
    // A random 2-layer model gives soft prompts little to steer: measured 6.28 -> 6.11 nats per token.
    expect(tuned.loss).toBeLessThan(base.loss - 0.1);

    const generated = await cli(
      'generate',
      '--model',
      model,
      '--adapter',
      out,
      '--prompt',
      'Q: tiger or ocean?\nA:',
      '--max-new-tokens',
      '3',
      '--ignore-eos',
      '--json',
    );
    expect(generated.code, generated.stderr).toBe(0);
    expect(lastJson(generated.stdout).ids).toHaveLength(3);
  });

  it('starts from the embeddings of a text, repeated to the requested length', async () => {
    const out = path.join(work, 'text-init');
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      train,
      '--out',
      out,
      '--method',
      'prompt-tuning',
      '--num-virtual-tokens',
      '6',
      '--prompt-init',
      'text',
      '--prompt-init-text',
      'Answer yes',
      '--steps',
      '1',
      '--lr',
      '1e-9',
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      prompt_tuning_init: 'TEXT',
      prompt_tuning_init_text: 'Answer yes',
      tokenizer_name_or_path: model,
    });
  });

  it('refuses to continue a LoRA adapter as prompt tuning', async () => {
    const lora = path.join(work, 'lora');
    expect((await cli('train', '--model', model, '--data', train, '--out', lora, '--steps', '1')).code).toBe(0);
    const result = await cli(
      'train',
      '--model',
      model,
      '--data',
      train,
      '--out',
      path.join(work, 'x'),
      '--method',
      'prompt-tuning',
      '--init-adapter',
      lora,
      '--steps',
      '1',
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/error: --init-adapter: .*lora: a lora adapter cannot continue as prompt-tuning$/m);
  });
});
