// Greedy decoding with llama.cpp (the prebuilt CPU build that the node-llama-cpp devDependency ships), the contender
// to our own generation in the decoding benchmark. test/reference/write_gguf.py makes the GGUF from one of our model
// folders, so both sides decode the same weights.
//   node test/bench/llamaCppDecode.mjs --gguf FILE --prompt-ids 1,2,3 [--new-tokens 128] [--threads 2]
//        [--kv-type f16|f32] [--flash-attention] [--logits-out FILE.json]
// Evaluates the prompt ids in one batch, then decodes --new-tokens tokens one at a time (batch 1), always taking the
// most likely token and never stopping at end-of-sequence. Nothing is downloaded or built: getLlama uses the
// prebuilt binary or fails. Prints one JSON line on stdout:
//   decodeTokensPerSecond  new tokens after the first, per second of decoding (as `peft-studio generate` counts)
//   timeToFirstTokenSeconds  from starting to evaluate the prompt to having the first new token
//   loadSeconds  model and context load; ids: the generated ids; threads; kvType; flashAttention
//   nodeLlamaCppVersion, llamaCppRelease
// --kv-type: the KV cache's type, f16 by default as in llama.cpp; f32 for an exact comparison with our fp32 engine.
// --logits-out writes the first step's log-softmax over the vocabulary ({ logProbs: number[] }): node-llama-cpp
// hands out probabilities, not raw logits, so compare it with the log-softmax of the other side's logits.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const { values: args } = parseArgs({
  options: {
    gguf: { type: 'string' },
    'prompt-ids': { type: 'string' },
    'new-tokens': { type: 'string', default: '128' },
    threads: { type: 'string', default: '2' },
    'kv-type': { type: 'string', default: 'f16' },
    'flash-attention': { type: 'boolean', default: false },
    'logits-out': { type: 'string' },
  },
});

function fail(message) {
  process.stderr.write(`llamaCppDecode: ${message}\n`);
  process.exit(2);
}

if (!args.gguf || !args['prompt-ids']) fail('--gguf and --prompt-ids are required');
const promptIds = args['prompt-ids'].split(',').map(Number);
if (promptIds.length === 0 || promptIds.some((id) => !Number.isInteger(id) || id < 0))
  fail(`--prompt-ids must be non-negative integers, found ${args['prompt-ids']}`);
const newTokens = Number(args['new-tokens']);
const threads = Number(args.threads);
if (!Number.isInteger(newTokens) || newTokens < 1) fail('--new-tokens must be a positive integer');
if (!Number.isInteger(threads) || threads < 1) fail('--threads must be a positive integer');
const kvType = { f16: 'F16', f32: 'F32' }[args['kv-type']];
if (!kvType) fail('--kv-type must be f16 or f32');
const flashAttention = args['flash-attention'];

const loadStarted = performance.now();
const llama = await getLlama({
  build: 'never',
  gpu: false,
  skipDownload: true,
  usePrebuiltBinaries: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.error,
  maxThreads: threads,
});
const model = await llama.loadModel({ modelPath: args.gguf, gpuLayers: 0 });
const vocabSize = model.fileInsights.vocabularySize ?? model.tokens.size;
if (promptIds.some((id) => id >= vocabSize)) fail(`--prompt-ids must be below the vocabulary size ${vocabSize}`);
const needed = promptIds.length + newTokens;
const context = await model.createContext({
  sequences: 1,
  contextSize: Math.max(256, Math.ceil(needed / 256) * 256),
  batchSize: Math.max(512, promptIds.length),
  threads: { ideal: threads, min: threads },
  flashAttention,
  experimentalKvCacheKeyType: kvType,
  experimentalKvCacheValueType: kvType,
});
const sequence = context.getSequence();
const loadSeconds = (performance.now() - loadStarted) / 1000;

// The prompt, with the next token (and its probabilities, when asked for) from its last position.
const started = performance.now();
const wantLogits = args['logits-out'] !== undefined;
const promptResult = await sequence.controlledEvaluate(
  promptIds.map((id, i) =>
    i < promptIds.length - 1 ? id : [id, { generateNext: { token: true, probabilities: wantLogits } }],
  ),
);
const first = promptResult[promptIds.length - 1]?.next;
if (first?.token == null) fail('llama.cpp returned no token for the prompt');
const firstTokenAt = performance.now();
const ids = [first.token];

// One token at a time; the generator decodes the token it last yielded when asked for the next one.
if (ids.length < newTokens) {
  const steps = sequence.evaluate([first.token], { temperature: 0, yieldEogToken: true });
  for await (const id of steps) {
    ids.push(id);
    if (ids.length >= newTokens) break;
  }
}
const decodeSeconds = (performance.now() - firstTokenAt) / 1000;

if (wantLogits) {
  const logProbs = new Array(vocabSize).fill(-Infinity);
  for (const [id, p] of first.probabilities) logProbs[id] = Math.log(p);
  fs.writeFileSync(args['logits-out'], `${JSON.stringify({ tokenAfterPrompt: first.token, logProbs })}\n`);
}

/** node-llama-cpp's version from its package.json, which its "exports" keep from require(). */
function packageVersion() {
  for (let dir = path.dirname(fileURLToPath(import.meta.resolve('node-llama-cpp'))); ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (pkg.name === 'node-llama-cpp') return pkg.version;
    }
    if (path.dirname(dir) === dir) return null;
  }
}

console.log(
  JSON.stringify({
    decodeTokensPerSecond: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
    timeToFirstTokenSeconds: (firstTokenAt - started) / 1000,
    loadSeconds,
    ids,
    promptTokens: promptIds.length,
    threads,
    kvType: args['kv-type'],
    flashAttention,
    nodeLlamaCppVersion: packageVersion(),
    llamaCppRelease: llama.llamaCppRelease.release,
  }),
);
await context.dispose();
await model.dispose();
await llama.dispose();
