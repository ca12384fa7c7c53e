// The built-in demo (resources/demo): the committed model must be what the generator writes, and the data must load.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { prepareDataset } from '../../main/data/dataset.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { createTinyModel, DEMO_TINY_MODEL } from '../../main/model/tinyModel.js';

const demoDir = fileURLToPath(new URL('../../resources/demo', import.meta.url));
const modelDir = path.join(demoDir, 'model');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-demo-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

test('resources/demo/model is exactly what createTinyModel(DEMO_TINY_MODEL) writes (else: node test/tools/make-demo.mjs)', () => {
  const regenerated = path.join(scratch, 'model');
  createTinyModel(regenerated, DEMO_TINY_MODEL);
  expect(fs.readdirSync(modelDir).sort()).toEqual(fs.readdirSync(regenerated).sort());
  for (const file of fs.readdirSync(regenerated)) {
    expect(fs.readFileSync(path.join(modelDir, file)).equals(fs.readFileSync(path.join(regenerated, file))), file).toBe(true);
  }
  expect(fs.statSync(path.join(modelDir, 'model.safetensors')).size).toBeLessThan(8 * 1024 * 1024);
});

test('resources/demo/data.jsonl loads with the demo model: short text examples, each ending in EOS, no bad rows', async () => {
  const { spec } = openModelFolder(modelDir);
  const dataset = await prepareDataset({ file: path.join(demoDir, 'data.jsonl'), modelDir, vocabSize: spec.vocabSize, maxSeqLen: 1024, trainOn: 'completion', pack: false, skipBadRows: false, validationFraction: 0, seed: 0 });
  expect(dataset.format).toBe('text');
  expect(dataset.badRows).toEqual([]);
  expect(dataset.sequences.length).toBeGreaterThanOrEqual(150);
  expect(dataset.sequences.length).toBeLessThanOrEqual(300);
  for (const sequence of dataset.sequences) {
    expect(sequence.inputIds.at(-1)).toBe(0);
    expect(sequence.inputIds.length).toBeLessThanOrEqual(128);
  }
});
