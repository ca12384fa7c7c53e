// The peft-studio command line: create-tiny-model, train, eval, bench. The engine runs in a worker thread.
// Contract: with --json the last line on stdout is one JSON object; errors are one line on stderr, exit code 1
// (bad input) or 2 (bad usage).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from '../../shared/errors.js';
import type { AdapterMethod, EngineRequest, OptimizerName, SchedulerName, TrainJob } from '../../shared/training.js';
import { checkOutputFolder, jobPlaces } from '../adapter/adapterFiles.js';
import { readAdapterConfig } from '../adapter/loraAdapter.js';
import { exportForOllama } from '../adapter/ollamaExport.js';
import { mergeLoraAdapter } from '../adapter/merge.js';
import { runEngine } from '../engine/process/host.js';
import { planDefaultTraining } from '../engine/compile/memoryPlan.js';
import { DEMO_DATA_FILE, DEMO_MODEL_DIR } from '../demo.js';
import { printEvent } from './progress.js';
import { createTinyModel, DEFAULT_TINY_MODEL } from '../model/tinyModel.js';
import { checkedTargets } from '../model/architecture.js';
import { choice, DEVICES, json, nonNegative, number, positiveInt, str, UsageError, type Command } from './options.js';
import { DATA_COMMANDS, DATA_FLAGS, dataOptions, dataSettings } from './data.js';
import { hubCommands } from './hub.js';
import { PLAYGROUND_COMMANDS } from './playground.js';
import { configuredHome, RUNS_COMMANDS, trainRecorded } from './runs.js';
import { DEMO_COMMANDS } from './demo.js';
import { SERVE_COMMANDS } from './serve.js';


async function runAndReport(request: EngineRequest, asJson: boolean, describe: (result: never) => string): Promise<void> {
  const run = runEngine(request, asJson ? () => {} : printEvent);
  const result = await run.result;
  process.stdout.write(asJson ? `${JSON.stringify(result)}\n` : `${describe(result as never)}\n`);
}

const COMMANDS: Record<string, Command> = {
  'create-tiny-model': {
    summary: 'write a small random Hugging Face model folder (for tests and demos)',
    positionals: true,
    usage: 'peft-studio create-tiny-model DIR [--arch llama|qwen2|qwen3] [--layers N] [--hidden N] [--heads N] [--kv-heads N] [--intermediate N] [--vocab N] [--dtype f32|bf16] [--tie] [--seed N]',
    options: { arch: str, layers: str, hidden: str, heads: str, 'kv-heads': str, intermediate: str, vocab: str, dtype: str, tie: { type: 'boolean', default: false }, seed: str, json },
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
      process.stdout.write(values.json ? `${JSON.stringify({ modelDir: dir, ...options })}\n` : `wrote ${options.arch} model to ${dir}\n`);
    },
  },
  train: {
    summary: 'train a LoRA or prompt-tuning adapter (the built-in demo model and data when none are given)',
    usage:
      `peft-studio train [--model DIR] [--data FILE] [--out DIR] [--overwrite] [--method lora|prompt-tuning] [--num-virtual-tokens 20] [--prompt-init random|text] [--prompt-init-text TEXT] [--rank 16] [--alpha 32] [--lora-dropout 0.05] [--targets q_proj,k_proj,v_proj,o_proj] [--rslora] [--lr 2e-4] [--optimizer adamw|sgd] [--weight-decay 0] [--scheduler constant|linear|cosine] [--warmup-steps 0] [--steps N | --epochs N] [--batch-size 4] [--grad-accum 1] [--max-seq-len 512] [--max-grad-norm 1.0] [--seed 0] [--no-shuffle] [--gradient-checkpointing on|off] [--device auto|cpu|webgpu|cuda|dml] [--init-adapter DIR] [--eval-data FILE | --eval-split 0.1] [--eval-every N] [--home DIR] [--checkpoint-every 50] [--keep-checkpoints 3] ${DATA_FLAGS} [--json]`,
    options: {
      model: str, data: str, out: str, rank: str, alpha: str, 'lora-dropout': str, targets: str, rslora: { type: 'boolean', default: false }, lr: str, optimizer: str,
      'weight-decay': str, scheduler: str, 'warmup-steps': str, steps: str, epochs: str, 'batch-size': str, 'grad-accum': str, 'max-seq-len': str, 'max-grad-norm': str,
      seed: str, 'no-shuffle': { type: 'boolean', default: false }, 'gradient-checkpointing': str, device: str, 'init-adapter': str,
      'eval-data': str, 'eval-split': str, 'eval-every': str, ...dataOptions, method: str, 'num-virtual-tokens': str, 'prompt-init': str, 'prompt-init-text': str, home: str, 'checkpoint-every': str, 'keep-checkpoints': str, json,
      overwrite: { type: 'boolean', default: false },
    },
    async run(values) {
      if (values.steps !== undefined && values.epochs !== undefined) throw new UsageError('give --steps or --epochs, not both');
      const method = choice<AdapterMethod>(values, 'method', ['lora', 'prompt-tuning'], 'lora');
      const promptInit = choice(values, 'prompt-init', ['random', 'text'] as const, values['prompt-init-text'] ? 'text' : 'random');
      if (promptInit === 'text' && !values['prompt-init-text']) throw new UsageError('--prompt-init text needs --prompt-init-text');
      const job: TrainJob = {
        method,
        promptTuning: { numVirtualTokens: positiveInt(values, 'num-virtual-tokens', 20), init: promptInit, initText: (values['prompt-init-text'] as string | undefined) ?? null },
        modelDir: path.resolve((values.model as string | undefined) ?? DEMO_MODEL_DIR),
        dataFile: path.resolve((values.data as string | undefined) ?? DEMO_DATA_FILE),
        data: dataSettings(values),
        outDir: path.resolve((values.out as string | undefined) ?? 'peft-studio-adapter'),
        lora: {
          rank: positiveInt(values, 'rank', 16),
          alpha: number(values, 'alpha', 32),
          dropout: number(values, 'lora-dropout', 0.05, (n) => n >= 0 && n < 1, 'a probability in [0, 1)'),
          targets: loraTargets((values.targets as string | undefined) ?? 'q_proj,k_proj,v_proj,o_proj'),
          useRslora: values.rslora === true,
        },
        optimizer: {
          name: choice<OptimizerName>(values, 'optimizer', ['adamw', 'sgd'], 'adamw'),
          // Soft prompts need far larger steps than LoRA weights (PEFT's examples use 3e-2).
          learningRate: number(values, 'lr', method === 'lora' ? 2e-4 : 3e-2, (n) => n > 0, 'a positive number'),
          weightDecay: nonNegative(values, 'weight-decay', 0),
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          momentum: 0,
          scheduler: choice<SchedulerName>(values, 'scheduler', ['constant', 'linear', 'cosine'], 'constant'),
          warmupSteps: number(values, 'warmup-steps', 0, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
          maxGradNorm: nonNegative(values, 'max-grad-norm', 1.0),
        },
        steps: values.steps === undefined ? null : positiveInt(values, 'steps', 1),
        epochs: positiveInt(values, 'epochs', 1),
        batchSize: positiveInt(values, 'batch-size', 4),
        gradAccum: positiveInt(values, 'grad-accum', 1),
        maxSeqLen: positiveInt(values, 'max-seq-len', 512),
        seed: number(values, 'seed', 0, Number.isInteger, 'an integer'),
        shuffle: values['no-shuffle'] !== true,
        gradientCheckpointing: choice(values, 'gradient-checkpointing', ['on', 'off'] as const, 'on') === 'on',
        device: choice(values, 'device', DEVICES, 'auto'),
        initAdapterDir: values['init-adapter'] ? path.resolve(values['init-adapter'] as string) : null,
        evalDataFile: values['eval-data'] ? path.resolve(values['eval-data'] as string) : null,
        evalSplit: number(values, 'eval-split', 0, (n) => n >= 0 && n < 1, 'a fraction in [0, 1)'),
        evalEvery: number(values, 'eval-every', 0, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
        checkpointEvery: number(values, 'checkpoint-every', 50, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
        keepCheckpoints: positiveInt(values, 'keep-checkpoints', 3),
        // Only ever replaces an adapter PEFT Studio wrote: any other folder that is not empty stays refused.
        overwriteOutput: values.overwrite === true,
      };
      if (job.evalDataFile && job.evalSplit > 0) throw new UsageError('give --eval-data or --eval-split, not both');
      const home = configuredHome(values);
      if (home) return trainRecorded(job, home, values.json === true);
      // Refused here already, without starting the engine (which checks again).
      checkOutputFolder(job, jobPlaces(job, null), null);
      await runAndReport({ kind: 'train', job, checkpointDir: null, resume: false }, values.json === true, (r: { adapterDir: string; steps: number; finalLoss: number; tokensPerSecond: number }) =>
        `adapter written to ${r.adapterDir} after ${r.steps} steps, final loss ${r.finalLoss.toFixed(4)}, ${r.tokensPerSecond.toFixed(1)} tokens/s`);
    },
  },
  eval: {
    summary: 'loss, token count and perplexity of a model (with an adapter) on a dataset',
    usage: `peft-studio eval --model DIR [--adapter DIR] --data FILE ${DATA_FLAGS} [--batch-size N] [--max-seq-len N] [--device D] [--json]`,
    options: { model: str, adapter: str, data: str, ...dataOptions, 'batch-size': str, 'max-seq-len': str, device: str, json },
    async run(values) {
      if (!values.model || !values.data) throw new UsageError('eval needs --model and --data');
      const job = {
        modelDir: path.resolve(values.model as string),
        adapterDir: values.adapter ? path.resolve(values.adapter as string) : null,
        dataFile: path.resolve(values.data as string),
        data: dataSettings(values),
        batchSize: positiveInt(values, 'batch-size', 4),
        maxSeqLen: positiveInt(values, 'max-seq-len', 512),
        device: choice(values, 'device', DEVICES, 'auto'),
      };
      await runAndReport({ kind: 'eval', job }, values.json === true, (r: { loss: number; tokens: number; perplexity: number }) =>
        `loss ${r.loss.toFixed(4)} over ${r.tokens} tokens, perplexity ${r.perplexity.toFixed(3)}`);
    },
  },
  bench: {
    summary: 'training tokens/s, seconds per step and peak memory on random tokens',
    usage: 'peft-studio bench --model DIR [--seq-len 256] [--batch-size 4] [--steps 5] [--rank 16] [--gradient-checkpointing on|off] [--device D] [--json]',
    options: { model: str, 'seq-len': str, 'batch-size': str, steps: str, rank: str, 'gradient-checkpointing': str, device: str, json },
    async run(values) {
      if (!values.model) throw new UsageError('bench needs --model');
      const job = {
        modelDir: path.resolve(values.model as string),
        seqLen: positiveInt(values, 'seq-len', 256),
        batchSize: positiveInt(values, 'batch-size', 4),
        steps: positiveInt(values, 'steps', 5),
        rank: positiveInt(values, 'rank', 16),
        gradientCheckpointing: choice(values, 'gradient-checkpointing', ['on', 'off'] as const, 'on') === 'on',
        device: choice(values, 'device', DEVICES, 'auto'),
      };
      await runAndReport({ kind: 'bench', job }, values.json === true, (r: { tokensPerSecond: number; secondsPerStep: number; peakRssBytes: number; device: string }) =>
        `${r.device}: ${r.tokensPerSecond.toFixed(1)} tokens/s, ${r.secondsPerStep.toFixed(2)} s/step, peak RSS ${(r.peakRssBytes / 2 ** 30).toFixed(2)} GiB`);
    },
  },
  merge: {
    summary: 'merge a LoRA adapter into its base model: a complete Hugging Face model folder',
    usage: 'peft-studio merge --model DIR --adapter DIR --out DIR [--dtype bf16|f16|f32] [--max-shard-size 5GB] [--json]',
    options: { model: str, adapter: str, out: str, dtype: str, 'max-shard-size': str, json },
    async run(values) {
      if (!values.model || !values.adapter || !values.out) throw new UsageError('merge needs --model, --adapter and --out');
      const result = mergeLoraAdapter({
        modelDir: path.resolve(values.model as string),
        adapterDir: path.resolve(values.adapter as string),
        outDir: path.resolve(values.out as string),
        dtype: values.dtype === undefined ? undefined : choice(values, 'dtype', ['f32', 'bf16', 'f16'] as const, 'f32'),
        maxShardBytes: byteSize(values, 'max-shard-size', 5e9),
      });
      process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `merged ${result.mergedWeights} weights into ${result.outDir} (${result.shards} shard${result.shards > 1 ? 's' : ''})\n`);
    },
  },
  export: {
    summary: 'export a LoRA adapter for llama.cpp / Ollama: a LoRA GGUF and a Modelfile beside it',
    usage: 'peft-studio export --adapter DIR --format gguf --out FILE.gguf [--model DIR] [--json]',
    options: { adapter: str, model: str, format: str, out: str, json },
    async run(values) {
      if (!values.adapter || !values.out) throw new UsageError('export needs --adapter and --out');
      choice(values, 'format', ['gguf'] as const, 'gguf');
      const adapterDir = path.resolve(values.adapter as string);
      // The base is --model, else the local folder the adapter records as its base.
      const recorded = readAdapterConfig(adapterDir).base_model_name_or_path;
      const modelDir = (values.model as string | undefined) ?? (typeof recorded === 'string' && fs.existsSync(recorded) ? recorded : undefined);
      if (!modelDir) throw new UsageError(`--model is required: the adapter's base_model_name_or_path (${JSON.stringify(recorded)}) is not a local folder`);
      const { gguf: out, modelfile } = exportForOllama(modelDir, adapterDir, values.out as string);
      process.stdout.write(values.json ? `${JSON.stringify({ gguf: out, modelfile })}\n` : `wrote ${out} and ${modelfile}\n`);
    },
  },
  ...PLAYGROUND_COMMANDS,
  ...DATA_COMMANDS,
  // A download's "does it fit" assumes the default training settings on the CPU, the device every machine has.
  ...hubCommands({ estimateTrainingBytes: (spec, { weightBytesPerElement }) => planDefaultTraining(spec, weightBytesPerElement).totalBytes, availableBytes: os.totalmem() }),
  ...RUNS_COMMANDS,
  ...DEMO_COMMANDS,
  ...SERVE_COMMANDS,
};

/** --targets: known module names, checked before any data is read or a run recorded. */
function loraTargets(list: string): string[] {
  const targets = list.split(',').map((t) => t.trim()).filter(Boolean);
  checkedTargets(targets, '--targets');
  return targets;
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
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    if (!command.positionals && positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    await command.run(values as Record<string, string | boolean | string[] | undefined>, positionals);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`peft-studio ${name}: ${(err as Error).message}\nusage: ${command.usage}\n`);
      return 2;
    }
    if (err instanceof UserError) {
      process.stderr.write(`peft-studio ${name}: error: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`peft-studio ${name}: internal error: ${(err as Error).message}\n`);
    if (process.env.PEFT_STUDIO_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 1;
  }
}
