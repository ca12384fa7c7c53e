// The built-in demo (resources/demo): a pretrained generic assistant in the tiny demo shape, and data that loads.
// The model is written by test/tools/pretrain_demo.py (PyTorch, not run here): these tests check what the app relies
// on, that it has the generator's layout, is not the generator's random weights, and speaks the demo's dialogue form.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { prepareDataset } from '../../main/data/dataset.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { readTensorF32 } from '../../main/model/safetensors.js';
import { createTinyModel, DEMO_TINY_MODEL } from '../../main/model/tinyModel.js';
import { lastJson, runCli } from '../support/cli.js';

const demoDir = fileURLToPath(new URL('../../resources/demo', import.meta.url));
const modelDir = path.join(demoDir, 'model');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-demo-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** The generator's folder in the demo shape: the layout the demo model keeps, with random weights. */
function generated(): string {
  const dir = path.join(scratch, 'generated');
  if (!fs.existsSync(dir)) createTinyModel(dir, DEMO_TINY_MODEL);
  return dir;
}

test('resources/demo/model has the layout of createTinyModel(DEMO_TINY_MODEL): config, tokenizer, tensor names, shapes, dtypes', () => {
  const random = generated();
  // Hidden files are the engine's temporary graphs, written beside the weights while another test runs the model.
  const files = (dir: string) =>
    fs
      .readdirSync(dir)
      .filter((name) => !name.startsWith('.'))
      .sort();
  expect(files(modelDir)).toEqual(files(random));
  for (const file of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
    expect(fs.readFileSync(path.join(modelDir, file)).equals(fs.readFileSync(path.join(random, file))), file).toBe(
      true,
    );
  }
  const demo = openModelFolder(modelDir);
  const layout = (tensors: typeof demo.tensors) =>
    [...tensors.values()].map((t) => `${t.name} ${t.dtype} [${t.shape}]`).sort();
  expect(layout(demo.tensors)).toEqual(layout(openModelFolder(random).tensors));
  expect(fs.statSync(path.join(modelDir, 'model.safetensors')).size).toBeLessThan(8 * 1024 * 1024);
});

test("resources/demo/model holds trained weights, not the generator's random ones (else: test/tools/pretrain_demo.py)", () => {
  const demo = openModelFolder(modelDir).tensors;
  const random = openModelFolder(generated()).tensors;
  for (const name of [
    'lm_head.weight',
    'model.embed_tokens.weight',
    'model.layers.0.self_attn.q_proj.weight',
    'model.norm.weight',
  ]) {
    const [a, b] = [readTensorF32(demo.get(name)!), readTensorF32(random.get(name)!)];
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 1e-3) differ++;
    expect(differ / a.length, name).toBeGreaterThan(0.5);
  }
});

test('the demo model was pretrained: low loss on generic dialogues it never saw, far below the random generator', () => {
  // Phrasings absent from pretrain_demo.py's corpus, answered the way the corpus answers their kind.
  const dialogues = [
    'User: Hi there.\nAssistant: Hello! How can I help you today?',
    'User: Tell me who you are.\nAssistant: I am a helpful assistant. I can answer questions, explain things and help with everyday tasks.',
    "User: Where is my suitcase?\nAssistant: I'm a general assistant, so I can't see your suitcase. Please contact the shop or company where you got it.",
    "User: Thank you very much.\nAssistant: You're welcome! Let me know if you need anything else.",
    'User: What is the opposite of wet?\nAssistant: The opposite of wet is dry.',
  ];
  const data = path.join(scratch, 'generic.jsonl');
  fs.writeFileSync(data, dialogues.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const evaluate = (model: string) => {
    const result = runCli(['eval', '--model', model, '--data', data, '--device', 'cpu', '--json']);
    expect(result.code, result.stderr).toBe(0);
    return lastJson(result.stdout).loss as number;
  };
  const [pretrained, random] = [evaluate(modelDir), evaluate(generated())];
  // Random weights over a 768-token vocabulary sit near ln(768) = 6.6 nats.
  expect(random).toBeGreaterThan(6);
  // Measured 0.99 (the unseen words "suitcase" and "dry" cost most of it); the random generator 6.6.
  expect(pretrained).toBeLessThan(1.5);
});

test('resources/demo/data.jsonl loads with the demo model: short text examples, each ending in EOS, no bad rows', async () => {
  const { spec } = openModelFolder(modelDir);
  const dataset = await prepareDataset({
    file: path.join(demoDir, 'data.jsonl'),
    modelDir,
    vocabSize: spec.vocabSize,
    maxSeqLen: 1024,
    trainOn: 'completion',
    pack: false,
    skipBadRows: false,
    validationFraction: 0,
    seed: 0,
  });
  expect(dataset.format).toBe('text');
  expect(dataset.badRows).toEqual([]);
  expect(dataset.sequences.length).toBeGreaterThanOrEqual(150);
  expect(dataset.sequences.length).toBeLessThanOrEqual(300);
  for (const sequence of dataset.sequences) {
    expect(sequence.inputIds.at(-1)).toBe(0);
    expect(sequence.inputIds.length).toBeLessThanOrEqual(128);
  }
});

test('resources/demo/held-out.jsonl: questions no training row asks, each of an answer the training rows teach', () => {
  const dialogues = (name: string) =>
    fs
      .readFileSync(path.join(demoDir, name), 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => (JSON.parse(line) as { text: string }).text.split('\nAssistant: '));
  const [train, heldOut] = [dialogues('data.jsonl'), dialogues('held-out.jsonl')];
  expect(heldOut.length).toBeGreaterThanOrEqual(10);
  const askedInTraining = new Set(train.map(([question]) => question));
  const taught = new Set(train.map(([, answer]) => answer));
  for (const [question, answer] of heldOut) {
    expect(askedInTraining.has(question), question).toBe(false);
    expect(taught.has(answer), question).toBe(true);
  }
});
