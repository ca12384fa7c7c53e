// Tokenizing rendered text with each token's character span, which completion-only labels and the token preview need.
// @huggingface/tokenizers returns no offsets (the Rust library does), so they are recovered here: each token string is
// turned back into the bytes it stands for (GPT-2 byte characters, or SentencePiece's ▁ and <0xNN> byte tokens) and
// those bytes are lined up with the UTF-8 bytes of the text. Two departures from a byte-for-byte match are allowed
// because tokenizers make them: a space the normalizer put before a word (SentencePiece's ▁ prefix), and whitespace
// an added token's lstrip/rstrip swallowed. Anything else stops with an error rather than guess.
// test/data/render.test.ts checks the spans against the Rust tokenizer's offsets for Llama 3, Qwen 3 and Llama 2.
import { UserError } from '../../shared/errors.js';
import { byteToCharTable } from '../model/tinyTokenizer.js';
import type { ModelTokenizer } from '../model/tokenizer.js';

/** Token ids of a text with the character span each covers. */
export interface TokenizedText {
  ids: number[];
  /**
   * UTF-16 index of each token's first character; start === end for a token that stands for no text (a BOS the
   * post-processor added).
   */
  starts: Int32Array; // [T]
  /**
   * UTF-16 index just past each token's last character; a character split over several byte tokens belongs to each of
   * them.
   */
  ends: Int32Array; // [T]
}

type UnicodeForm = 'NFC' | 'NFD' | 'NFKC' | 'NFKD';

const utf8 = new TextEncoder();
const SPACE = 0x20;
const METASPACE = '\u2581'; // ▁
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** The `type` of a tokenizer.json component and of every member of a `Sequence`. */
function componentTypes(component: unknown): string[] {
  if (typeof component !== 'object' || component === null) return [];
  const { type } = component as { type?: unknown };
  const members = Object.values(component).filter(Array.isArray).flat();
  return [...(typeof type === 'string' ? [type] : []), ...members.flatMap(componentTypes)];
}

export class TextTokenizer {
  private readonly byteLevel: boolean;
  private readonly byteFallback: boolean;
  private readonly unicodeForm: UnicodeForm | null;
  /** Added tokens (special or not) by id: they stand for their content, literally. */
  private readonly addedById = new Map<number, string>();
  private readonly bytesById = new Map<number, Uint8Array>();
  private readonly byteOfChar = new Map<string, number>();

  constructor(readonly tokenizer: ModelTokenizer) {
    const json = tokenizer.tokenizerJson;
    const decoders = componentTypes(json.decoder);
    this.byteLevel = decoders.includes('ByteLevel');
    this.byteFallback =
      decoders.includes('ByteFallback') ||
      (json.model as { byte_fallback?: unknown } | undefined)?.byte_fallback === true;
    const forms = componentTypes(json.normalizer).filter((t): t is UnicodeForm =>
      ['NFC', 'NFD', 'NFKC', 'NFKD'].includes(t),
    );
    this.unicodeForm = forms[0] ?? null;
    for (const token of (json.added_tokens ?? []) as { id: number; content: string }[])
      this.addedById.set(token.id, token.content);
    byteToCharTable().forEach((char, byte) => this.byteOfChar.set(char, byte));
  }

  /**
   * The text as the tokenizer's Unicode normalizer (NFC for Qwen) would see it. Applied to message contents before a
   * template renders them, it changes no token id (normalizing pieces, then the whole, equals normalizing the whole)
   * but keeps the rendered text and the tokens' bytes equal, so spans line up.
   */
  normalize(text: string): string {
    return this.unicodeForm === null ? text : text.normalize(this.unicodeForm);
  }

  /**
   * Token ids of `text`, without the post-processor's special tokens unless asked (a rendered chat template has its
   * own).
   */
  encode(text: string, addSpecialTokens: boolean): number[] {
    return this.tokenizer.encode(text, { addSpecialTokens });
  }

  /** Token ids of `text` with each token's character span (see TokenizedText). */
  encodeWithSpans(text: string, addSpecialTokens: boolean): TokenizedText {
    const ids = this.tokenizer.encode(text, { addSpecialTokens });
    const textBytes = utf8.encode(text);
    const charAt = charIndexOfBytes(text, textBytes.length);
    const starts = new Int32Array(ids.length);
    const ends = new Int32Array(ids.length);
    const isWhitespace = (pos: number) =>
      pos < textBytes.length && (textBytes[pos] === SPACE || (textBytes[pos] >= 0x09 && textBytes[pos] <= 0x0d));
    const matchesAt = (pos: number, bytes: Uint8Array) =>
      pos + bytes.length <= textBytes.length && bytes.every((b, i) => textBytes[pos + i] === b);
    let pos = 0;
    for (let t = 0; t < ids.length; t++) {
      const bytes = this.tokenBytes(ids[t]);
      if (this.addedById.has(ids[t])) {
        let at = pos;
        while (!matchesAt(at, bytes) && isWhitespace(at)) at++;
        if (!matchesAt(at, bytes)) {
          // Not in the text: the post-processor added it (Llama 3's BOS).
          starts[t] = ends[t] = charAt[pos];
          continue;
        }
        pos = at;
      }
      let first = -1;
      for (let i = 0; i < bytes.length;) {
        if (pos < textBytes.length && textBytes[pos] === bytes[i]) {
          if (first < 0) first = pos;
          pos++;
          i++;
        } else if (i === 0 && bytes[i] === SPACE) {
          i++; // the normalizer's ▁ before a word
        } else if (isWhitespace(pos)) {
          pos++; // whitespace an lstrip/rstrip added token swallowed
        } else {
          throw this.misaligned(text, charAt[Math.min(pos, textBytes.length)], ids[t]);
        }
      }
      if (first < 0) {
        starts[t] = ends[t] = charAt[pos];
        continue;
      }
      let end = pos;
      while (end < textBytes.length && (textBytes[end] & 0xc0) === 0x80) end++; // finish a character split over tokens
      starts[t] = charAt[first];
      ends[t] = charAt[end];
    }
    while (isWhitespace(pos)) pos++;
    if (pos < textBytes.length) throw this.misaligned(text, charAt[pos], null);
    return { ids, starts, ends };
  }

  /** The bytes a token stands for in text (an added token: its content). */
  tokenBytes(id: number): Uint8Array {
    let bytes = this.bytesById.get(id);
    if (bytes === undefined) {
      bytes = this.spell(id);
      this.bytesById.set(id, bytes);
    }
    return bytes;
  }

  isAddedToken(id: number): boolean {
    return this.addedById.has(id);
  }

  private spell(id: number): Uint8Array {
    const added = this.addedById.get(id);
    if (added !== undefined) return utf8.encode(added);
    const token = this.tokenizer.idToToken(id);
    if (token === undefined)
      throw new UserError(`${this.tokenizer.tokenizerFile}: token id ${id} is not in the vocabulary`);
    if (this.byteLevel) {
      const bytes = Array.from(token, (char) => this.byteOfChar.get(char));
      if (bytes.every((b) => b !== undefined)) return Uint8Array.from(bytes);
      return utf8.encode(token);
    }
    const byte = this.byteFallback ? BYTE_TOKEN.exec(token) : null;
    if (byte) return Uint8Array.of(parseInt(byte[1], 16));
    return utf8.encode(token.replaceAll(METASPACE, ' '));
  }

  private misaligned(text: string, charIndex: number, id: number | null): UserError {
    const near = JSON.stringify(text.slice(Math.max(0, charIndex - 20), charIndex + 20));
    const token = id === null ? 'the tokens end early' : `token ${id} ${JSON.stringify(this.tokenizer.idToToken(id))}`;
    return new UserError(
      `${this.tokenizer.tokenizerFile}: cannot line the tokens up with the text at character ${charIndex} (${token}, text near it: ${near}); ` +
        `this tokenizer rewrites text in a way completion-only labels cannot follow: train on all tokens instead`,
    );
  }
}

/** UTF-16 index of the character each UTF-8 byte belongs to, and the text's length after the last byte. */
function charIndexOfBytes(text: string, byteLength: number): Int32Array {
  const charAt = new Int32Array(byteLength + 1);
  let b = 0;
  for (let i = 0; i < text.length;) {
    const code = text.codePointAt(i)!;
    // a lone surrogate encodes as U+FFFD: 3 bytes
    const width = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    charAt.fill(i, b, b + width);
    b += width;
    i += code > 0xffff ? 2 : 1;
  }
  charAt[byteLength] = text.length;
  return charAt;
}
