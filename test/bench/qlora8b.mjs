// The 8B QLoRA step of issue 15: a Llama-3.1-8B-shaped model with random bf16 weights on disk, quantized to NF4 on
// load (double quantization; the untied lm_head too), then one LoRA training step (r 16 on q, k, v, o; batch 1 x 512;
// checkpointing on; AdamW) in a fresh process, whose peak RSS is reported beside the memory plan's prediction.
//   npm run build && node test/bench/qlora8b.mjs [--dir /tmp/llama8b] [--threads 2]
// Needs about 22 GB of disk (16 GB checkpoint, 4.4 GB 4-bit copy) and, to write the checkpoint, about 3 GB of memory.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = path.join(ROOT, 'dist', 'main');
const { values: args } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/llama8b' },
    threads: { type: 'string', default: '2' },
    phase: { type: 'string' },
  },
  allowPositionals: true,
});
const modelDir = args.dir;
const cacheRoot = `${modelDir}-quantized`;
const SHAPE = { hidden: 4096, layers: 32, heads: 32, kvHeads: 8, intermediate: 14336, vocab: 128256 };
const GiB = 2 ** 30;

/** Writes the bf16 checkpoint shard by shard, tensor by tensor, with a tokenizer from the tiny-model writer. */
async function writeModel() {
  const { createTinyModel } = await import(`${DIST}/model/tinyModel.js`);
  const { parseModelConfig, expectedShapes } = await import(`${DIST}/model/architecture.js`);
  const { SafetensorsStreamWriter } = await import(`${DIST}/model/safetensors.js`);
  const staging = `${modelDir}.tmp`;
  fs.rmSync(staging, { recursive: true, force: true });
  // A one-layer model of the full vocabulary supplies tokenizer.json and the config's other fields.
  createTinyModel(staging, {
    arch: 'llama',
    layers: 1,
    hidden: 64,
    heads: 4,
    kvHeads: 2,
    intermediate: 64,
    vocab: SHAPE.vocab,
    dtype: 'bf16',
    tie: false,
    seed: 0,
  });
  const configFile = path.join(staging, 'config.json');
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  Object.assign(config, {
    hidden_size: SHAPE.hidden,
    num_hidden_layers: SHAPE.layers,
    num_attention_heads: SHAPE.heads,
    num_key_value_heads: SHAPE.kvHeads,
    intermediate_size: SHAPE.intermediate,
    head_dim: SHAPE.hidden / SHAPE.heads,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
  });
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  fs.rmSync(path.join(staging, 'model.safetensors'));
  const spec = parseModelConfig(config, configFile);
  const names = [...expectedShapes(spec).keys()].sort();
  const shapes = expectedShapes(spec);
  // Shards of about 2 GB, in name order.
  const shards = [[]];
  let bytes = 0;
  for (const name of names) {
    const size = shapes.get(name).reduce((a, b) => a * b, 1) * 2;
    if (bytes + size > 2 * GiB && shards.at(-1).length) [shards[shards.length], bytes] = [[], 0];
    shards.at(-1).push(name);
    bytes += size;
  }
  const weightMap = {};
  let state = 0x9e3779b9;
  for (let s = 0; s < shards.length; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const writer = new SafetensorsStreamWriter(
      path.join(staging, file),
      shards[s].map((name) => ({ name, dtype: 'BF16', shape: shapes.get(name) })),
      { format: 'pt' },
    );
    for (const name of shards[s]) {
      const shape = shapes.get(name);
      const n = shape.reduce((a, b) => a * b, 1);
      const values = new Uint16Array(n);
      if (shape.length === 1)
        values.fill(0x3f80); // norms: 1.0
      else {
        // Magnitudes 0.016-0.06 of random sign (bf16: exponent 121-123, random mantissa), from a xorshift32 stream.
        for (let i = 0; i < n; i++) {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          values[i] = (state & 0x8000) | (0x3c80 + ((state >>> 16) & 0xff));
        }
      }
      writer.write(name, new Uint8Array(values.buffer));
      weightMap[name] = file;
    }
    writer.close();
    console.log(`wrote ${file}`);
  }
  fs.writeFileSync(
    path.join(staging, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2),
  );
  fs.renameSync(staging, modelDir);
}

/** In a child process: quantize into the cache (or find it there). */
async function quantizePhase() {
  const { openModelFolder } = await import(`${DIST}/model/modelFolder.js`);
  const { quantizedFolder } = await import(`${DIST}/model/quant/quantizeOnLoad.js`);
  const started = performance.now();
  let last = 0;
  const dir = await quantizedFolder(
    openModelFolder(modelDir),
    { quantType: 'nf4', doubleQuant: true },
    cacheRoot,
    (p) => {
      if (performance.now() - last > 30_000)
        [last] = [performance.now(), console.error(`quantized ${p.done}/${p.total}`)];
    },
  );
  console.log(
    JSON.stringify({
      dir,
      seconds: (performance.now() - started) / 1000,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    }),
  );
}

/** In a child process: load the 4-bit copy and run one training step. */
async function stepPhase(quantizedDir) {
  const { openModelFolder } = await import(`${DIST}/model/modelFolder.js`);
  const { initLoraWeights, loraScale } = await import(`${DIST}/adapter/loraAdapter.js`);
  const { TrainableModel } = await import(`${DIST}/engine/runtime/trainableModel.js`);
  const { createOptimizer, clipGradNorm } = await import(`${DIST}/engine/jobs/optimizer.js`);
  const folder = openModelFolder(quantizedDir);
  let seed = 1;
  const uniform = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
  const settings = { rank: 16, alpha: 32, dropout: 0, targets, useRslora: false };
  const lora = initLoraWeights(folder.spec, settings, uniform);
  const loadStarted = performance.now();
  const model = await TrainableModel.load(folder, {
    device: 'cpu',
    lora: { rank: 16, scale: loraScale(settings), targets, dropout: false },
    dropoutProbability: 0,
    gradientCheckpointing: true,
    tuning: { threads: Number(args.threads) },
  });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const zero = (w) => ({
    ...w,
    layers: w.layers.map(
      (pairs) =>
        new Map([...pairs].map(([t, p]) => [t, { a: new Float32Array(p.a.length), b: new Float32Array(p.b.length) }])),
    ),
  });
  const grads = zero(lora);
  const flat = (w) => w.layers.flatMap((pairs) => [...pairs.values()].flatMap((p) => [p.a, p.b]));
  const [params, gradTensors] = [flat(lora), flat(grads)];
  const optimizer = createOptimizer(
    { name: 'adamw', learningRate: 1e-4, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 },
    params.map((p) => p.length),
  );
  const n = 512;
  const inputIds = new Int32Array(n).map(() => Math.floor(uniform() * folder.spec.vocabSize));
  const started = performance.now();
  const loss = await model.forwardBackward(
    { batchSize: 1, seqLen: n, inputIds, labels: inputIds },
    lora,
    grads,
    n - 1,
    0,
  );
  clipGradNorm(gradTensors, 1);
  optimizer.step(params, gradTensors, 1e-4);
  const stepSeconds = (performance.now() - started) / 1000;
  await model.close();
  console.log(JSON.stringify({ loss, loadSeconds, stepSeconds, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

async function plan() {
  const { openModelFolder } = await import(`${DIST}/model/modelFolder.js`);
  const { planTrainingMemory } = await import(`${DIST}/engine/compile/memoryPlan.js`);
  return planTrainingMemory({
    spec: openModelFolder(modelDir).spec,
    weightBytesPerElement: 2,
    quantize: 'nf4',
    method: 'lora',
    lora: { rank: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
    numVirtualTokens: 0,
    batchSize: 1,
    seqLen: 512,
    gradientCheckpointing: true,
    optimizer: 'adamw',
    device: 'cpu',
  });
}

async function child(phase, extra = []) {
  const { engineMallocEnv } = await import(`${DIST}/engine/compile/mallocEnv.js`);
  const r = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), '--dir', modelDir, '--threads', args.threads, '--phase', phase, ...extra],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      // glibc's mmap threshold as the engine process has it (engine/process/host.ts).
      env: { ...process.env, ...engineMallocEnv('nf4') },
      encoding: 'utf8',
      maxBuffer: 2 ** 24,
    },
  );
  if (r.status !== 0) throw new Error(`${phase} failed (${r.status ?? r.signal})`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

if (args.phase === 'quantize') await quantizePhase();
else if (args.phase === 'step') await stepPhase(process.argv.at(-1));
else {
  if (!fs.existsSync(modelDir)) await writeModel();
  const quantized = await child('quantize');
  console.log(`quantize: ${quantized.seconds.toFixed(0)} s, peak RSS ${(quantized.peakRssBytes / GiB).toFixed(2)} GiB`);
  const step = await child('step', [quantized.dir]);
  const planned = await plan();
  const parts = Object.fromEntries(Object.entries(planned.parts).map(([k, v]) => [k, +(v / GiB).toFixed(2)]));
  console.log(
    `step: load ${step.loadSeconds.toFixed(0)} s, step ${step.stepSeconds.toFixed(0)} s, loss ${step.loss.toFixed(3)}, ` +
      `peak RSS ${(step.peakRssBytes / GiB).toFixed(2)} GiB; planned ${(planned.totalBytes / GiB).toFixed(2)} GiB ${JSON.stringify(parts)}`,
  );
}
