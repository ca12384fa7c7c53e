// The peft-studio command line: every command by name, dispatched here; create-tiny-model, train, eval, bench,
// merge and export live in this file, the others in theirs. Jobs run in the engine process (a child process).
// Contract: with --json the last line on stdout is one JSON object; errors are one line on stderr, exit code 1
// (bad input) or 2 (bad usage).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from '../../shared/errors.js';
import { columnsArgument, DEVICE_CHOICES, JOB_BOUNDS, shellLine } from '../../shared/trainJob.js';
import type { EngineRequest } from '../../shared/training.js';
import { checkOutputFolder, jobPlaces } from '../adapter/adapterFiles.js';
import { readAdapterConfig } from '../adapter/loraAdapter.js';
import { exportForOllama, exportModelForOllama, ollamaCreateCommand } from '../adapter/ollamaExport.js';
import { mergeLoraAdapter } from '../adapter/merge.js';
import { runEngine } from '../engine/process/host.js';
import { planDefaultTraining } from '../engine/compile/memoryPlan.js';
import { printEvent } from './progress.js';
import { createTinyModel, DEFAULT_TINY_MODEL } from '../model/tinyModel.js';
import { GGUF_MODEL_QUANTS } from '../model/quant/ggmlQuants.js';
import {
  boundedNumber,
  choice,
  flagOf,
  json,
  number,
  positiveInt,
  str,
  quantizeFlag,
  threadsFlag,
  UsageError,
  type Command,
} from './options.js';
import { DATA_COMMANDS, DATA_FLAGS, dataOptions, dataSettings } from './data.js';
import { hubCommands } from './hub.js';
import { PLAYGROUND_COMMANDS } from './playground.js';
import { configuredHome, RUNS_COMMANDS, runNameFlag, trainRecorded } from './runs.js';
import { DEMO_COMMANDS } from './demo.js';
import { IMPORT_COMMANDS } from './importAdapter.js';
import { SERVE_COMMANDS } from './serve.js';
import { HANDOFF_COMMANDS } from './handoff.js';
import { TRAIN_OPTIONS, TRAIN_USAGE, trainJobFromFlags } from './trainFlags.js';

async function runAndReport(
  request: EngineRequest,
  asJson: boolean,
  describe: (result: never) => string,
): Promise<void> {
  const run = runEngine(request, asJson ? () => {} : printEvent);
  const result = await run.result;
  process.stdout.write(asJson ? `${JSON.stringify(result)}\n` : `${describe(result as never)}\n`);
}

const COMMANDS: Record<string, Command> = {
  'create-tiny-model': {
    summary: 'write a small random Hugging Face model folder (for tests and demos)',
    positionals: true,
    usage:
      'peft-studio create-tiny-model DIR [--arch llama|qwen2|qwen3] [--layers N] [--hidden N] [--heads N] [--kv-heads N] [--intermediate N] [--vocab N] [--dtype f32|bf16] [--tie] [--seed N]',
    options: {
      arch: str,
      layers: str,
      hidden: str,
      heads: str,
      'kv-heads': str,
      intermediate: str,
      vocab: str,
      dtype: str,
      tie: { type: 'boolean', default: false },
      seed: str,
      json,
    },
    async run(values, positionals) {
      if (positionals.length !== 1) throw new UsageError('create-tiny-model takes exactly one folder');
      const d = DEFAULT_TINY_MODEL;
      const options = {
        arch: choice(values, 'arch', ['llama', 'qwen2', 'qwen3'] as const, d.arch),
        layers: positiveInt(values, 'layers', d.layers),
        hidden: positiveInt(values, 'hidden', d.hidden),
        heads: positiveInt(values, 'heads', d.heads),
        kvHeads: positiveInt(values, 'kv-heads', d.kvHeads),
        intermediate: positiveInt(values, 'intermediate', d.intermediate),
        vocab: positiveInt(values, 'vocab', d.vocab),
        dtype: choice(values, 'dtype', ['f32', 'bf16'] as const, d.dtype),
        tie: values.tie === true,
        seed: number(values, 'seed', d.seed, Number.isInteger, 'an integer'),
      };
      const dir = path.resolve(positionals[0]);
      createTinyModel(dir, options);
      process.stdout.write(
        values.json ? `${JSON.stringify({ modelDir: dir, ...options })}\n` : `wrote ${options.arch} model to ${dir}\n`,
      );
    },
  },
  train: {
    summary: 'train a LoRA or prompt-tuning adapter (the built-in demo model and data when none are given)',
    usage: TRAIN_USAGE,
    options: TRAIN_OPTIONS,
    async run(values) {
      const job = trainJobFromFlags(values);
      const asJson = values.json === true;
      if (values['dry-run'])
        return void process.stdout.write(asJson ? `${JSON.stringify(job)}\n` : `${JSON.stringify(job, null, 2)}\n`);
      const home = configuredHome(values);
      const name = runNameFlag(values, home);
      if (home) return trainRecorded(job, home, asJson, name);
      // Refused here already, without starting the engine (which checks again).
      checkOutputFolder(job, jobPlaces(job, null), null);
      await runAndReport(
        { kind: 'train', job, checkpointDir: null, resume: false },
        asJson,
        (r: { adapterDir: string; steps: number; finalLoss: number; tokensPerSecond: number }) =>
          `adapter written to ${r.adapterDir} after ${r.steps} steps, final loss ${r.finalLoss.toFixed(4)}, ${r.tokensPerSecond.toFixed(1)} tokens/s`,
      );
    },
  },
  eval: {
    summary: 'loss, token count and perplexity of a model (with an adapter) on a dataset',
    usage: `peft-studio eval --model DIR [--adapter DIR] --data FILE ${DATA_FLAGS} [--batch-size N] [--max-seq-len N] [--quantize none|nf4|fp4|int4] [--device D] [--threads N] [--json]`,
    options: {
      model: str,
      adapter: str,
      data: str,
      ...dataOptions,
      'batch-size': str,
      'max-seq-len': str,
      quantize: str,
      device: str,
      threads: str,
      json,
    },
    async run(values) {
      if (!values.model || !values.data) throw new UsageError('eval needs --model and --data');
      const job = {
        modelDir: path.resolve(values.model as string),
        adapterDir: values.adapter ? path.resolve(values.adapter as string) : null,
        dataFile: path.resolve(values.data as string),
        data: dataSettings(values),
        batchSize: boundedNumber(values, 'batch-size', 4, JOB_BOUNDS.batchSize),
        maxSeqLen: boundedNumber(values, 'max-seq-len', 512, JOB_BOUNDS.maxSeqLen),
        quantize: quantizeFlag(values),
        device: choice(values, 'device', DEVICE_CHOICES, 'auto'),
        threads: threadsFlag(values),
      };
      await runAndReport(
        { kind: 'eval', job },
        values.json === true,
        (r: { loss: number; tokens: number; perplexity: number }) =>
          `loss ${r.loss.toFixed(4)} over ${r.tokens} tokens, perplexity ${r.perplexity.toFixed(3)}`,
      );
    },
  },
  bench: {
    summary: 'training tokens/s, seconds per step and peak memory on random tokens',
    usage:
      'peft-studio bench --model DIR [--seq-len 256] [--batch-size 4] [--steps 5] [--rank 16] [--gradient-checkpointing on|off] [--quantize none|nf4|fp4|int4] [--device D] [--threads N] [--json]',
    options: {
      model: str,
      'seq-len': str,
      'batch-size': str,
      steps: str,
      rank: str,
      'gradient-checkpointing': str,
      quantize: str,
      device: str,
      threads: str,
      json,
    },
    async run(values) {
      if (!values.model) throw new UsageError('bench needs --model');
      const job = {
        modelDir: path.resolve(values.model as string),
        seqLen: boundedNumber(values, 'seq-len', 256, JOB_BOUNDS.maxSeqLen),
        batchSize: boundedNumber(values, 'batch-size', 4, JOB_BOUNDS.batchSize),
        steps: boundedNumber(values, 'steps', 5, JOB_BOUNDS.steps),
        rank: boundedNumber(values, 'rank', 16, JOB_BOUNDS['lora.rank']),
        gradientCheckpointing: choice(values, 'gradient-checkpointing', ['on', 'off'] as const, 'on') === 'on',
        quantize: quantizeFlag(values),
        device: choice(values, 'device', DEVICE_CHOICES, 'auto'),
        threads: threadsFlag(values),
      };
      await runAndReport(
        { kind: 'bench', job },
        values.json === true,
        (r: {
          tokensPerSecond: number;
          secondsPerStep: number;
          peakRssBytes: number;
          device: string;
          threads: number;
        }) =>
          `${r.device}, ${r.threads} threads: ${r.tokensPerSecond.toFixed(1)} tokens/s, ${r.secondsPerStep.toFixed(2)} s/step, peak RSS ${(r.peakRssBytes / 2 ** 30).toFixed(2)} GiB`,
      );
    },
  },
  merge: {
    summary: 'merge a LoRA adapter into its base model: a complete Hugging Face model folder',
    usage:
      'peft-studio merge --model DIR --adapter DIR --out DIR [--dtype bf16|f16|f32] [--max-shard-size 5GB] [--json]',
    options: { model: str, adapter: str, out: str, dtype: str, 'max-shard-size': str, json },
    async run(values) {
      if (!values.model || !values.adapter || !values.out)
        throw new UsageError('merge needs --model, --adapter and --out');
      const result = mergeLoraAdapter({
        modelDir: path.resolve(values.model as string),
        adapterDir: path.resolve(values.adapter as string),
        outDir: path.resolve(values.out as string),
        dtype: values.dtype === undefined ? undefined : choice(values, 'dtype', ['f32', 'bf16', 'f16'] as const, 'f32'),
        maxShardBytes: byteSize(values, 'max-shard-size', 5e9),
      });
      process.stdout.write(
        values.json
          ? `${JSON.stringify(result)}\n`
          : `merged ${result.mergedWeights} weights into ${result.outDir} (${result.shards} shard${result.shards > 1 ? 's' : ''})\n${
              result.fromQuantizedBase
                ? 'the base was 4-bit: merged into its dequantized weights, an approximation of merging into the 16-bit model it was quantized from\n'
                : ''
            }`,
      );
    },
  },
  export: {
    summary:
      'export for llama.cpp / Ollama: a LoRA GGUF, or the adapter merged into one quantized model GGUF; a Modelfile beside it',
    usage:
      'peft-studio export --adapter DIR --format gguf|gguf-model --out FILE.gguf [--quant f16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k] [--model DIR] [--json]',
    options: { adapter: str, model: str, format: str, quant: str, out: str, json },
    async run(values) {
      if (!values.adapter || !values.out) throw new UsageError('export needs --adapter and --out');
      const format = choice(values, 'format', ['gguf', 'gguf-model'] as const, 'gguf');
      if (format === 'gguf' && values.quant !== undefined)
        throw new UsageError('--quant applies to --format gguf-model (the LoRA GGUF stays F32)');
      const quant = choice(values, 'quant', GGUF_MODEL_QUANTS, 'q8_0');
      const adapterDir = path.resolve(values.adapter as string);
      // The base is --model, else the local folder the adapter records as its base.
      const recorded = readAdapterConfig(adapterDir).base_model_name_or_path;
      const modelDir =
        (values.model as string | undefined) ??
        (typeof recorded === 'string' && fs.existsSync(recorded) ? recorded : undefined);
      if (!modelDir)
        throw new UsageError(
          `--model is required: the adapter's base_model_name_or_path (${JSON.stringify(recorded)}) is not a local folder`,
        );
      const { gguf: out, modelfile } =
        format === 'gguf'
          ? exportForOllama(modelDir, adapterDir, values.out as string)
          : exportModelForOllama({
              modelDir,
              adapterDir,
              outFile: values.out as string,
              quant,
              onProgress: values.json ? undefined : ggufProgress(quant),
            });
      process.stdout.write(
        values.json
          ? `${JSON.stringify({ gguf: out, modelfile, ollama: ollamaCreateCommand(adapterDir, modelfile) })}\n`
          : `wrote ${out} and ${modelfile}\nin Ollama: ${ollamaCreateCommand(adapterDir, modelfile)}\n`,
      );
    },
  },
  ...PLAYGROUND_COMMANDS,
  ...DATA_COMMANDS,
  // A download's "does it fit" assumes the default training settings on the CPU, the device every machine has.
  ...hubCommands({
    estimateTrainingBytes: (spec, { weightBytesPerElement }) =>
      planDefaultTraining(spec, weightBytesPerElement).totalBytes,
    availableBytes: os.totalmem(),
  }),
  ...RUNS_COMMANDS,
  ...DEMO_COMMANDS,
  ...SERVE_COMMANDS,
  ...IMPORT_COMMANDS,
  ...HANDOFF_COMMANDS,
};

/** Tensor-by-tensor progress on stderr: one rewritten line on a terminal, else a line per tenth of the tensors. */
function ggufProgress(quant: string): (done: number, total: number, name: string) => void {
  return (done, total, name) => {
    const line = `gguf-model ${quant}: tensor ${done}/${total} ${name}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}\x1b[K${done === total ? '\n' : ''}`);
    else if (Math.floor((done * 10) / total) > Math.floor(((done - 1) * 10) / total)) process.stderr.write(`${line}\n`);
  };
}

/** Sizes as transformers writes them: 5GB, 500MB, 100KB, or a plain byte count. */
function byteSize(values: Record<string, unknown>, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$/i.exec(String(raw));
  if (!match) throw new UsageError(`--${name} ${raw}: expected a size such as 5GB, 500MB or 100KB`);
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[(match[2] ?? 'B').toUpperCase() as 'B' | 'KB' | 'MB' | 'GB'];
  return Number(match[1]) * unit;
}

function help(): string {
  const lines = ['usage: peft-studio <command> [options]', '', 'commands:'];
  for (const [name, command] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(18)} ${command.summary}`);
  lines.push('', "run 'peft-studio <command> --help' for a command's options");
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`peft-studio: unknown command "${name}"\n${help()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.summary}\n\nusage: ${command.usage}\n`);
    return 0;
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: true,
      strict: true,
    });
    if (!command.positionals && positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    await command.run(values as Record<string, string | boolean | string[] | undefined>, positionals);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`peft-studio ${name}: ${(err as Error).message}\nusage: ${command.usage}\n`);
      return 2;
    }
    if (err instanceof UserError) {
      // A field's error is said against the flag that sets it.
      // A guessed data mapping is offered as the flags that would apply it.
      const guess = err.suggestion
        ? ` (${shellLine(['--format', err.suggestion.format, '--columns', columnsArgument(err.suggestion.columns)])})`
        : '';
      process.stderr.write(
        `peft-studio ${name}: error: ${err.field === undefined ? '' : `${flagOf(err.field)}: `}${err.message}${guess}\n`,
      );
      return 1;
    }
    process.stderr.write(`peft-studio ${name}: internal error: ${(err as Error).message}\n`);
    if (process.env.PEFT_STUDIO_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 1;
  }
}
