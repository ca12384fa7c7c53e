// What a dataset holds, for `peft-studio data inspect` and the wizard's Data step: format, stats, every bad row, every
// row cut or left out and why, the duplicates, and the first rows token by token with the trained ones marked.
import path from 'node:path';
import type { CheckedParams, DatasetInspection } from '../../shared/api.js';
import { fromDataSettings, NothingToTrainError, prepareDataset, type PreparedDataset } from './dataset.js';
import { readSamples } from './formats.js';
import { previewSample } from './preview.js';
import type { TokenPreview } from '../../shared/data.js';
import { SampleRenderer } from './render.js';
import { openModelFolder } from '../model/modelFolder.js';

/** The previews' share of an answer, in bytes of JSON: one row's preview (capped in preview.ts) is always under it. */
const PREVIEW_BYTES = 512 * 2 ** 10;
/** Bad, untrained, cut and duplicate rows listed in an answer; the stats count them all. */
const LISTED_ROWS = 1000;
/** Rows read looking for rows to preview: a file of bad rows is not read a second time to the end. */
const PREVIEW_SCAN_ROWS = 10_000;

export async function inspectDataset(params: CheckedParams<'datasets.inspect'>): Promise<DatasetInspection> {
  const file = path.resolve(params.file);
  const folder = openModelFolder(params.modelDir);
  let prepared: PreparedDataset | null = null;
  let nothingToTrain: NothingToTrainError | null = null;
  try {
    prepared = await prepareDataset({
      file,
      modelDir: folder.dir,
      vocabSize: folder.spec.vocabSize,
      maxSeqLen: params.maxSeqLen,
      ...fromDataSettings(params.data),
      skipBadRows: true, // inspection lists every bad row instead of stopping at the first
      validationFraction: 0,
      seed: 0,
    });
  } catch (err) {
    // No trainable row is an answer: the bad and untrained rows say why.
    if (!(err instanceof NothingToTrainError)) throw err;
    nothingToTrain = err;
  }

  const renderer = SampleRenderer.forModel(folder.dir, {
    trainOn: params.data.trainOn,
    vocabSize: folder.spec.vocabSize,
    chatTemplateFile: params.data.chatTemplate ?? undefined,
  });
  const previews: TokenPreview[] = [];
  let previewBytes = 0;
  let scanned = 0;
  for await (const item of readSamples(file, {
    format: params.data.format ?? undefined,
    mapping: params.data.columns,
  })) {
    if (previews.length >= params.previewRows || ++scanned > PREVIEW_SCAN_ROWS) break;
    if (item.type !== 'sample') continue;
    const outcome = previewSample(renderer, item);
    if (outcome.kind !== 'preview') continue;
    previewBytes += Buffer.byteLength(JSON.stringify(outcome.preview));
    if (previewBytes > PREVIEW_BYTES) break;
    previews.push(outcome.preview);
  }
  return {
    file,
    format: prepared?.format ?? null,
    stats: prepared?.stats ?? null,
    badRows: (prepared?.badRows ?? nothingToTrain?.badRows ?? []).slice(0, LISTED_ROWS),
    untrainedRows: (prepared?.untrainedRows ?? nothingToTrain?.untrainedRows ?? []).slice(0, LISTED_ROWS),
    cutRows: (prepared?.cutRows ?? nothingToTrain?.cutRows ?? []).slice(0, LISTED_ROWS),
    duplicates: (prepared?.duplicates ?? nothingToTrain?.duplicates ?? []).slice(0, LISTED_ROWS),
    sourceSha256: prepared?.sourceSha256 ?? null,
    previews,
  };
}
