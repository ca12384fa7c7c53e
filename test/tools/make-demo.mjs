// Regenerates the built-in demo model, resources/demo/model, from the deterministic tiny-model generator.
// Usage: npm run build && node test/tools/make-demo.mjs
// test/model/demo.test.ts fails when the committed folder and the generator disagree.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createTinyModel, DEMO_TINY_MODEL } from '../../dist/main/model/tinyModel.js';

const modelDir = fileURLToPath(new URL('../../resources/demo/model', import.meta.url));
fs.rmSync(modelDir, { recursive: true, force: true });
const spec = createTinyModel(modelDir, DEMO_TINY_MODEL);
console.log(`wrote ${modelDir}: ${spec.modelType}, ${spec.numLayers} layers, hidden ${spec.hiddenSize}, vocab ${spec.vocabSize}`);
