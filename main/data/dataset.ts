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
import type { DatasetStats } from '../../shared/data.js';
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
  sourceSha256: string;
}

/** A dataset none of whose rows can be trained on; carries why, row by row, for an inspection to show. */
export class NothingToTrainError extends UserError {
  constructor(
    message: string,
    readonly badRows: BadRow[],
    readonly untrainedRows: number[],
  ) {
    super(message);
  }
}

/** The pipeline options a job's data settings (from the CLI flags or the wizard's data step) stand for. */
export function fromDataSettings(
  data: DataSettings,
): Pick<DatasetOptions, 'format' | 'mapping' | 'trainOn' | 'pack' | 'skipBadRows'> {
  return {
    format: data.format ?? undefined,
    mapping: data.columns as ColumnMapping,
    trainOn: data.trainOn,
    pack: data.pack,
    skipBadRows: data.skipBadRows,
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
  });
  const stats = new DatasetStatsCollector({ maxSeqLen: options.maxSeqLen });
  const badRows: BadRow[] = [];
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
    stats.add(outcome);
    if (outcome.kind === 'bad') badRows.push({ ...outcome.bad, reason: clipped(outcome.bad.reason, MAX_REASON_CHARS) });
    else if (outcome.kind === 'rendered') rendered.push(outcome.sample);
  }
  if (badRows.length && !options.skipBadRows) {
    const first = badRows[0];
    throw new UserError(
      `${file}:${first.row}: ${first.reason} (${badRows.length} bad row${badRows.length > 1 ? 's' : ''}; fix them or skip them)`,
      { field: 'data.skipBadRows' },
    );
  }
  const truncation = truncate(rendered, options.maxSeqLen);
  if (truncation.samples.length === 0) {
    const { untrainedRows } = truncation;
    const counts = `${read} rows read, ${badRows.length} bad, ${untrainedRows.length} with no trained token`;
    throw new NothingToTrainError(
      `${file}: nothing to train on (${counts} within ${options.maxSeqLen} tokens)`,
      badRows,
      untrainedRows,
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
    sourceSha256: await sha256File(file),
  };
}
