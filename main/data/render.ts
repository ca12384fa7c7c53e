// Sample -> RenderedSample: chat samples through the model's own chat template (main/model/chatTemplate.ts renders it
// as transformers' apply_chat_template does), prompt/completion and text samples as text, pre-tokenized samples passed
// through. Labels say what is trained.
//
// trainOn 'completion' (the default) trains:
// - chat: every assistant turn, its content and the end-of-turn text the template writes after it (`<|im_end|>\n`,
//   `<|eot_id|>`), as TRL's assistant-only loss does. The spans come from renders, never from searching the text:
//   a template with `{% generation %}` blocks marks them itself (transformers' return_assistant_tokens_mask);
//   otherwise turn k starts where messages[:k] rendered with add_generation_prompt ends, and ends where messages[:k+1]
//   rendered ends, both checked to be prefixes of the whole render. A token is trained when its characters overlap a
//   span (transformers' char_to_token rule), so a token straddling the boundary is trained.
// - prompt/completion: with a chat template, the chat [user: prompt, assistant: completion], since a model with a
//   template was tuned on it; without one (a base model), prompt + completion as plain text with the tokenizer's
//   special tokens, then EOS; the completion and EOS are trained.
// - text: every token, ending with EOS. tokens: their labels, or every id when they have none.
// trainOn 'all' trains every token of every kind.
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import {
  CompiledChatTemplate,
  holdsGenerationMarker,
  loadChatTemplate,
  readChatTemplateFile,
  TemplateRenderError,
  type ChatTemplate,
  type Span,
} from '../model/chatTemplate.js';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.js';
import type { BadRow, ChatMessage, RenderedSample, Sample, SampleFormat, SampleRow, TrainOn } from './samples.js';
import { TextTokenizer } from './tokenize.js';

/** Label of a token that carries no loss, as in PyTorch's cross-entropy. */
export const IGNORE_INDEX = -100;

/**
 * Whether rows of `format` go through the model's chat template: chat formats (messages, sharegpt, alpaca) always,
 * as they need one; prompt/completion when the model has one (see the top of this file); text and tokens never.
 */
export function rendersThroughChatTemplate(format: SampleFormat, modelHasTemplate: boolean): boolean {
  switch (format) {
    case 'messages':
    case 'sharegpt':
    case 'alpaca':
      return true;
    case 'prompt-completion':
      return modelHasTemplate;
    case 'text':
    case 'tokens':
      return false;
  }
}

export interface RendererOptions {
  trainOn: TrainOn;
  /** The model's vocabulary size (config.json `vocab_size`): pre-tokenized ids must lie below it. */
  vocabSize?: number;
  /**
   * The clock of the templates' `strftime_now` (Llama 3.1 prints today's date); fixed so every render of a run agrees.
   */
  now?: Date;
  /** A Jinja chat template file to render chat samples with, instead of the model's own. */
  chatTemplateFile?: string;
}

export type RenderOutcome =
  | { kind: 'rendered'; sample: RenderedSample }
  /** Nothing but whitespace to learn from; skipped and counted in the stats. */
  | { kind: 'empty'; row: number }
  | { kind: 'bad'; bad: BadRow };

/** A rendered sample with the text its tokens came from, for the token preview. */
export interface RenderedText extends RenderedSample {
  /** The rendered text; null for a pre-tokenized sample. */
  text: string | null;
  /** Each token's character span in `text` (see TokenizedText); null for a pre-tokenized sample. */
  starts: Int32Array | null;
  ends: Int32Array | null;
}

/** As RenderOutcome, with the rendered text kept. */
export type TextOutcome = { kind: 'rendered'; sample: RenderedText } | Exclude<RenderOutcome, { kind: 'rendered' }>;

/** Whether a sample holds nothing but whitespace. */
function isEmptySample(sample: Sample): boolean {
  const blank = (text: string) => text.trim() === '';
  switch (sample.kind) {
    case 'chat':
      return sample.messages.every((m) => blank(m.content));
    case 'completion':
      return blank(sample.prompt) && blank(sample.completion);
    case 'text':
      return blank(sample.text);
    case 'tokens':
      return sample.inputIds.length === 0;
  }
}

/** Ids, labels and (when kept) the text and token spans of one rendered row. */
interface Labeled {
  ids: number[];
  labels: Int32Array;
  text: string;
  starts: Int32Array | null;
  ends: Int32Array | null;
}

export class SampleRenderer {
  /** The tokenizer with token spans and token bytes (the preview uses it too). */
  readonly textTokenizer: TextTokenizer;
  private readonly compiled: CompiledChatTemplate | null;
  /** Whether the template appends the assistant header even without add_generation_prompt; checked on first need. */
  private alwaysAppendsHeader: boolean | null = null;

  constructor(
    readonly tokenizer: ModelTokenizer,
    readonly chatTemplate: ChatTemplate | null,
    readonly options: RendererOptions,
  ) {
    this.textTokenizer = new TextTokenizer(tokenizer);
    this.compiled = chatTemplate && new CompiledChatTemplate(chatTemplate, tokenizer.config, options.now ?? new Date());
  }

  /** The renderer for a model folder: its tokenizer.json, tokenizer_config.json and chat template. */
  static forModel(modelDir: string, options: RendererOptions): SampleRenderer {
    const tokenizer = loadTokenizer(modelDir);
    const template = options.chatTemplateFile
      ? readChatTemplateFile(options.chatTemplateFile)
      : loadChatTemplate(modelDir, tokenizer.config);
    return new SampleRenderer(tokenizer, template, options);
  }

  /**
   * One row's ids and labels. Problems of the row come back as a bad row; problems of the template or tokenizer
   * (no template for a chat sample, a template whose turns cannot be located) throw a UserError, since they would
   * hit every row.
   */
  render(row: SampleRow): RenderOutcome {
    const outcome = this.renderRow(row, false);
    if (outcome.kind !== 'rendered') return outcome;
    const { row: rowNumber, inputIds, labels } = outcome.sample;
    return { kind: 'rendered', sample: { row: rowNumber, inputIds, labels } };
  }

  /** As render, with the rendered text and each token's span in it (the token preview). */
  renderWithText(row: SampleRow): TextOutcome {
    return this.renderRow(row, true);
  }

  private renderRow(row: SampleRow, keepText: boolean): TextOutcome {
    const { sample } = row;
    if (isEmptySample(sample)) return { kind: 'empty', row: row.row };
    if (sample.kind === 'tokens') return this.passTokens(row.row, sample);
    let labeled: Labeled | string;
    try {
      labeled = this.labelSample(row.row, sample, keepText);
    } catch (err) {
      if (!(err instanceof TemplateRenderError)) throw err;
      labeled = `the chat template (${this.chatTemplate?.source}) ${err.refused ? 'refused' : 'failed on'} this row: ${err.message}`;
    }
    if (typeof labeled === 'string') return { kind: 'bad', bad: { row: row.row, reason: labeled } };
    const { ids, labels, text, starts, ends } = labeled;
    return {
      kind: 'rendered',
      sample: { row: row.row, inputIds: Int32Array.from(ids), labels, text: keepText ? text : null, starts, ends },
    };
  }

  /** Ids and labels of a text-like sample, or the reason it cannot be trained on. */
  private labelSample(row: number, sample: Exclude<Sample, { kind: 'tokens' }>, keepText: boolean): Labeled | string {
    const all = this.options.trainOn === 'all';
    switch (sample.kind) {
      case 'chat':
        return this.labelChat(row, sample.messages, keepText);
      case 'completion': {
        if (this.compiled) {
          return this.labelChat(
            row,
            [
              { role: 'user', content: sample.prompt },
              { role: 'assistant', content: sample.completion },
            ],
            keepText,
          );
        }
        const prompt = this.textTokenizer.normalize(sample.prompt);
        const text = prompt + this.textTokenizer.normalize(sample.completion);
        return this.label(text, true, all ? null : [{ start: prompt.length, end: text.length }], true, keepText);
      }
      case 'text':
        return this.label(this.textTokenizer.normalize(sample.text), true, null, true, keepText);
    }
  }

  private labelChat(row: number, messages: ChatMessage[], keepText: boolean): Labeled | string {
    const template = this.compiled;
    if (!template) {
      const folder = path.dirname(this.tokenizer.tokenizerFile);
      throw new UserError(
        `row ${row}: chat samples need the model's chat template, and ${folder} has none (no chat_template.jinja, no "chat_template" in tokenizer_config.json); add one, or use prompt/completion or text samples`,
      );
    }
    if (holdsGenerationMarker(messages)) {
      return 'a message contains the Unicode noncharacter U+FDD0 or U+FDD1';
    }
    const normalized = messages.map((m) => ({ role: m.role, content: this.textTokenizer.normalize(m.content) }));
    if (this.options.trainOn === 'all')
      return this.label(template.render(normalized, false), false, null, false, keepText);
    if (!messages.some((m) => m.role === 'assistant')) return 'no assistant message to train on';
    if (template.marksGenerations) {
      const { text, spans } = template.renderGenerations(normalized);
      if (spans.length === 0) return `the chat template's {% generation %} blocks mark nothing in this conversation`;
      return this.label(text, false, spans, false, keepText);
    }
    const text = template.render(normalized, false);
    return this.label(text, false, this.assistantSpans(row, template, normalized, text), false, keepText);
  }

  /** Each assistant turn's span by the prefix method (see the top of this file). */
  private assistantSpans(row: number, template: CompiledChatTemplate, messages: ChatMessage[], full: string): Span[] {
    this.checkGenerationPrompt(template);
    const spans: Span[] = [];
    messages.forEach((message, k) => {
      if (message.role !== 'assistant') return;
      const before = template.render(messages.slice(0, k), true);
      const through = k === messages.length - 1 ? full : template.render(messages.slice(0, k + 1), false);
      for (const [prefix, what] of [
        [before, `messages 1..${k} with the generation prompt`],
        [through, `messages 1..${k + 1}`],
      ]) {
        if (full.startsWith(prefix)) continue;
        let at = 0;
        while (prefix[at] === full[at]) at++;
        throw new UserError(
          `row ${row}: the chat template (${template.template.source}) is not prefix-stable: ${what} render as ${JSON.stringify(prefix.slice(at, at + 40))} at character ${at}, ` +
            `where the whole conversation has ${JSON.stringify(full.slice(at, at + 40))}, so assistant message ${k + 1} cannot be located ` +
            `(templates that rewrite earlier turns, as Qwen3's drops their reasoning, do this); put a chat_template.jinja that marks assistant turns with {% generation %} ... {% endgeneration %} in the model folder, or train on all tokens`,
        );
      }
      if (through.length > before.length) spans.push({ start: before.length, end: through.length });
    });
    return spans;
  }

  /**
   * When add_generation_prompt changes nothing, either the answer needs no header (Mistral's `[/INST]`) or the template
   * appends the header after every conversation, and then every turn's span would run into it. A conversation that
   * goes on after an answer tells the two apart.
   */
  private checkGenerationPrompt(template: CompiledChatTemplate): void {
    if (this.alwaysAppendsHeader === null) {
      const probe: ChatMessage[] = [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: 'y' },
        { role: 'user', content: 'z' },
      ];
      try {
        this.alwaysAppendsHeader =
          template.render(probe.slice(0, 1), false) === template.render(probe.slice(0, 1), true) &&
          !template.render(probe, false).startsWith(template.render(probe.slice(0, 2), false));
      } catch (err) {
        if (!(err instanceof TemplateRenderError)) throw err;
        this.alwaysAppendsHeader = false; // the template refuses the probe; the per-row prefix checks still hold
      }
    }
    if (this.alwaysAppendsHeader) {
      throw new UserError(
        `the chat template (${template.template.source}) appends the assistant header even without add_generation_prompt, so an assistant turn cannot be told apart from what follows it; ` +
          `put a chat_template.jinja that honours add_generation_prompt in the model folder, or train on all tokens`,
      );
    }
  }

  /**
   * Tokenizes `text` and labels the tokens overlapping `spans` (all tokens when spans is null); `appendEos` adds the
   * tokenizer's EOS, trained, unless the text already ends with it.
   */
  private label(
    text: string,
    addSpecialTokens: boolean,
    spans: Span[] | null,
    appendEos: boolean,
    keepText: boolean,
  ): Labeled {
    const eosId = appendEos ? this.tokenizer.eosId : null;
    if (spans === null && !keepText) {
      const ids = this.textTokenizer.encode(text, addSpecialTokens);
      if (eosId !== null && ids[ids.length - 1] !== eosId) ids.push(eosId);
      return { ids, labels: Int32Array.from(ids), text, starts: null, ends: null };
    }
    const { ids, starts, ends } = this.textTokenizer.encodeWithSpans(text, addSpecialTokens);
    const labels = new Int32Array(ids.length + 1).fill(IGNORE_INDEX);
    let span = 0;
    for (let t = 0; t < ids.length; t++) {
      if (spans === null) {
        labels[t] = ids[t];
        continue;
      }
      while (span < spans.length && spans[span].end <= starts[t]) span++;
      if (starts[t] < ends[t] && span < spans.length && spans[span].start < ends[t]) labels[t] = ids[t];
    }
    const withEos = eosId !== null && ids[ids.length - 1] !== eosId;
    if (!withEos) return { ids, labels: labels.subarray(0, ids.length), text, starts, ends };
    const tokenCount = ids.push(eosId);
    labels[tokenCount - 1] = eosId;
    return { ids, labels, text, starts: appendSpan(starts, text.length), ends: appendSpan(ends, text.length) };
  }

  private passTokens(row: number, sample: Extract<Sample, { kind: 'tokens' }>): TextOutcome {
    const { vocabSize } = this.options;
    const labels = this.options.trainOn === 'all' || sample.labels === null ? sample.inputIds : sample.labels;
    const bad = (reason: string) => ({ kind: 'bad' as const, bad: { row, reason } });
    if (labels.length !== sample.inputIds.length)
      return bad(`"labels" has ${labels.length} entries, "input_ids" has ${sample.inputIds.length}; they must match`);
    for (let i = 0; i < sample.inputIds.length; i++) {
      const id = sample.inputIds[i];
      if (!Number.isInteger(id) || id < 0 || (vocabSize !== undefined && id >= vocabSize)) {
        return bad(
          `"input_ids"[${i}] is ${id}, outside the model's vocabulary${vocabSize === undefined ? '' : ` of ${vocabSize} (ids 0..${vocabSize - 1})`}`,
        );
      }
      const label = labels[i];
      if (
        label !== IGNORE_INDEX &&
        (!Number.isInteger(label) || label < 0 || (vocabSize !== undefined && label >= vocabSize))
      ) {
        return bad(`"labels"[${i}] is ${label}: expected a token id or ${IGNORE_INDEX}`);
      }
    }
    return {
      kind: 'rendered',
      sample: {
        row,
        inputIds: Int32Array.from(sample.inputIds),
        labels: Int32Array.from(labels),
        text: null,
        starts: null,
        ends: null,
      },
    };
  }
}

function appendSpan(spans: Int32Array, at: number): Int32Array {
  const out = new Int32Array(spans.length + 1);
  out.set(spans);
  out[spans.length] = at;
  return out;
}
