// The token preview: one sample as the model will see it, token by token, with what is trained. The dataset screen
// draws PreviewToken lists; `peft-studio data inspect` prints formatPreview's text.
import { IGNORE_INDEX, type SampleRenderer, type TextOutcome } from './render.js';
import type { SampleRow } from './samples.js';
import type { TokenPreview } from '../../shared/data.js';

/** The tokens a preview shows of a row: a long row is cut, its preview says how many tokens it leaves out. */
export const PREVIEW_TOKENS = 512;
/** The most characters one token's text shows: tokens cover a few, but one may carry a run the tokenizer dropped. */
const TOKEN_TEXT_CHARS = 200;

/** The preview of one row, or why it has none (an empty or bad row). */
export function previewSample(
  renderer: SampleRenderer,
  row: SampleRow,
  maxTokens = PREVIEW_TOKENS,
): { kind: 'preview'; preview: TokenPreview } | Exclude<TextOutcome, { kind: 'rendered' }> {
  const outcome = renderer.renderWithText(row);
  if (outcome.kind !== 'rendered') return outcome;
  const { inputIds, labels, text, starts, ends } = outcome.sample;
  const shown = Math.min(inputIds.length, maxTokens);
  const texts = renderer.textTokenizer;
  const pieces: string[] = [];
  if (text !== null && starts !== null && ends !== null) {
    let lastCovering = inputIds.length - 1;
    while (lastCovering > 0 && starts[lastCovering] === ends[lastCovering]) lastCovering--;
    let covered = 0;
    for (let t = 0; t < shown; t++) {
      if (starts[t] === ends[t]) {
        pieces.push(renderer.tokenizer.idToToken(inputIds[t]) ?? '');
        continue;
      }
      const end = t === lastCovering ? text.length : ends[t];
      pieces.push(end > covered ? text.slice(covered, end) : '');
      covered = Math.max(covered, end);
    }
  } else {
    const decoder = new TextDecoder('utf-8', { fatal: false });
    for (const id of inputIds.subarray(0, shown)) pieces.push(decoder.decode(texts.tokenBytes(id), { stream: true }));
  }
  const tokens = Array.from(inputIds.subarray(0, shown), (id, t) => ({
    id,
    text: pieces[t].length > TOKEN_TEXT_CHARS ? `${pieces[t].slice(0, TOKEN_TEXT_CHARS - 1)}…` : pieces[t],
    trained: labels[t] !== IGNORE_INDEX,
    special: texts.isAddedToken(id),
  }));
  return { kind: 'preview', preview: { row: row.row, tokens, hiddenTokens: inputIds.length - shown } };
}

const GREEN = '\x1b[32m';
const BOLD_GREEN = '\x1b[1;32m';
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

export interface PreviewFormat {
  /** ANSI colors (for a TTY): trained tokens green, every other one bold so boundaries show; the rest dim. */
  color: boolean;
  /** Without color: put `|` between tokens. */
  boundaries?: boolean;
}

/** The preview as terminal text. Without color, trained stretches are wrapped in `[[ ]]`. */
export function formatPreview(preview: TokenPreview, format: PreviewFormat): string {
  const { tokens } = preview;
  const more = preview.hiddenTokens > 0 ? ` … (${preview.hiddenTokens} more tokens)` : '';
  if (format.color) {
    const color = (trained: boolean, t: number) => (trained ? (t % 2 ? BOLD_GREEN : GREEN) : DIM);
    return tokens.map((token, t) => `${color(token.trained, t)}${token.text}${RESET}`).join('') + more;
  }
  const separator = format.boundaries ? '|' : '';
  let out = '';
  tokens.forEach((token, t) => {
    const opens = token.trained && !tokens[t - 1]?.trained;
    const closes = !token.trained && tokens[t - 1]?.trained;
    if (t > 0) out += closes ? `]]${separator}` : separator;
    out += (opens ? '[[' : '') + token.text;
  });
  return (tokens[tokens.length - 1]?.trained ? `${out}]]` : out) + more;
}
