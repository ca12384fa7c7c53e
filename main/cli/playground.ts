// peft-studio generate and chat: talk to a model, with or without its LoRA adapter.
// Generation runs on the CLI's own thread: the CLI has no UI to keep responsive (the app hosts it in the engine
// worker).
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fieldProblems, UserError } from '../../shared/errors.js';
import {
  chatMessagesSchema,
  SAMPLING_DEFAULTS,
  samplingProblems,
  type ChatMessage,
  type SamplingSettings,
} from '../../shared/generation.js';
import { DEVICE_CHOICES } from '../../shared/trainJob.js';
import { loadAdapter } from '../adapter/anyAdapter.js';
import { InferenceModel } from '../engine/runtime/inferenceModel.js';
import { chooseDevice, sessionThreads } from '../engine/runtime/runtime.js';
import { engineThreads } from '../engine/runtime/threads.js';
import { openBaseModel } from '../model/quant/quantizeOnLoad.js';
import { quantizedCacheRoot } from '../store/home.js';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.js';
import { chatPromptIds, textPromptIds } from '../playground/chatPrompt.js';
import { generate, type GenerateOptions, type GenerationResult } from '../playground/generate.js';
import {
  choice,
  flagNumber,
  json,
  refuseProblems,
  str,
  quantizeFlag,
  threadsFlag,
  UsageError,
  withGiven,
  type Command,
  type Values,
} from './options.js';

const SAMPLING_FLAGS =
  '[--max-new-tokens 128] [--temperature 0] [--top-k 0] [--top-p 1] [--repetition-penalty 1] [--seed 0] [--stop STR]... [--quantize none|nf4|fp4|int4] [--device D] [--threads N]';
const samplingOptions = {
  'max-new-tokens': str,
  temperature: str,
  'top-k': str,
  'top-p': str,
  'repetition-penalty': str,
  seed: str,
  stop: { type: 'string', multiple: true },
  'ignore-eos': { type: 'boolean', default: false },
  device: str,
  quantize: str,
  threads: str,
} as const;

/** The sampling flags over shared/generation.ts's defaults, checked by the studio's own schema. */
export function samplingFromFlags(values: Values): SamplingSettings {
  const n = (name: string) => flagNumber(values, name);
  const sampling = withGiven(SAMPLING_DEFAULTS, {
    maxNewTokens: n('max-new-tokens'),
    temperature: n('temperature'),
    topK: n('top-k'),
    topP: n('top-p'),
    repetitionPenalty: n('repetition-penalty'),
    seed: n('seed'),
    stop: values.stop as string[] | undefined,
  });
  refuseProblems(samplingProblems(sampling), values);
  return sampling;
}

function generateOptions(values: Values): GenerateOptions {
  return { ...samplingFromFlags(values), ignoreEos: values['ignore-eos'] === true, adapterScale: 1 };
}

interface Loaded {
  model: InferenceModel;
  tokenizer: ModelTokenizer;
  modelDir: string;
  /** The adapter folder: its chat template, if it has one, renders the conversations the fine-tuned model answers. */
  adapterDir: string | null;
  threads: number;
  /** Opening the folder, the tokenizer and the generation session: what a cold call pays before its first token. */
  loadSeconds: number;
}

async function loadModel(values: Values): Promise<Loaded> {
  if (!values.model) throw new UsageError('--model is required');
  const started = performance.now();
  const folder = await openBaseModel(values.model as string, quantizeFlag(values), quantizedCacheRoot(), (p) => {
    if (!p.cached && p.done === p.total) process.stderr.write(`quantized ${p.total} base tensors to 4 bits\n`);
  });
  const tokenizer = loadTokenizer(folder.dir);
  const adapterDir = values.adapter ? path.resolve(values.adapter as string) : null;
  const adapter = adapterDir ? loadAdapter(adapterDir, folder.spec) : null;
  const { device } = chooseDevice(choice(values, 'device', DEVICE_CHOICES, 'auto'));
  const model = await InferenceModel.load(folder, device, adapter, { threads: engineThreads(threadsFlag(values)) });
  const loadSeconds = (performance.now() - started) / 1000;
  return { model, tokenizer, modelDir: folder.dir, adapterDir, threads: sessionThreads(model.session), loadSeconds };
}

function readMessages(file: string): ChatMessage[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: ${code ? `cannot read (${code})` : `invalid JSON (${(err as Error).message})`}`);
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { messages?: unknown })?.messages;
  if (!Array.isArray(list))
    throw new UserError(`${file}: expected a list of {role, content} messages (or {"messages": [...]})`);
  // Other keys of a message (a name, tool calls) are not used.
  const checked = chatMessagesSchema.safeParse(
    list.map((m) => ({
      role: (m as { role?: unknown } | null)?.role,
      content: (m as { content?: unknown } | null)?.content,
    })),
  );
  if (checked.success) return checked.data;
  // An issue inside the list is at index.field: said as message N's field.
  const [{ field, message }] = fieldProblems(checked.error.issues, []);
  const [index, key] = field.split('.');
  throw new UserError(`${file}: ${key === undefined ? message : `message ${Number(index) + 1}: "${key}" ${message}`}`);
}

/** Pre-tokenized prompts (benchmarks, tools): comma-separated ids, each inside the vocabulary. */
function parsePromptIds(raw: string, vocabSize: number): number[] {
  const ids = raw.split(',').map((part) => Number(part.trim()));
  const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0)
    throw new UsageError(
      `--prompt-ids: entry ${bad + 1} (${raw.split(',')[bad]}) is not a token id below the vocabulary size ${vocabSize}`,
    );
  return ids;
}

async function streamTo(
  out: (text: string) => void,
  run: AsyncGenerator<{ text: string }, GenerationResult>,
): Promise<GenerationResult> {
  for (;;) {
    const next = await run.next();
    if (next.done) return next.value;
    out(next.value.text);
  }
}

export const PLAYGROUND_COMMANDS: Record<string, Command> = {
  generate: {
    summary: 'generate text from a prompt or a conversation, with or without an adapter',
    usage: `peft-studio generate --model DIR [--adapter DIR] [--base] (--prompt TEXT | --messages FILE.json | --prompt-ids 1,2,3) [--plain-chat] ${SAMPLING_FLAGS} [--ignore-eos] [--json]`,
    options: {
      model: str,
      adapter: str,
      base: { type: 'boolean', default: false },
      prompt: str,
      messages: str,
      'prompt-ids': str,
      'plain-chat': { type: 'boolean', default: false },
      ...samplingOptions,
      json,
    },
    async run(values) {
      const given = ['prompt', 'messages', 'prompt-ids'].filter((flag) => values[flag] !== undefined);
      if (given.length !== 1) throw new UsageError('give one of --prompt, --messages or --prompt-ids');
      const options = { ...generateOptions(values), adapterScale: values.base ? 0 : 1 };
      const { model, tokenizer, modelDir, adapterDir, threads, loadSeconds } = await loadModel(values);
      const context = model.folder.spec.maxPositionEmbeddings;
      const plainChat = values['plain-chat'] === true;
      try {
        const messages = values.messages ? readMessages(path.resolve(values.messages as string)) : null;
        const promptIds = messages
          ? chatPromptIds(modelDir, options.adapterScale ? adapterDir : null, tokenizer, messages, plainChat, context)
          : values['prompt-ids'] !== undefined
            ? parsePromptIds(values['prompt-ids'] as string, model.folder.spec.vocabSize)
            : textPromptIds(tokenizer, values.prompt as string, context);
        if (promptIds.length === 0) throw new UserError('--prompt is empty');
        const asJson = values.json === true;
        const result = await streamTo(
          asJson ? () => {} : (text) => process.stdout.write(text),
          generate(model, tokenizer, promptIds, options),
        );
        if (asJson) {
          process.stdout.write(
            `${JSON.stringify({ ...result, newTokens: result.ids.length, tokensPerSecond: result.decodeTokensPerSecond, device: model.device, threads, loadSeconds })}\n`,
          );
        } else {
          process.stdout.write('\n');
          process.stderr.write(
            `${result.ids.length} tokens (${result.finishReason}), ${result.decodeTokensPerSecond.toFixed(1)} tokens/s, first token after ${result.timeToFirstTokenSeconds.toFixed(2)} s on ${model.device} (${threads} threads, loaded in ${loadSeconds.toFixed(2)} s)\n`,
          );
        }
      } finally {
        await model.close();
      }
    },
  },
  chat: {
    summary: 'chat in the terminal; /base and /adapter switch, /reset starts over, /exit quits',
    usage: `peft-studio chat --model DIR [--adapter DIR] [--system TEXT] [--plain-chat] ${SAMPLING_FLAGS}`,
    options: {
      model: str,
      adapter: str,
      system: str,
      'plain-chat': { type: 'boolean', default: false },
      ...samplingOptions,
    },
    async run(values) {
      const options = generateOptions(values);
      const { model, tokenizer, modelDir, adapterDir } = await loadModel(values);
      const start: ChatMessage[] = values.system ? [{ role: 'system', content: values.system as string }] : [];
      let messages = [...start];
      let adapterScale = model.adapter ? 1 : 0;
      const interactive = process.stdin.isTTY === true;
      const terminal = readline.createInterface({
        input: process.stdin,
        output: interactive ? process.stdout : undefined,
        terminal: interactive,
      });
      process.stdout.write(
        `chatting with ${modelDir}${model.adapter ? ' + adapter' : ''} on ${model.device}; /base, /adapter, /reset, /exit\n`,
      );
      try {
        // The line iterator buffers input, so piped conversations work as well as typed ones.
        process.stdout.write('> ');
        for await (const raw of terminal) {
          const line = raw.trim();
          if (line === '/exit' || line === '/quit') break;
          if (line === '/reset') {
            messages = [...start];
          } else if (line === '/base' || line === '/adapter') {
            if (line === '/adapter' && !model.adapter) process.stdout.write('no adapter loaded (--adapter DIR)\n');
            else adapterScale = line === '/base' ? 0 : 1;
            process.stdout.write(`answering as the ${adapterScale ? 'fine-tuned' : 'base'} model\n`);
          } else if (line) {
            messages.push({ role: 'user', content: line });
            const context = model.folder.spec.maxPositionEmbeddings;
            const promptIds = chatPromptIds(
              modelDir,
              adapterScale ? adapterDir : null,
              tokenizer,
              messages,
              values['plain-chat'] === true,
              context,
            );
            const result = await streamTo(
              (text) => process.stdout.write(text),
              generate(model, tokenizer, promptIds, { ...options, adapterScale }),
            );
            process.stdout.write('\n');
            messages.push({ role: 'assistant', content: result.text });
          }
          process.stdout.write('> ');
        }
      } finally {
        terminal.close();
        await model.close();
      }
    },
  },
};
