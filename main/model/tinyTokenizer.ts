// A small byte-level BPE tokenizer for tiny test and demo models, written as a Hugging Face tokenizer.json with
// Qwen2's normalizer and pre-tokenizer: transformers 5 rebuilds any qwen2 model's tokenizer with exactly those, so
// using them for every architecture keeps Python and JavaScript giving the same ids.
// Ids: the special tokens first, then the 256 byte tokens, then merges learned from TINY_CORPUS.
// Training is deterministic: the most frequent pair wins, ties go to the pair with the smaller ids.
import { UserError } from '../../shared/errors.js';
import { TINY_CORPUS } from './tinyCorpus.js';

/** Special tokens at ids 0, 1, 2: document boundary (also BOS, EOS and padding), then the ChatML turn markers. */
export const TINY_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
export const END_OF_TEXT_ID = 0;
export const IM_END_ID = 2;

const BYTE_TOKENS = 256;
/** Every id a byte-level tokenizer needs before its first merge. */
export const MIN_TINY_VOCAB = TINY_SPECIAL_TOKENS.length + BYTE_TOKENS;

/** Qwen2's pre-tokenizer split, in the Oniguruma syntax of tokenizer.json (one digit per piece). */
const QWEN2_SPLIT_PATTERN = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** The same split as a JavaScript RegExp (Node 20 has no inline `(?i:)`, so the contractions spell out both cases). */
const QWEN2_SPLIT =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** ChatML, as Qwen and SmolLM2 use it. */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the rest are shifted to U+0100
 * and up, so that every byte is one visible character and token strings never contain a space.
 */
export function byteToCharTable(): string[] {
  const table: string[] = new Array(BYTE_TOKENS);
  let shifted = 0;
  for (let b = 0; b < BYTE_TOKENS; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : BYTE_TOKENS + shifted++);
  }
  return table;
}

export interface TinyTokenizer {
  /** The tokenizer.json object. */
  json: Record<string, unknown>;
  /** Distinct tokens defined (special + byte + merged); at most the requested vocabulary size. */
  tokenCount: number;
}

/**
 * Learns a byte-level BPE with at most `vocabSize` tokens from the built-in corpus. Merging stops early when no pair
 * occurs twice, so a large `vocabSize` leaves the top ids unused (as many real checkpoints do).
 */
export function buildTinyTokenizer(vocabSize: number): TinyTokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_TINY_VOCAB) {
    throw new UserError(
      `vocabulary size ${vocabSize} is too small: a byte-level tokenizer needs at least ${MIN_TINY_VOCAB} (${TINY_SPECIAL_TOKENS.length} special + ${BYTE_TOKENS} byte tokens)`,
    );
  }
  const byteChars = byteToCharTable();
  const tokens: string[] = [...TINY_SPECIAL_TOKENS, ...byteChars];
  const idOf = new Map(tokens.map((token, id) => [token, id]));

  // Each distinct pre-token of the corpus as byte-token ids, with how often it occurs.
  const wordCounts = new Map<string, number>();
  for (const piece of TINY_CORPUS.normalize('NFC').match(QWEN2_SPLIT) ?? [])
    wordCounts.set(piece, (wordCounts.get(piece) ?? 0) + 1);
  const encoder = new TextEncoder();
  const words = [...wordCounts].map(([piece, count]) => ({
    ids: Array.from(encoder.encode(piece), (b) => TINY_SPECIAL_TOKENS.length + b),
    count,
  }));

  const merges: string[] = [];
  while (tokens.length < vocabSize) {
    const pairCounts = new Map<number, number>();
    for (const word of words) {
      for (let i = 0; i + 1 < word.ids.length; i++) {
        const key = word.ids[i] * vocabSize + word.ids[i + 1];
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + word.count);
      }
    }
    let bestKey = -1;
    let bestCount = 1; // a pair seen once teaches nothing
    for (const [key, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && key < bestKey)) [bestKey, bestCount] = [key, count];
    }
    if (bestKey < 0) break;

    const left = Math.floor(bestKey / vocabSize);
    const right = bestKey % vocabSize;
    const mergedToken = tokens[left] + tokens[right];
    // Two merges can spell the same string ("a"+"bc", "ab"+"c"); both stay as merges, sharing one id.
    let mergedId = idOf.get(mergedToken);
    if (mergedId === undefined) {
      mergedId = tokens.push(mergedToken) - 1;
      idOf.set(mergedToken, mergedId);
    }
    merges.push(`${tokens[left]} ${tokens[right]}`);
    for (const word of words) word.ids = mergePair(word.ids, left, right, mergedId);
  }

  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: TINY_SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((token, id) => [token, id])),
      // "left right" strings (not pairs) so that older tokenizers releases read them too; byte-level tokens hold no
      // space.
      merges,
    },
  };
  return { json, tokenCount: tokens.length };
}

function mergePair(ids: number[], left: number, right: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i + 1 < ids.length && ids[i] === left && ids[i + 1] === right) {
      out.push(merged);
      i++;
    } else {
      out.push(ids[i]);
    }
  }
  return out;
}

/** tokenizer_config.json for transformers' PreTrainedTokenizerFast, with a ChatML chat template. */
export function tinyTokenizerConfig(modelMaxLength: number): Record<string, unknown> {
  const [endOfText] = TINY_SPECIAL_TOKENS;
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    added_tokens_decoder: Object.fromEntries(
      TINY_SPECIAL_TOKENS.map((content, id) => [
        String(id),
        { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
      ]),
    ),
    additional_special_tokens: TINY_SPECIAL_TOKENS.slice(1),
    bos_token: endOfText,
    eos_token: endOfText,
    pad_token: endOfText,
    unk_token: null,
    add_prefix_space: false,
    // Decoding should give back the exact text, as Qwen's tokenizers do.
    clean_up_tokenization_spaces: false,
    model_max_length: modelMaxLength,
    chat_template: CHATML_TEMPLATE,
  };
}
