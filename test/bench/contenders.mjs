// The benchmark's contenders: for each, the command line of one fresh process and how to read its one JSON line.
// Every contender gets the same thread count T.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/main/cli/bin.js');
const TORCH_BENCH = path.join(ROOT, 'test/reference/torch_bench.py');
const TORCH_GENERATE_BENCH = path.join(ROOT, 'test/reference/torch_generate_bench.py');
const HF_PEFT_BENCH = path.join(ROOT, 'test/reference/hf_peft_bench.py');
const WRITE_GGUF = path.join(ROOT, 'test/reference/write_gguf.py');
const LLAMA_CPP_DECODE = path.join(ROOT, 'test/bench/llamaCppDecode.mjs');

/** Keeps transformers and the hub offline, without progress bars; their warnings stay (the report keeps stderr). */
const HF_ENV = {
  HF_HUB_OFFLINE: '1',
  TRANSFORMERS_OFFLINE: '1',
  HF_HUB_DISABLE_PROGRESS_BARS: '1',
  TOKENIZERS_PARALLELISM: 'false',
};

const shapeArgs = (shape) => [
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
];

/**
 * The plain PyTorch reference's thread setup. Debian's torch 1.13 hands matrix products to OpenBLAS, whose own pool
 * would compete with torch's: OpenBLAS gets the T threads and torch one ("tuned"; the oversubscribed "default" is no
 * longer run). A pip PyTorch 2 (the fallback when Debian's is not installed) has MKL/oneDNN under torch's own pool:
 * torch gets T.
 */
function plainTorchThreads(torchRuntime, threads) {
  return torchRuntime.debian
    ? { threads: 1, env: { OPENBLAS_NUM_THREADS: String(threads) } }
    : { threads, env: { OMP_NUM_THREADS: String(threads) } };
}

const plainTorchName = (torchRuntime) =>
  torchRuntime.torchVersion ? `plain PyTorch ${torchRuntime.torchVersion}` : 'plain PyTorch';

/**
 * Training contenders on `modelDir` (an HF folder of `shape`): { id, label, checkpointing, skipped?, command(),
 * parse(json) -> { tokensPerSecond, secondsPerStep, peakRssBytes, ... } }.
 */
export function trainingContenders({ modelDir, shape, speed, threads, venv, torchRuntime }) {
  const { seqLen, batchSize, steps } = speed;
  const list = [];
  for (const checkpointing of [true, false]) {
    const onOff = checkpointing ? 'on' : 'off';
    list.push({
      id: `peft-studio-ckpt-${onOff}`,
      label: `PEFT Studio, checkpointing ${onOff}`,
      ours: true,
      checkpointing,
      command: () => ({
        command: process.execPath,
        args: [
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
          onOff,
          '--device',
          'cpu',
          '--threads',
          String(threads),
          '--json',
        ],
      }),
      parse: (r) => ({
        tokensPerSecond: r.tokensPerSecond,
        secondsPerStep: r.secondsPerStep,
        peakRssBytes: r.peakRssBytes,
        threads: r.threads,
        device: r.device,
      }),
    });
  }
  for (const attn of ['sdpa', 'eager']) {
    for (const checkpointing of [true, false]) {
      const onOff = checkpointing ? 'on' : 'off';
      list.push({
        id: `hf-peft-${attn}-ckpt-${onOff}`,
        label: `Transformers + PEFT, ${attn}, checkpointing ${onOff}`,
        checkpointing,
        skipped: venv.skipped,
        command: () => ({
          command: venv.python,
          args: [
            HF_PEFT_BENCH,
            '--model',
            modelDir,
            '--attn',
            attn,
            '--gradient-checkpointing',
            onOff,
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
            '--threads',
            String(threads),
            '--json',
          ],
          env: { ...HF_ENV, OMP_NUM_THREADS: String(threads) },
        }),
        parse: (r) => {
          // A wrong setup (weights not loaded, labels misaligned) shows in the first loss: about ln(vocab) here.
          if (!(Math.abs(r.first_loss - r.expected_first_loss) < 1))
            throw new Error(`first loss ${r.first_loss}, expected about ${r.expected_first_loss}`);
          if (r.checkpointing !== checkpointing) throw new Error(`checkpointing came out ${r.checkpointing}`);
          return {
            tokensPerSecond: r.tokens_per_second,
            secondsPerStep: r.seconds_per_step,
            peakRssBytes: r.peak_rss_bytes,
            threads: r.threads,
            firstLoss: r.first_loss,
            version: `torch ${r.torch_version}, transformers ${r.transformers_version}, peft ${r.peft_version}`,
          };
        },
      });
    }
  }
  const plain = torchRuntime.skipped ? null : plainTorchThreads(torchRuntime, threads);
  for (const checkpointing of [true, false]) {
    const onOff = checkpointing ? 'on' : 'off';
    list.push({
      id: `torch-ckpt-${onOff}`,
      label: `${plainTorchName(torchRuntime)}, checkpointing ${onOff}`,
      checkpointing,
      skipped: torchRuntime.skipped,
      command: () => ({
        command: torchRuntime.python,
        args: [
          TORCH_BENCH,
          ...shapeArgs(shape),
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
          onOff,
          '--threads',
          String(plain.threads),
          '--json',
        ],
        env: plain.env,
      }),
      parse: (r) => ({
        tokensPerSecond: r.tokens_per_second,
        secondsPerStep: r.seconds_per_step,
        peakRssBytes: r.peak_rss_bytes,
        threads: r.threads,
        version: `torch ${r.torch_version}`,
      }),
    });
  }
  return list;
}

export const GGUF_TYPES = ['f32', 'f16', 'q8_0', 'q4_0'];
/** Our generation's precisions: the checkpoint's fp32, int4 (llama.cpp's Q4_0 values, MatMulNBits) and nf4. */
const DECODE_PRECISIONS = [
  { quantize: 'none', label: 'fp32' },
  { quantize: 'int4', label: 'int4, Q4_0 values' },
  { quantize: 'nf4', label: 'nf4' },
];

/**
 * Decoding contenders: batch 1, greedy, `newTokens` after the prompt `promptIds`, never stopping at EOS. llama.cpp's
 * contenders have a prepare() that writes their GGUF (once, untimed) into `workDir`.
 */
export function decodingContenders({ modelDir, shape, decoding, promptIds, threads, venv, torchRuntime, workDir }) {
  const { newTokens } = decoding;
  const generate = (quantize, newTokens) => [
    CLI,
    'generate',
    '--model',
    modelDir,
    '--prompt-ids',
    promptIds.join(','),
    '--max-new-tokens',
    String(newTokens),
    '--ignore-eos',
    '--quantize',
    quantize,
    '--device',
    'cpu',
    '--threads',
    String(threads),
    '--json',
  ];
  // The 4-bit copies are quantized once, untimed, into a studio folder of the benchmark's own.
  const env = { ...process.env, PEFT_STUDIO_HOME: path.join(workDir, 'studio-home') };
  const list = DECODE_PRECISIONS.map(({ quantize, label }) => ({
    id: quantize === 'none' ? 'peft-studio' : `peft-studio-${quantize}`,
    label: `PEFT Studio (${label})`,
    ours: true,
    prepare() {
      if (quantize === 'none') return;
      const r = spawnSync(process.execPath, generate(quantize, 1), { encoding: 'utf8', env, maxBuffer: 1 << 26 });
      if (r.status !== 0) throw new Error(`generate --quantize ${quantize} failed: ${r.stderr.trim().slice(-600)}`);
    },
    command: () => ({ command: process.execPath, args: generate(quantize, newTokens), env }),
    parse: (r) => ({
      decodeTokensPerSecond: r.decodeTokensPerSecond,
      timeToFirstTokenSeconds: r.timeToFirstTokenSeconds,
      ids: r.ids,
    }),
  }));
  const plain = torchRuntime.skipped ? null : plainTorchThreads(torchRuntime, threads);
  list.push({
    id: 'torch-kv-loop',
    label: `${plainTorchName(torchRuntime)} KV-cache loop (fp32)`,
    skipped: torchRuntime.skipped,
    command: () => ({
      command: torchRuntime.python,
      args: [
        TORCH_GENERATE_BENCH,
        ...shapeArgs(shape),
        '--prompt-len',
        String(promptIds.length),
        '--new-tokens',
        String(newTokens),
        '--threads',
        String(plain.threads),
        '--json',
      ],
      env: plain.env,
    }),
    parse: (r) => ({
      decodeTokensPerSecond: r.decode_tokens_per_second,
      timeToFirstTokenSeconds: r.time_to_first_token_s,
      version: `torch ${r.torch_version}`,
    }),
  });
  for (const type of GGUF_TYPES) {
    const gguf = path.join(workDir, `model-${type}.gguf`);
    const contender = {
      id: `llama.cpp-${type}`,
      label: `llama.cpp ${type.toUpperCase()} (node-llama-cpp)`,
      llamaType: type,
      skipped:
        venv.skipped ??
        (fs.existsSync(LLAMA_CPP_DECODE) ? undefined : `${path.relative(ROOT, LLAMA_CPP_DECODE)} not found`),
      prepare() {
        const r = spawnSync(venv.python, [WRITE_GGUF, '--model', modelDir, '--type', type, '--out', gguf], {
          encoding: 'utf8',
          maxBuffer: 1 << 26,
        });
        if (r.status !== 0) throw new Error(`write_gguf.py --type ${type} failed: ${r.stderr.trim().slice(-600)}`);
        contender.ggufBytes = fs.statSync(gguf).size;
      },
      command: () => ({
        command: process.execPath,
        args: [
          LLAMA_CPP_DECODE,
          '--gguf',
          gguf,
          '--prompt-ids',
          promptIds.join(','),
          '--new-tokens',
          String(newTokens),
          '--threads',
          String(threads),
        ],
      }),
      parse: (r) => {
        if (Array.isArray(r.ids) && r.ids.length !== newTokens)
          throw new Error(`llama.cpp produced ${r.ids.length} tokens, not ${newTokens}`);
        const { ids, decodeTokensPerSecond, timeToFirstTokenSeconds, ...rest } = r;
        return { decodeTokensPerSecond, timeToFirstTokenSeconds, ids, details: rest };
      },
    };
    list.push(contender);
  }
  return list;
}
