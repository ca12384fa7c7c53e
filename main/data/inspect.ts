// What a dataset holds, for `peft-studio data inspect` and the wizard's Data step: format, stats, every bad row, and
// the first rows token by token with the trained ones marked.
import path from 'node:path';
import type { CheckedParams, DatasetInspection } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import { fromDataSettings, prepareDataset } from './dataset.js';
import { readSamples } from './formats.js';
import { previewSample } from './preview.js';
import type { TokenPreview } from '../../shared/data.js';
import { SampleRenderer } from './render.js';
import { openModelFolder } from '../model/modelFolder.js';

export async function inspectDataset(params: CheckedParams<'datasets.inspect'>): Promise<DatasetInspection> {
  const file = path.resolve(params.file);
  const folder = openModelFolder(params.modelDir);
  const prepared = await prepareDataset({
    file,
    modelDir: folder.dir,
    vocabSize: folder.spec.vocabSize,
    maxSeqLen: params.maxSeqLen,
    ...fromDataSettings(params.data),
    skipBadRows: true, // inspection lists every bad row instead of stopping at the first
    validationFraction: 0,
    seed: 0,
  }).catch((err: unknown) => {
    if (err instanceof UserError && /nothing to train on/.test(err.message)) return null;
    throw err;
  });

  const renderer = SampleRenderer.forModel(folder.dir, { trainOn: params.data.trainOn, vocabSize: folder.spec.vocabSize });
  const previews: TokenPreview[] = [];
  for await (const item of readSamples(file, { format: params.data.format ?? undefined, mapping: params.data.columns })) {
    if (previews.length >= params.previewRows) break;
    if (item.type !== 'sample') continue;
    const outcome = previewSample(renderer, item);
    if (outcome.kind === 'preview') previews.push(outcome.preview);
  }
  return {
    file,
    format: prepared?.format ?? null,
    stats: prepared?.stats ?? null,
    badRows: prepared?.badRows ?? [],
    untrainedRows: prepared?.untrainedRows ?? [],
    sourceSha256: prepared?.sourceSha256 ?? null,
    previews,
  };
}
