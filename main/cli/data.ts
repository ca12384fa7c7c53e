// peft-studio data inspect, and the data flags train and eval share: what a dataset holds, and which tokens train.
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import type { DataFormat, DataSettings } from '../../shared/training.js';
import { fromDataSettings, prepareDataset } from '../data/dataset.js';
import { readSamples } from '../data/formats.js';
import { formatPreview, previewSample, type TokenPreview } from '../data/preview.js';
import { SampleRenderer } from '../data/render.js';
import { openModelFolder } from '../model/modelFolder.js';
import { choice, json, positiveInt, str, UsageError, type Command } from './options.js';

type Values = Record<string, string | boolean | string[] | undefined>;

const FORMATS: readonly DataFormat[] = ['messages', 'sharegpt', 'alpaca', 'prompt-completion', 'text', 'tokens'];

export const DATA_FLAGS = '[--format messages|sharegpt|alpaca|prompt-completion|text|tokens] [--columns field=column,...] [--train-on completion|all] [--pack] [--skip-bad-rows]';
export const dataOptions = {
  format: str,
  columns: str,
  'train-on': str,
  pack: { type: 'boolean', default: false },
  'skip-bad-rows': { type: 'boolean', default: false },
} as const;

/** --columns prompt=question,completion=answer: which of the user's columns holds each field. */
function parseColumns(raw: string | undefined): Record<string, string> {
  if (!raw) return {};
  return Object.fromEntries(
    raw.split(',').map((pair) => {
      const [field, column] = pair.split('=').map((s) => s.trim());
      if (!field || !column) throw new UsageError(`--columns ${raw}: expected field=column pairs separated by commas`);
      return [field, column];
    }),
  );
}

export function dataSettings(values: Values): DataSettings {
  return {
    format: values.format === undefined ? null : choice(values, 'format', FORMATS, 'text'),
    columns: parseColumns(values.columns as string | undefined),
    trainOn: choice(values, 'train-on', ['completion', 'all'] as const, 'completion'),
    pack: values.pack === true,
    skipBadRows: values['skip-bad-rows'] === true,
  };
}

export const DATA_COMMANDS: Record<string, Command> = {
  data: {
    positionals: true,
    summary: 'inspect a dataset: format, stats, bad rows, and which tokens of the first rows are trained',
    usage: `peft-studio data inspect FILE --model DIR ${DATA_FLAGS} [--max-seq-len 512] [--rows 3] [--json]`,
    options: { model: str, ...dataOptions, 'max-seq-len': str, rows: str, json },
    async run(values, positionals) {
      if (positionals[0] !== 'inspect' || positionals.length !== 2) throw new UsageError('usage: data inspect FILE --model DIR');
      if (!values.model) throw new UsageError('--model is required (its tokenizer and chat template render the data)');
      const file = path.resolve(positionals[1]);
      const folder = openModelFolder(values.model as string);
      const settings = dataSettings(values);
      const maxSeqLen = positiveInt(values, 'max-seq-len', 512);
      const prepared = await prepareDataset({
        file,
        modelDir: folder.dir,
        vocabSize: folder.spec.vocabSize,
        maxSeqLen,
        ...fromDataSettings(settings),
        skipBadRows: true, // inspection lists every bad row instead of stopping at the first
        validationFraction: 0,
        seed: 0,
      }).catch((err: unknown) => {
        if (err instanceof UserError && /nothing to train on/.test(err.message)) return null;
        throw err;
      });

      const renderer = SampleRenderer.forModel(folder.dir, { trainOn: settings.trainOn, vocabSize: folder.spec.vocabSize });
      const previews: TokenPreview[] = [];
      const wanted = positiveInt(values, 'rows', 3);
      for await (const item of readSamples(file, { format: settings.format ?? undefined, mapping: settings.columns })) {
        if (previews.length >= wanted) break;
        if (item.type !== 'sample') continue;
        const outcome = previewSample(renderer, item);
        if (outcome.kind === 'preview') previews.push(outcome.preview);
      }

      if (values.json) {
        process.stdout.write(`${JSON.stringify({ file, format: prepared?.format ?? null, stats: prepared?.stats ?? null, badRows: prepared?.badRows ?? [], untrainedRows: prepared?.untrainedRows ?? [], sourceSha256: prepared?.sourceSha256 ?? null, previews })}\n`);
        return;
      }
      const out: string[] = [];
      if (prepared) {
        const s = prepared.stats;
        out.push(`${file}: ${prepared.format}, sha256 ${prepared.sourceSha256}`);
        out.push(`rows ${s.rows} (bad ${s.badRows}, empty ${s.emptyRows}, duplicate ${s.duplicateRows}), tokens ${s.tokens}, trained ${s.trainedTokens}, truncated rows ${s.truncatedRows} (${s.cutTokens} tokens cut at ${maxSeqLen})`);
        out.push(`lengths ${s.minLength}..${s.maxLength}, mean ${s.meanLength.toFixed(1)}: ${s.lengthHistogram.map((b) => `${b.from}-${b.to}: ${b.rows}`).join(', ')}`);
        for (const bad of prepared.badRows) out.push(`bad ${file}:${bad.row}: ${bad.reason}`);
      } else {
        out.push(`${file}: nothing to train on`);
      }
      const color = process.stdout.isTTY === true;
      for (const preview of previews) out.push('', `row ${preview.row}${color ? ' (trained tokens in green)' : ' (trained tokens in [[ ]])'}:`, formatPreview(preview, { color }));
      process.stdout.write(`${out.join('\n')}\n`);
    },
  },
};
