// The dataset table of the wizard's Data step: every row of a file, a page at a time, as the model will see it (the
// token preview of each row) or why it is not trained on. A page reads the file up to its last row and renders only
// its own rows, so paging through a large file never renders what it does not show.
import path from 'node:path';
import type { CheckedParams, DatasetPage } from '../../shared/api.js';
import type { DatasetTableRow } from '../../shared/data.js';
import { openModelFolder } from '../model/modelFolder.js';
import { MAX_REASON_CHARS, readSamples } from './formats.js';
import { clipped } from './jsonValues.js';
import { PREVIEW_TOKENS, previewSample } from './preview.js';
import { SampleRenderer } from './render.js';

export async function datasetPage(params: CheckedParams<'datasets.rows'>): Promise<DatasetPage> {
  const file = path.resolve(params.file);
  const folder = openModelFolder(params.modelDir);
  const renderer = SampleRenderer.forModel(folder.dir, {
    trainOn: params.data.trainOn,
    vocabSize: folder.spec.vocabSize,
    chatTemplateFile: params.data.chatTemplate ?? undefined,
  });
  // Tokens past the maximum sequence length are cut before training: shown as hidden, never as trained.
  const shownTokens = Math.min(params.maxSeqLen, PREVIEW_TOKENS);
  const rows: DatasetTableRow[] = [];
  let index = 0;
  for await (const item of readSamples(file, {
    format: params.data.format ?? undefined,
    mapping: params.data.columns,
  })) {
    if (index++ < params.offset) continue;
    if (rows.length === params.limit) return { offset: params.offset, rows, more: true };
    if (item.type === 'bad') {
      rows.push({ kind: 'bad', row: item.row, reason: item.reason });
      continue;
    }
    const outcome = previewSample(renderer, item, shownTokens);
    if (outcome.kind === 'bad') {
      rows.push({ kind: 'bad', row: item.row, reason: clipped(outcome.bad.reason, MAX_REASON_CHARS) });
    } else if (outcome.kind === 'empty') {
      rows.push({ kind: 'empty', row: item.row });
    } else {
      const { preview } = outcome;
      const length = preview.tokens.length + preview.hiddenTokens;
      rows.push({ kind: 'sample', preview, cutTokens: Math.max(0, length - params.maxSeqLen) });
    }
  }
  return { offset: params.offset, rows, more: false };
}
