// `npm run bench`: PEFT Studio's training step against PyTorch, side by side in one run, each mode in a fresh process
// so peak RSS belongs to that mode alone. Prints a Markdown report (paste into docs/benchmarks.md) and writes JSON.
//   node test/bench/run.mjs [--quick] [--skip-torch] [--out bench-out]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { prepareDataset } from '../../dist/main/data/dataset.js';
import { createTinyModel } from '../../dist/main/model/tinyModel.js';
import { Rng } from '../../dist/main/util/random.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/main/cli/bin.js');
const TORCH_BENCH = path.join(ROOT, 'test/reference/torch_bench.py');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'skip-torch': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-out' },
    only: { type: 'string' },
  },
});
const run = (section) => !args.only || args.only.split(',').includes(section);

// SmolLM2-135M's shape.
const SMOL = { hidden: 576, intermediate: 1536, heads: 9, kvHeads: 3, vocab: 49152, layers: 30 };

/** A random-weight fp32 model folder of the given shape, with the tiny tokenizer (the ids it uses stay below V). */
function writeModel(dir, shape) {
  createTinyModel(dir, {
    arch: 'llama',
    layers: shape.layers,
    hidden: shape.hidden,
    heads: shape.heads,
    kvHeads: shape.kvHeads,
    intermediate: shape.intermediate,
    vocab: shape.vocab,
    dtype: 'f32',
    tie: true,
    seed: 0,
  });
}

function runJson(command, commandArgs, env = {}) {
  const result = spawnSync(command, commandArgs, {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { ...process.env, ...env },
  });
  const lines = result.stdout.trim().split('\n');
  if (result.status !== 0) throw new Error(`${command} ${commandArgs.join(' ')} failed:\n${result.stderr}`);
  return JSON.parse(lines[lines.length - 1]);
}

function ours(modelDir, { seqLen, batchSize, steps, checkpointing }) {
  const r = runJson(process.execPath, [
    CLI,
    'bench',
    '--model',
    modelDir,
    '--seq-len',
    String(seqLen),
    '--batch-size',
    String(batchSize),
    '--steps',
    String(steps),
    '--rank',
    '16',
    '--gradient-checkpointing',
    checkpointing ? 'on' : 'off',
    '--device',
    'cpu',
    '--json',
  ]);
  return { tokensPerSecond: r.tokensPerSecond, secondsPerStep: r.secondsPerStep, peakRssBytes: r.peakRssBytes };
}

/**
 * PyTorch runs two ways. "default": torch.set_num_threads(cores) with OpenBLAS's own default pool, as first measured
 * for the issues; Debian's torch hands matrix products to OpenBLAS, whose threads then compete with torch's on the same
 * cores. "tuned": OpenBLAS gets the cores and torch one thread, no oversubscription: the fair baseline.
 */
const TORCH_CONFIGS = {
  default: { threads: os.availableParallelism(), env: {} },
  tuned: { threads: 1, env: { OPENBLAS_NUM_THREADS: String(os.availableParallelism()) } },
};

function torch(shape, { seqLen, batchSize, steps, checkpointing }, config) {
  const r = runJson(
    '/usr/bin/python3',
    [
      TORCH_BENCH,
      '--hidden',
      String(shape.hidden),
      '--layers',
      String(shape.layers),
      '--heads',
      String(shape.heads),
      '--kv-heads',
      String(shape.kvHeads),
      '--intermediate',
      String(shape.intermediate),
      '--vocab',
      String(shape.vocab),
      '--batch-size',
      String(batchSize),
      '--seq-len',
      String(seqLen),
      '--steps',
      String(steps),
      '--rank',
      '16',
      '--alpha',
      '32',
      '--gradient-checkpointing',
      checkpointing ? 'on' : 'off',
      '--threads',
      String(config.threads),
      '--json',
    ],
    config.env,
  );
  return {
    tokensPerSecond: r.tokens_per_second,
    secondsPerStep: r.seconds_per_step,
    peakRssBytes: r.peak_rss_bytes,
    version: r.torch_version,
  };
}

const TORCH_GENERATE_BENCH = path.join(ROOT, 'test/reference/torch_generate_bench.py');

/** Batch-1 greedy decoding: `newTokens` after a `promptLen`-token prompt, never stopping at EOS. */
function oursGenerate(modelDir, { promptLen, newTokens }) {
  const rng = new Rng(1);
  const ids = Array.from({ length: promptLen }, () => rng.int(700)).join(',');
  const r = runJson(process.execPath, [
    CLI,
    'generate',
    '--model',
    modelDir,
    '--prompt-ids',
    ids,
    '--max-new-tokens',
    String(newTokens),
    '--ignore-eos',
    '--device',
    'cpu',
    '--json',
  ]);
  return { decodeTokensPerSecond: r.decodeTokensPerSecond, timeToFirstTokenSeconds: r.timeToFirstTokenSeconds };
}

function torchGenerate(shape, { promptLen, newTokens }, config) {
  const r = runJson(
    '/usr/bin/python3',
    [
      TORCH_GENERATE_BENCH,
      '--hidden',
      String(shape.hidden),
      '--layers',
      String(shape.layers),
      '--heads',
      String(shape.heads),
      '--kv-heads',
      String(shape.kvHeads),
      '--intermediate',
      String(shape.intermediate),
      '--vocab',
      String(shape.vocab),
      '--prompt-len',
      String(promptLen),
      '--new-tokens',
      String(newTokens),
      '--threads',
      String(config.threads),
      '--json',
    ],
    config.env,
  );
  return { decodeTokensPerSecond: r.decode_tokens_per_second, timeToFirstTokenSeconds: r.time_to_first_token_s };
}

/** Model FLOPs of one LoRA step (frozen base: no weight gradients; recompute adds a layer forward). */
function stepFlops(shape, { seqLen, batchSize, checkpointing }) {
  const n = seqLen * batchSize;
  const { hidden: C, intermediate: I, heads: H, kvHeads: K, vocab: V, layers: L } = shape;
  const D = C / H;
  const linear = 2 * n * (C * H * D + 2 * C * K * D + H * D * C + 3 * C * I);
  const attention = 4 * batchSize * seqLen * seqLen * H * D;
  const layerForward = linear + attention;
  const layerBackward = linear + 2 * attention;
  const head = 2 * n * C * V;
  return L * (layerForward + layerBackward + (checkpointing ? layerForward : 0)) + 2 * head;
}

/** fp32 2048^3 MatMul throughput of ONNX Runtime's CPU provider here: the ceiling a step can approach. */
async function matmulGflops() {
  const size = 2048;
  const { onnx } = (await import('onnx-proto')).default;
  const graph = {
    name: 'mm',
    node: [{ opType: 'MatMul', input: ['a', 'b'], output: ['c'] }],
    input: ['a', 'b'].map((name) => ({
      name,
      type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: size }, { dimValue: size }] } } },
    })),
    output: [{ name: 'c', type: { tensorType: { elemType: 1 } } }],
  };
  const bytes = onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ version: 18 }], graph }),
  ).finish();
  const session = await ort.InferenceSession.create(bytes);
  const a = new ort.Tensor('float32', new Float32Array(size * size).fill(0.5), [size, size]);
  await session.run({ a, b: a });
  const started = performance.now();
  const repeats = 5;
  for (let i = 0; i < repeats; i++) await session.run({ a, b: a });
  return (2 * size ** 3 * repeats) / ((performance.now() - started) / 1000) / 1e9;
}

const gib = (bytes) => (bytes / 2 ** 30).toFixed(2);

/** A chat JSONL of about `megabytes` MB: varied multi-turn conversations with system prompts and some unicode. */
function writeChatData(file, megabytes) {
  const rng = new Rng(7);
  const words =
    'the a bike shop order price delivery wheel brake chain repair warranty return size frame colour tyre saddle pedal gear light helmet lock week day hour open close thanks please help question answer ça fait 自転車 🚲'.split(
      ' ',
    );
  const sentence = (n) => Array.from({ length: n }, () => words[rng.int(words.length)]).join(' ');
  const out = fs.openSync(file, 'w');
  let written = 0;
  let rows = 0;
  while (written < megabytes * 1e6) {
    const messages = [{ role: 'system', content: `You are a helpful assistant. ${sentence(8)}.` }];
    for (let turn = 0, turns = 1 + rng.int(3); turn < turns; turn++) {
      messages.push(
        { role: 'user', content: `${sentence(10 + rng.int(30))}?` },
        { role: 'assistant', content: `${sentence(20 + rng.int(60))}.` },
      );
    }
    const line = `${JSON.stringify({ messages })}\n`;
    fs.writeSync(out, line);
    written += Buffer.byteLength(line);
    rows++;
  }
  fs.closeSync(out);
  return { bytes: written, rows };
}
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bench-'));
const report = {
  date: new Date().toISOString(),
  cpu: os.cpus()[0]?.model,
  threads: os.availableParallelism(),
  results: {},
};
try {
  const steps = args.quick ? 1 : 3;
  const smolShape = args.quick ? { ...SMOL, layers: 4 } : SMOL;
  const smolDir = path.join(workDir, 'smol');
  if (run('speed') || run('decoding')) {
    process.stderr.write(`writing a ${smolShape.layers}-layer SmolLM2-shaped model...\n`);
    writeModel(smolDir, smolShape);
  }
  report.ortMatmulGflops = await matmulGflops();

  const speed = { seqLen: 256, batchSize: 4, steps };
  for (const checkpointing of run('speed') ? [false, true] : []) {
    const key = checkpointing ? 'checkpointing on' : 'checkpointing off';
    process.stderr.write(`speed, ${key}: peft-studio...\n`);
    const mine = ours(smolDir, { ...speed, checkpointing });
    const flops = stepFlops(smolShape, { ...speed, checkpointing });
    mine.mfu = flops / mine.secondsPerStep / 1e9 / report.ortMatmulGflops;
    mine.gflopPerStep = flops / 1e9;
    report.results[`speed ${key}`] = { ours: mine };
    if (!args['skip-torch']) {
      for (const [name, config] of Object.entries(TORCH_CONFIGS)) {
        process.stderr.write(`speed, ${key}: PyTorch (${name})...\n`);
        report.results[`speed ${key}`][`torch ${name}`] = torch(smolShape, { ...speed, checkpointing }, config);
      }
    }
  }

  const decoding = { promptLen: 128, newTokens: args.quick ? 16 : 128 };
  if (run('decoding')) {
    process.stderr.write('decoding: peft-studio...\n');
    report.results.decoding = { ours: oursGenerate(smolDir, decoding) };
  }
  if (run('decoding') && !args['skip-torch']) {
    for (const [name, config] of Object.entries(TORCH_CONFIGS)) {
      process.stderr.write(`decoding: PyTorch (${name})...\n`);
      report.results.decoding[`torch ${name}`] = torchGenerate(smolShape, decoding, config);
    }
  }

  const memShape = { ...SMOL, layers: args.quick ? 4 : 24 };
  const memDir = path.join(workDir, 'mem');
  if (run('memory')) {
    process.stderr.write(`writing a ${memShape.layers}-layer model for the memory check...\n`);
    writeModel(memDir, memShape);
  }
  const memory = { seqLen: 512, batchSize: 4, steps: 1 };
  for (const checkpointing of run('memory') ? [false, true] : []) {
    const key = checkpointing ? 'checkpointing on' : 'checkpointing off';
    process.stderr.write(`memory at seq 512, ${key}...\n`);
    report.results[`memory ${key}`] = { ours: ours(memDir, { ...memory, checkpointing }) };
  }

  if (run('data')) {
    // Reading + rendering + tokenizing chat data with a real tokenizer and template (Llama 3.1's, from the fixtures).
    const file = path.join(workDir, 'chat.jsonl');
    const written = writeChatData(file, args.quick ? 5 : 100);
    process.stderr.write(`data: ${(written.bytes / 1e6).toFixed(0)} MB chat JSONL, ${written.rows} rows...\n`);
    const started = performance.now();
    const prepared = await prepareDataset({
      file,
      modelDir: path.join(ROOT, 'test/fixtures/templates/llama3'),
      vocabSize: 128256,
      maxSeqLen: 4096,
      trainOn: 'completion',
      pack: false,
      skipBadRows: false,
      validationFraction: 0,
      seed: 0,
    });
    const seconds = (performance.now() - started) / 1000;
    report.results.data = {
      megabytes: written.bytes / 1e6,
      rows: prepared.stats.rows,
      tokens: prepared.stats.tokens,
      seconds,
      rowsPerSecond: prepared.stats.rows / seconds,
      tokensPerSecond: prepared.stats.tokens / seconds,
    };
  }

  fs.mkdirSync(args.out, { recursive: true });
  fs.writeFileSync(path.join(args.out, 'bench.json'), JSON.stringify(report, null, 2));

  const lines = [
    `Run ${report.date} on ${report.cpu}, ${report.threads} threads. ONNX Runtime fp32 MatMul 2048^3: ${report.ortMatmulGflops.toFixed(0)} GFLOP/s.`,
  ];
  if (run('speed'))
    lines.push(
      '',
      `LoRA r16 on q,k,v,o, ${smolShape.layers}-layer SmolLM2-135M shape, batch 4 x 256, CPU, ${steps} timed steps after one warm-up:`,
      '',
      '| mode | PEFT Studio tok/s | s/step | peak RSS GiB | MFU | PyTorch default tok/s | PyTorch tuned tok/s | PyTorch peak RSS GiB |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
  const cell = (t, f) => (t ? f(t) : '-');
  for (const key of run('speed') ? ['checkpointing off', 'checkpointing on'] : []) {
    const { ours: o, 'torch default': d, 'torch tuned': t } = report.results[`speed ${key}`];
    lines.push(
      `| ${key} | ${o.tokensPerSecond.toFixed(1)} | ${o.secondsPerStep.toFixed(2)} | ${gib(o.peakRssBytes)} | ${(100 * o.mfu).toFixed(0)}% | ${cell(d, (x) => x.tokensPerSecond.toFixed(1))} | ${cell(t, (x) => x.tokensPerSecond.toFixed(1))} | ${cell(t ?? d, (x) => gib(x.peakRssBytes))} |`,
    );
  }
  const off = report.results['memory checkpointing off']?.ours;
  const on = report.results['memory checkpointing on']?.ours;
  if (off && on)
    lines.push(
      '',
      `Memory, ${memShape.layers} layers, batch 4 x 512: peak RSS ${gib(off.peakRssBytes)} GiB with checkpointing off, ${gib(on.peakRssBytes)} GiB on: ${(off.peakRssBytes / on.peakRssBytes).toFixed(2)}x lower.`,
    );
  const dec = report.results.decoding ?? { ours: null };
  if (dec.ours)
    lines.push(
      '',
      `Greedy decoding, batch 1, ${decoding.newTokens} new tokens after a ${decoding.promptLen}-token prompt (CPU):`,
      '',
      '| | decode tok/s | time to first token s |',
      '| --- | --- | --- |',
    );
  if (dec.ours)
    lines.push(
      `| PEFT Studio | ${dec.ours.decodeTokensPerSecond.toFixed(1)} | ${dec.ours.timeToFirstTokenSeconds.toFixed(2)} |`,
    );
  for (const name of Object.keys(TORCH_CONFIGS)) {
    const t = dec[`torch ${name}`];
    if (t)
      lines.push(
        `| PyTorch KV-cache loop (${name}) | ${t.decodeTokensPerSecond.toFixed(1)} | ${t.timeToFirstTokenSeconds.toFixed(2)} |`,
      );
  }
  const oursOn = report.results['speed checkpointing on']?.ours;
  for (const name of Object.keys(TORCH_CONFIGS)) {
    const torchOff = report.results['speed checkpointing off']?.[`torch ${name}`];
    const t = dec[`torch ${name}`];
    if (!oursOn || !torchOff || !t) continue;
    lines.push(
      '',
      `Against PyTorch ${name} (${torchOff.version}): training with checkpointing at ${(oursOn.tokensPerSecond / torchOff.tokensPerSecond).toFixed(2)}x its no-checkpointing tokens/s and ${(oursOn.peakRssBytes / torchOff.peakRssBytes).toFixed(2)}x its peak memory; decoding at ${(dec.ours.decodeTokensPerSecond / t.decodeTokensPerSecond).toFixed(2)}x its tokens/s.`,
    );
  }
  const data = report.results.data;
  if (data)
    lines.push(
      '',
      `Dataset pipeline (read + render with Llama 3.1's chat template + tokenize, completion-only labels): ${data.megabytes.toFixed(0)} MB chat JSONL, ${data.rows} rows, ${data.tokens} tokens in ${data.seconds.toFixed(1)} s: ${data.rowsPerSecond.toFixed(0)} rows/s, ${data.tokensPerSecond.toFixed(0)} tokens/s.`,
    );
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  fs.rmSync(workDir, { recursive: true, force: true });
}
