// The whole dataset pipeline for a model: read (streamed) -> Sample -> rendered and tokenized -> truncated ->
// packed or not, with the stats, the bad rows and the content hashes a run records.
import { UserError } from '../../shared/errors.js';
import type { DataSettings } from '../../shared/training.js';
import type { ColumnMapping } from './formats.js';
import { MAX_REASON_CHARS, readSamples } from './formats.js';
import { clipped } from './jsonValues.js';
import { pack, splitTrainValidation, toSequences, truncate, type TrainingSequence } from './packing.js';
import type { TextMode } from './readers/index.js';
import { rendersThroughChatTemplate, SampleRenderer } from './render.js';
import type { BadRow, FileKind, RenderedSample, SampleFormat, TrainOn } from './samples.js';
import type { CutRow, DatasetStats, DuplicateRow } from '../../shared/data.js';
import { DatasetStatsCollector, sha256File } from './stats.js';

export interface DatasetOptions {
  file: string;
  modelDir: string;
  vocabSize: number;
  maxSeqLen: number;
  /** Detected from the extension and the first rows unless given. */
  kind?: FileKind;
  format?: SampleFormat;
  mapping?: ColumnMapping;
  textMode?: TextMode;
  trainOn: TrainOn;
  /** Several short samples per sequence, attention kept within each. */
  pack: boolean;
  /** Train without the bad rows instead of refusing the dataset. */
  skipBadRows: boolean;
  /** Train on each distinct row once (see DuplicateFinder). */
  dropDuplicates?: boolean;
  /** A Jinja chat template file to render chat rows with, instead of the model's own. */
  chatTemplateFile?: string;
  /** Fraction of the samples held out for validation (split by seed before packing, so no sequence mixes the two). */
  validationFraction: number;
  seed: number;
  onProgress?: (rowsRead: number) => void;
}

export interface PreparedDataset {
  format: SampleFormat;
  /** Whether its rows went through the model's chat template. */
  chatTemplate: boolean;
  sequences: TrainingSequence[];
  validation: TrainingSequence[];
  stats: DatasetStats;
  badRows: BadRow[];
  /** Rows dropped because truncation left nothing to train on. */
  untrainedRows: number[];
  /** Every rendered row equal to an earlier one (dropped from training with dropDuplicates). */
  duplicates: DuplicateRow[];
  /** Every row left out of training or cut short, in row order, with why. */
  cutRows: CutRow[];
  sourceSha256: string;
}

/** A dataset none of whose rows can be trained on; carries why, row by row, for an inspection to show. */
export class NothingToTrainError extends UserError {
  constructor(
    message: string,
    readonly badRows: BadRow[],
    readonly untrainedRows: number[],
    readonly duplicates: DuplicateRow[],
    readonly cutRows: CutRow[],
  ) {
    super(message);
  }
}

/** The pipeline options a job's data settings (from the CLI flags or the wizard's data step) stand for. */
export function fromDataSettings(
  data: DataSettings,
): Pick<
  DatasetOptions,
  'format' | 'mapping' | 'trainOn' | 'pack' | 'skipBadRows' | 'dropDuplicates' | 'chatTemplateFile'
> {
  return {
    format: data.format ?? undefined,
    mapping: data.columns as ColumnMapping,
    trainOn: data.trainOn,
    pack: data.pack,
    skipBadRows: data.skipBadRows,
    dropDuplicates: data.dropDuplicates,
    chatTemplateFile: data.chatTemplate ?? undefined,
  };
}

/**
 * Reads, renders and tokenizes a dataset; refuses it (one line naming the first bad row) unless bad rows may be
 * skipped.
 */
export async function prepareDataset(options: DatasetOptions): Promise<PreparedDataset> {
  const { file } = options;
  const renderer = SampleRenderer.forModel(options.modelDir, {
    trainOn: options.trainOn,
    vocabSize: options.vocabSize,
    chatTemplateFile: options.chatTemplateFile,
  });
  const { maxSeqLen } = options;
  const stats = new DatasetStatsCollector({ maxSeqLen, dropDuplicates: options.dropDuplicates });
  const badRows: BadRow[] = [];
  const emptyRows: number[] = [];
  const duplicates: DuplicateRow[] = [];
  const rendered: RenderedSample[] = [];
  let format: SampleFormat | null = options.format ?? null;
  let read = 0;
  for await (const item of readSamples(file, {
    kind: options.kind,
    format: options.format,
    mapping: options.mapping,
    textMode: options.textMode,
    onFormat: (f) => (format = f),
  })) {
    if (++read % 1000 === 0) options.onProgress?.(read);
    if (item.type === 'bad') {
      badRows.push({ row: item.row, reason: item.reason });
      stats.countBadRow();
      continue;
    }
    const outcome = renderer.render(item);
    stats.noteQuotes(item.sample);
    const duplicateOf = stats.add(outcome);
    if (outcome.kind === 'bad') badRows.push({ ...outcome.bad, reason: clipped(outcome.bad.reason, MAX_REASON_CHARS) });
    else if (outcome.kind === 'empty') emptyRows.push(outcome.row);
    else if (duplicateOf !== null) {
      duplicates.push({ row: item.row, firstRow: duplicateOf });
      if (!options.dropDuplicates) rendered.push(outcome.sample);
    } else rendered.push(outcome.sample);
  }
  if (badRows.length && !options.skipBadRows) {
    const first = badRows[0];
    throw new UserError(
      `${file}:${first.row}: ${first.reason} (${badRows.length} bad row${badRows.length > 1 ? 's' : ''}; fix them or skip them)`,
      { field: 'data.skipBadRows' },
    );
  }
  const truncation = truncate(rendered, maxSeqLen);
  const cutRows = cutRowList({
    badRows,
    emptyRows,
    droppedDuplicates: options.dropDuplicates ? duplicates : [],
    longRows: rendered.filter((sample) => sample.inputIds.length > maxSeqLen),
    untrainedRows: truncation.untrainedRows,
    maxSeqLen,
  });
  if (truncation.samples.length === 0) {
    const { untrainedRows } = truncation;
    const counts = `${read} rows read, ${badRows.length} bad, ${untrainedRows.length} with no trained token`;
    throw new NothingToTrainError(
      `${file}: nothing to train on (${counts} within ${maxSeqLen} tokens)`,
      badRows,
      untrainedRows,
      duplicates,
      cutRows,
    );
  }
  const { train, validation } = splitTrainValidation(truncation.samples, {
    validationFraction: options.validationFraction,
    seed: options.seed,
  });
  const sequences = (samples: RenderedSample[]) =>
    options.pack ? pack(samples, options.maxSeqLen) : toSequences(samples);
  const chatTemplate = rendersThroughChatTemplate(format!, renderer.chatTemplate !== null);
  return {
    format: format!,
    chatTemplate,
    sequences: sequences(train),
    validation: sequences(validation),
    stats: stats.result(),
    badRows,
    untrainedRows: truncation.untrainedRows,
    duplicates,
    cutRows,
    sourceSha256: await sha256File(file),
  };
}

/** Every row left out of training or cut short, in row order: the readers' and renderer's reasons, then ours. */
function cutRowList(rows: {
  badRows: BadRow[];
  emptyRows: number[];
  droppedDuplicates: DuplicateRow[];
  longRows: RenderedSample[];
  untrainedRows: number[];
  maxSeqLen: number;
}): CutRow[] {
  const { maxSeqLen } = rows;
  const untrained = new Set(rows.untrainedRows);
  const cut: CutRow[] = [
    ...rows.badRows,
    ...rows.emptyRows.map((row) => ({ row, reason: 'nothing but whitespace: skipped' })),
    ...rows.droppedDuplicates.map(({ row, firstRow }) => ({ row, reason: `the same as row ${firstRow}: dropped` })),
    ...rows.longRows
      .filter(({ row }) => !untrained.has(row))
      .map(({ row, inputIds }) => ({
        row,
        reason: `${inputIds.length} tokens, more than the maximum sequence length of ${maxSeqLen}: the last ${inputIds.length - maxSeqLen} are cut`,
      })),
    ...rows.untrainedRows.map((row) => ({
      row,
      reason: `no trained token within the maximum sequence length of ${maxSeqLen}: skipped`,
    })),
  ];
  return cut.sort((a, b) => a.row - b.row);
}
