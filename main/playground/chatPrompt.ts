// Prompts as token ids: plain text, or a conversation ready for the assistant's reply, through the model's chat
// template or, for a model without one (the demo), as plain "User: / Assistant:" text when the caller allows it.
// Either is refused before tokenizing when it has more characters than the model's context could ever hold:
// tokenizing megabytes takes seconds and gigabytes only to learn that the prompt does not fit.
import type { ChatMessage } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import { chatTemplateFor, CompiledChatTemplate } from '../model/chatTemplate.js';
import type { ModelTokenizer } from '../model/tokenizer.js';

const longestTokens = new WeakMap<ModelTokenizer, number>();

/** The longest token string of the vocabulary and the added tokens. */
function longestToken(tokenizer: ModelTokenizer): number {
  const known = longestTokens.get(tokenizer);
  if (known !== undefined) return known;
  let longest = 1;
  const measure = (token: unknown) => {
    if (typeof token === 'string') longest = Math.max(longest, token.length);
  };
  const json = tokenizer.tokenizerJson as { model?: { vocab?: unknown }; added_tokens?: unknown };
  const vocab = json.model?.vocab ?? {};
  // BPE, WordPiece and WordLevel vocabularies map token to id; Unigram's is a list of [token, score].
  if (Array.isArray(vocab)) for (const entry of vocab) measure(Array.isArray(entry) ? entry[0] : entry);
  else for (const token of Object.keys(vocab)) measure(token);
  const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []) as ({ content?: unknown } | null)[];
  for (const token of added) measure(token?.content);
  longestTokens.set(tokenizer, longest);
  return longest;
}

/**
 * Throws a UserError when `text` has more characters than `contextTokens` tokens can stand for. A token's string
 * spells at least as many characters as it covers (byte-level tokens one character per byte, SentencePiece ones
 * with ▁ for a space or <0xNN> for a byte), and the factor 2 allows for normalizers (NFC) that fold characters
 * together: a prompt that fits is never refused.
 */
function checkPromptLength(tokenizer: ModelTokenizer, text: string, contextTokens: number, what: string): void {
  const limit = contextTokens * longestToken(tokenizer) * 2;
  if (text.length > limit) {
    throw new UserError(
      `${what} has ${text.length} characters, more than the model's context of ${contextTokens} tokens can hold ` +
        `(at most ${limit} characters with its tokenizer)`,
    );
  }
}

/** A plain prompt's ids, with the tokenizer's special tokens. */
export function textPromptIds(tokenizer: ModelTokenizer, text: string, contextTokens: number): number[] {
  checkPromptLength(tokenizer, text, contextTokens, 'the prompt');
  return tokenizer.encode(text);
}

/** A conversation's ids through the adapter's chat template when it has one, else the model's (chatTemplateFor). */
export function chatPromptIds(
  modelDir: string,
  adapterDir: string | null,
  tokenizer: ModelTokenizer,
  messages: ChatMessage[],
  plainFallback: boolean,
  contextTokens: number,
): number[] {
  const template = chatTemplateFor(modelDir, tokenizer.config, adapterDir);
  if (template) {
    const rendered = new CompiledChatTemplate(template, tokenizer.config, new Date()).generationPrompt(messages);
    checkPromptLength(tokenizer, rendered, contextTokens, 'the conversation');
    return tokenizer.encode(rendered, { addSpecialTokens: false });
  }
  if (!plainFallback)
    throw new UserError(
      `${modelDir}: the model has no chat template; allow plain "User: ... / Assistant:" text instead`,
      { field: 'plainChat' },
    );
  const text = messages
    .map((m) => `${m.role === 'user' ? 'User' : m.role === 'assistant' ? 'Assistant' : 'System'}: ${m.content}`)
    .join('\n');
  checkPromptLength(tokenizer, text, contextTokens, 'the conversation');
  return tokenizer.encode(`${text}\nAssistant:`);
}
