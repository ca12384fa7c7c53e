// What a dataset holds, as the data pipeline measures it and the UI shows it. Pure TypeScript.

/** Rows whose rendered length lies in [from, to] tokens. */
export interface LengthBucket {
  from: number;
  to: number;
  rows: number;
}

export interface DatasetStats {
  /** Every row read: rendered, empty and bad. */
  rows: number;
  badRows: number;
  /** Rows with nothing but whitespace. */
  emptyRows: number;
  /**
   * Rendered rows whose token ids and labels equal an earlier row's (exact duplicates once mapped). With duplicates
   * dropped they are counted here and left out of the sums below.
   */
  duplicateRows: number;
  /**
   * Rows with a text still wrapped in double quotes ("..."): quotes typed into the data, or a file the reader could not
   * split as its writer meant. They train the model to answer in quotes, so they are flagged. (Absent in records
   * written before this was counted.)
   */
  quotedValueRows?: number;
  /** Tokens of the rendered rows after truncation to maxSeqLen. */
  tokens: number;
  /**
   * Of those, the tokens that carry loss (a label other than -100, past each row's first token, which is never scored).
   */
  trainedTokens: number;
  /** Rows longer than maxSeqLen, and the tokens truncation cuts from them. */
  truncatedRows: number;
  cutTokens: number;
  /** Rendered lengths before truncation; 0 when no row rendered. */
  minLength: number;
  maxLength: number;
  meanLength: number;
  /** Rendered lengths before truncation, in power-of-two buckets [1, 16], [17, 32], [33, 64], ... up to maxLength. */
  lengthHistogram: LengthBucket[];
  /** sha256 of every rendered row's ids and labels, in order (see RenderedHash). */
  renderedSha256: string;
}

export interface PreviewToken {
  id: number;
  /**
   * The rendered text this token covers. A character split over several byte tokens shows on the first of them, and
   * whitespace the tokenizer dropped on the token after it, so that the pieces join into the rendered text, except for
   * tokens that stand for no text (a BOS the tokenizer adds, the EOS appended to text samples): those show their token
   * string. For pre-tokenized samples: the token's bytes, a split character on the token that completes it.
   */
  text: string;
  /** Carries loss (its label is not -100). The first token of a sample is never scored, whatever its label. */
  trained: boolean;
  /** An added token of the tokenizer (<|im_start|>, <|eot_id|>, BOS, EOS), drawn apart from text. */
  special: boolean;
}

/** One sample as the model will see it: its first tokens, as many as a preview shows. */
export interface TokenPreview {
  row: number;
  tokens: PreviewToken[];
  /** Tokens of the sample after the shown ones (0 when all are shown). */
  hiddenTokens: number;
}

/** The warning quoted texts deserve, for the CLI and the studio alike; null when no row has one. */
export function quotedValuesWarning(stats: DatasetStats): string | null {
  const rows = stats.quotedValueRows ?? 0;
  if (rows === 0) return null;
  const which = rows === 1 ? '1 row has a text' : `${rows} rows have a text`;
  return `${which} wrapped in double quotes: the model will learn to answer in quotes. Remove them, or check how the file was saved`;
}

/** A row left out of training, or cut short, and why: for the Data step's list and `data inspect`. */
export interface CutRow {
  row: number;
  reason: string;
}

/** A row equal, once rendered, to an earlier one. */
export interface DuplicateRow {
  row: number;
  /** The earlier row it repeats. */
  firstRow: number;
}

/** One row of the dataset table: as the model sees it, or why it is not trained on. */
export type DatasetTableRow =
  | {
      kind: 'sample';
      preview: TokenPreview;
      /** Tokens past the maximum sequence length, cut before training (the preview may show fewer tokens still). */
      cutTokens: number;
    }
  | { kind: 'empty'; row: number }
  | { kind: 'bad'; row: number; reason: string };

/** Above this share of the rows, duplicates are worth a warning: they weigh those rows several times over. */
export const MANY_DUPLICATES = 0.2;

/** The warning many duplicate rows deserve, for the CLI and the studio alike; null below MANY_DUPLICATES. */
export function duplicatesWarning(stats: DatasetStats): string | null {
  if (stats.rows === 0 || stats.duplicateRows / stats.rows <= MANY_DUPLICATES) return null;
  const share = Math.round((100 * stats.duplicateRows) / stats.rows);
  return `${stats.duplicateRows} of the ${stats.rows} rows (${share}%) repeat an earlier row: the model will learn those answers more than the rest. Remove the duplicates`;
}

/** More passes over the training rows than this memorise them rather than learn from them. */
export const MANY_PASSES = 10;

/** A warning when `steps` of `rowsPerStep` rows go over `rows` training rows more than MANY_PASSES times; else null. */
export function passesWarning(steps: number, rowsPerStep: number, rows: number): string | null {
  if (rows <= 0) return null;
  const passes = (steps * rowsPerStep) / rows;
  if (passes <= MANY_PASSES) return null;
  return (
    `${steps} steps of ${rowsPerStep} rows go over the ${rows} training rows about ${Math.round(passes)} times: ` +
    'the model will memorise them rather than learn from them. Use fewer steps, or more data'
  );
}
