// A model folder's tokenizer (tokenizer.json + tokenizer_config.json), through @huggingface/tokenizers: a pure
// JavaScript port of the Rust `tokenizers` library, so no native binary has to match the user's platform.
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../../shared/errors.js';

/**
 * The calls we make on @huggingface/tokenizers; its bundled types do not resolve under NodeNext, so they are restated.
 */
interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}

export interface ModelTokenizer {
  /**
   * Token ids of `text`, with the special tokens the tokenizer's post-processor adds (BOS for Llama 3, none for Qwen).
   */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | undefined;
  /** The vocabulary's string for a token (byte-level characters, or SentencePiece's ▁ and <0xNN>). */
  idToToken(id: number): string | undefined;
  /** tokenizer_config.json's eos_token, or null when it names none. */
  eosId: number | null;
  /**
   * The files as read: tokenizer.json's pipeline says how token strings spell text; the config ({} when absent) holds
   * the special tokens.
   */
  tokenizerFile: string;
  tokenizerJson: Record<string, unknown>;
  config: Record<string, unknown>;
}

function readJson(file: string, required: boolean): Record<string, unknown> | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!required && code === 'ENOENT') return null;
    throw new UserError(`${file}: cannot read the model's tokenizer (${code ?? 'error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
  }
}

/** Loads `modelDir`/tokenizer.json; tokenizer_config.json is optional and supplies the special tokens. */
export function loadTokenizer(modelDir: string): ModelTokenizer {
  const tokenizerFile = path.join(modelDir, 'tokenizer.json');
  const configFile = path.join(modelDir, 'tokenizer_config.json');
  const tokenizerJson = readJson(tokenizerFile, true)!; // required: null only for a missing optional file
  const config = readJson(configFile, false) ?? {};
  let tokenizer: HfTokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, config);
  } catch (err) {
    throw new UserError(`${tokenizerFile}: cannot load the tokenizer (${(err as Error).message})`);
  }

  // transformers writes a special token either as a string or as an AddedToken object {content, ...}.
  const eos = config.eos_token as string | { content?: string } | null | undefined;
  const eosToken = typeof eos === 'string' ? eos : (eos?.content ?? null);
  const eosId = eosToken === null ? null : tokenizer.token_to_id(eosToken);
  if (eosId === undefined)
    throw new UserError(`${configFile}: eos_token ${JSON.stringify(eosToken)} is not a token of ${tokenizerFile}`);

  return {
    // A rendered chat template already holds its special tokens: callers pass addSpecialTokens false, as transformers
    // does.
    encode: (text, options) => tokenizer.encode(text, { add_special_tokens: options?.addSpecialTokens ?? true }).ids,
    // @huggingface/tokenizers refuses an empty list; the empty string is the natural answer.
    decode: (ids, options) =>
      ids.length === 0 ? '' : tokenizer.decode(ids, { skip_special_tokens: options?.skipSpecialTokens ?? false }),
    tokenToId: (token) => tokenizer.token_to_id(token),
    idToToken: (id) => tokenizer.id_to_token(id),
    eosId,
    tokenizerFile,
    tokenizerJson,
    config,
  };
}
