// Streaming detokenization: text appears as tokens arrive, but never half a character. Byte-level and byte-fallback
// tokens can end inside a UTF-8 sequence, which decodes to U+FFFD until the rest arrives, so such text is held back.
import type { ModelTokenizer } from '../model/tokenizer.js';

export class StreamingDetokenizer {
  private readonly ids: number[] = [];
  private emitted = '';

  constructor(private readonly tokenizer: ModelTokenizer) {}

  /** Adds a token; returns the text it completes ('' while a character is still incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids, { skipSpecialTokens: true });
    if (text.endsWith('\uFFFD') || !text.startsWith(this.emitted)) return '';
    const fresh = text.slice(this.emitted.length);
    this.emitted = text;
    return fresh;
  }

  /** All text so far, incomplete trailing bytes included. */
  text(): string {
    return this.tokenizer.decode(this.ids, { skipSpecialTokens: true });
  }
}
