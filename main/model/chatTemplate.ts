// A model's chat template: found where transformers looks for it, and rendered as transformers' apply_chat_template
// renders it, through @huggingface/jinja with the globals transformers passes (special tokens, raise_exception,
// strftime_now) and Python's str.strip semantics. `{% generation %}` blocks become spans of the rendered text.
import fs from 'node:fs';
import path from 'node:path';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import type { ChatMessage } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';

/** A chat template and the file it came from (named in every error about it). */
export interface ChatTemplate {
  source: string;
  text: string;
}

/**
 * The template a conversation with a model and an adapter is rendered with: the adapter's own `chat_template.jinja`
 * (written when it was trained with a template other than the model's, as transformers saves one beside a tokenizer),
 * else the model's.
 */
export function chatTemplateFor(
  modelDir: string,
  tokenizerConfig: Record<string, unknown>,
  adapterDir: string | null,
): ChatTemplate | null {
  const adapterTemplate = adapterDir && path.join(adapterDir, ADAPTER_TEMPLATE_FILE);
  if (adapterTemplate && fs.existsSync(adapterTemplate)) return readChatTemplateFile(adapterTemplate);
  return loadChatTemplate(modelDir, tokenizerConfig);
}

/** Where an adapter trained with a chat template file keeps a copy of it. */
export const ADAPTER_TEMPLATE_FILE = 'chat_template.jinja';

/** A chat template chosen as a file of its own (a job's `data.chatTemplate`) rather than the model's. */
export function readChatTemplateFile(file: string): ChatTemplate {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(
      `${file}: cannot read the chat template (${code === 'ENOENT' ? 'no such file' : (code ?? 'error')})`,
    );
  }
  if (!text.trim()) throw new UserError(`${file}: the chat template file is empty`);
  return { source: file, text };
}

/**
 * The model folder's chat template, where transformers looks for it: `chat_template.jinja` first, then
 * tokenizer_config.json's `chat_template` (a string, or a list of named templates of which "default" is used).
 */
export function loadChatTemplate(modelDir: string, tokenizerConfig: Record<string, unknown>): ChatTemplate | null {
  const jinjaFile = path.join(modelDir, 'chat_template.jinja');
  try {
    return { source: jinjaFile, text: fs.readFileSync(jinjaFile, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new UserError(`${jinjaFile}: cannot read the chat template (${code ?? 'error'})`);
  }
  const configFile = path.join(modelDir, 'tokenizer_config.json');
  const value = tokenizerConfig.chat_template;
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return { source: configFile, text: value };
  if (Array.isArray(value)) {
    const named = value.find((t) => t?.name === 'default');
    if (typeof named?.template === 'string')
      return { source: `${configFile} (template "default")`, text: named.template };
    const names = value.map((t) => JSON.stringify(t?.name)).join(', ');
    throw new UserError(`${configFile}: "chat_template" lists templates ${names} but none named "default"`);
  }
  throw new UserError(
    `${configFile}: "chat_template" must be a string or a list of {name, template}, found ${typeof value}`,
  );
}

/**
 * A conversation the template could not render: its raise_exception refused it, or it failed on the conversation's
 * data.
 */
export class TemplateRenderError extends Error {
  constructor(
    message: string,
    readonly refused: boolean,
  ) {
    super(message);
  }
}

/** A half-open span [start, end) of rendered characters. */
export interface Span {
  start: number;
  end: number;
}

const NAMED_SPECIAL_TOKENS = [
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
];
// `{% generation %}` / `{% endgeneration %}` become markers in the output; these noncharacters never occur in real
// text.
const GENERATION_TAG = /\{%(-?)\s*(end)?generation\s*(-?)%\}/g;
const GENERATION_START = '\uFDD0';
const GENERATION_END = '\uFDD1';

/**
 * Whether a message holds a character that stands for a generation block's edge in a render (its spans would be wrong).
 */
export function holdsGenerationMarker(messages: readonly ChatMessage[]): boolean {
  return messages.some((m) => m.content.includes(GENERATION_START) || m.content.includes(GENERATION_END));
}

/** A chat template compiled once, rendered the way transformers renders it. */
export class CompiledChatTemplate {
  /**
   * The template with its generation blocks turned into output markers (@huggingface/jinja's own handling of the tags
   * drops whitespace jinja2 keeps).
   */
  private readonly compiled: Template;
  readonly marksGenerations: boolean;
  private readonly context: Record<string, unknown>;

  /**
   * `tokenizerConfig` supplies the special tokens; `now` is the clock of `strftime_now` (Llama 3.1 prints today's
   * date).
   */
  constructor(
    readonly template: ChatTemplate,
    tokenizerConfig: Record<string, unknown>,
    now: Date,
  ) {
    // Wrapped in an always-true `if`, a marker keeps the tag's block semantics (lstrip_blocks, trim_blocks, `-`).
    const markedText = template.text.replace(
      GENERATION_TAG,
      (_tag, left: string, end: string | undefined, right: string) =>
        `{%${left} if true %}{{ '${end ? GENERATION_END : GENERATION_START}' }}{% endif ${right}%}`,
    );
    this.marksGenerations = markedText !== template.text;
    try {
      this.compiled = new Template(markedText);
    } catch (err) {
      throw new UserError(`${template.source}: the chat template does not parse (${(err as Error).message})`);
    }
    // What transformers passes: its named special tokens that are set, and tools/documents as None.
    const specialTokens = Object.fromEntries(
      NAMED_SPECIAL_TOKENS.map((name) => [name, specialTokenText(tokenizerConfig[name])]).filter(
        ([, token]) => token !== null,
      ),
    );
    this.context = {
      ...specialTokens,
      tools: null,
      documents: null,
      raise_exception: (message: unknown) => {
        throw new TemplateRenderError(String(message), true);
      },
      strftime_now: (format: string) => strftime(now, format),
    };
  }

  /** The conversation as text; throws a TemplateRenderError when the template refuses or fails on it. */
  render(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    const text = this.run(messages, addGenerationPrompt);
    return this.marksGenerations ? text.replaceAll(GENERATION_START, '').replaceAll(GENERATION_END, '') : text;
  }

  /**
   * The conversation rendered for the assistant's next reply (add_generation_prompt); a refusal is a UserError naming
   * the template's file.
   */
  generationPrompt(messages: readonly ChatMessage[]): string {
    try {
      return this.render(messages, true);
    } catch (err) {
      if (err instanceof TemplateRenderError) throw new UserError(`${this.template.source}: ${err.message}`);
      throw err;
    }
  }

  /** The whole conversation with the spans its generation blocks produced. */
  renderGenerations(messages: readonly ChatMessage[]): { text: string; spans: Span[] } {
    const marked = this.run(messages, false);
    const spans: Span[] = [];
    let text = '';
    let start = -1;
    let from = 0;
    for (let i = 0; i < marked.length; i++) {
      const char = marked[i];
      if (char !== GENERATION_START && char !== GENERATION_END) continue;
      text += marked.slice(from, i);
      from = i + 1;
      if (char === GENERATION_START) start = text.length;
      else if (start >= 0) {
        if (text.length > start) spans.push({ start, end: text.length });
        start = -1;
      }
    }
    return { text: text + marked.slice(from), spans };
  }

  private run(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    // Template.render refuses to replace its own raise_exception and strftime_now, so the environment is built here.
    const variables = {
      ...JINJA_GLOBALS,
      ...this.context,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: addGenerationPrompt,
    };
    const environment = new Environment();
    for (const [name, value] of Object.entries(variables)) environment.set(name, value);
    try {
      return new Interpreter(environment).run(this.compiled.parsed).value as string;
    } catch (err) {
      throw err instanceof TemplateRenderError ? err : new TemplateRenderError((err as Error).message, false);
    }
  }
}

/**
 * @huggingface/jinja (0.5.11) ignores the argument of str.strip / lstrip / rstrip and always trims whitespace, where
 * Python strips the given characters: Qwen3's `content.lstrip('\n')` dropped an answer's leading space. Until that is
 * fixed upstream, the three string methods are replaced with ones that take Python's `chars`.
 */
function honourStripCharacters(): void {
  const probe = new Environment();
  const emptyString = probe.set('text', '');
  const FunctionValue = probe.set('fn', () => null).constructor as new (
    call: (args: { value: unknown }[]) => unknown,
  ) => unknown;
  const StringValue = emptyString.constructor as new (value: string) => unknown;
  const prototype = Object.getPrototypeOf(emptyString);
  const builtins = Object.getOwnPropertyDescriptor(prototype, 'builtins')?.get;
  if (!builtins) throw new Error('@huggingface/jinja changed: StringValue has no builtins getter to patch');
  const patched = new WeakSet<Map<string, unknown>>();
  Object.defineProperty(prototype, 'builtins', {
    get(this: { value: string }) {
      const methods = builtins.call(this) as Map<string, unknown>;
      if (patched.has(methods)) return methods;
      patched.add(methods);
      for (const [name, left, right] of [
        ['strip', true, true],
        ['lstrip', true, false],
        ['rstrip', false, true],
      ] as const) {
        methods.set(
          name,
          new FunctionValue((args) => {
            const chars = args[0]?.value ?? null;
            if (chars !== null && typeof chars !== 'string') throw new Error(`${name} arg must be None or str`);
            return new StringValue(stripCharacters(this.value, chars, left, right));
          }),
        );
      }
      return methods;
    },
  });
}
honourStripCharacters();

/** Python's str.strip(chars) from one or both ends; chars null strips whitespace. */
function stripCharacters(text: string, chars: string | null, left: boolean, right: boolean): string {
  if (chars === null) return left && right ? text.trim() : left ? text.trimStart() : text.trimEnd();
  const strip = new Set(chars);
  const points = Array.from(text);
  let start = 0;
  let end = points.length;
  while (left && start < end && strip.has(points[start])) start++;
  while (right && end > start && strip.has(points[end - 1])) end--;
  return points.slice(start, end).join('');
}

/** The globals @huggingface/jinja's Template.render declares, less the two we supply ourselves. */
const JINJA_GLOBALS: Record<string, unknown> = {
  true: true,
  false: false,
  none: null,
  True: true,
  False: false,
  None: null,
  range: (start: number, stop?: number, step = 1) => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error('range() step must not be zero');
    const values: number[] = [];
    for (let i = start; step > 0 ? i < stop : i > stop; i += step) values.push(i);
    return values;
  },
};

/** A special token as tokenizer_config.json writes it: a string, an AddedToken object {content}, or null. */
function specialTokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content;
  return null;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's strftime in the C locale (English names), for the directives chat templates use. */
function strftime(date: Date, format: string): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return format.replace(/%[YymdbBaAHMS%]/g, (directive) => {
    switch (directive) {
      case '%Y':
        return String(date.getFullYear());
      case '%y':
        return pad(date.getFullYear() % 100);
      case '%m':
        return pad(date.getMonth() + 1);
      case '%d':
        return pad(date.getDate());
      case '%b':
        return MONTHS[date.getMonth()].slice(0, 3);
      case '%B':
        return MONTHS[date.getMonth()];
      case '%a':
        return DAYS[date.getDay()].slice(0, 3);
      case '%A':
        return DAYS[date.getDay()];
      case '%H':
        return pad(date.getHours());
      case '%M':
        return pad(date.getMinutes());
      case '%S':
        return pad(date.getSeconds());
      default:
        return '%';
    }
  });
}
