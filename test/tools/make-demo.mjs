// Regenerates the built-in demo model, resources/demo/model, in two steps: the deterministic tiny-model generator
// writes its layout (config.json, tokenizer, random weights), then test/tools/pretrain_demo.py (PyTorch) pretrains
// the weights into a generic assistant and rewrites model.safetensors.
// Usage: npm run build && node test/tools/make-demo.mjs   (PYTHON=... to pick the interpreter with torch; default
// /usr/bin/python3, Debian's python3-torch). test/model/demo.test.ts checks the layout and that the weights are
// trained.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createTinyModel, DEMO_TINY_MODEL } from '../../dist/main/model/tinyModel.js';

const modelDir = fileURLToPath(new URL('../../resources/demo/model', import.meta.url));
const pretrain = fileURLToPath(new URL('./pretrain_demo.py', import.meta.url));
fs.rmSync(modelDir, { recursive: true, force: true });
const spec = createTinyModel(modelDir, DEMO_TINY_MODEL);
console.log(
  `wrote ${modelDir}: ${spec.modelType}, ${spec.numLayers} layers, hidden ${spec.hiddenSize}, vocab ${spec.vocabSize}`,
);
const python = process.env.PYTHON ?? '/usr/bin/python3';
const run = spawnSync(python, [pretrain], { stdio: 'inherit' });
if (run.status !== 0) {
  console.error(`${python} ${pretrain} failed (exit ${run.status ?? run.signal}): ${modelDir} holds random weights`);
  process.exit(1);
}
