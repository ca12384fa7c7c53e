// peft-studio data inspect, and the data flags train and eval share: what a dataset holds, and which tokens train.
import path from 'node:path';
import { duplicatesWarning, quotedValuesWarning } from '../../shared/data.js';
import type { DataSettings } from '../../shared/training.js';
import { DATA_FORMATS, defaultDataSettings } from '../../shared/trainJob.js';
import { inspectDataset } from '../data/inspect.js';
import { formatPreview } from '../data/preview.js';
import { choice, json, positiveInt, str, UsageError, type Command } from './options.js';

type Values = Record<string, string | boolean | string[] | undefined>;

export const DATA_FLAGS =
  '[--format messages|sharegpt|alpaca|prompt-completion|text|tokens] [--columns field=column,...] [--train-on completion|all] [--pack] [--skip-bad-rows] [--drop-duplicates] [--chat-template FILE.jinja]';
export const dataOptions = {
  format: str,
  columns: str,
  'train-on': str,
  pack: { type: 'boolean', default: false },
  'skip-bad-rows': { type: 'boolean', default: false },
  'drop-duplicates': { type: 'boolean', default: false },
  'chat-template': str,
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
  const defaults = defaultDataSettings();
  return {
    format: values.format === undefined ? defaults.format : choice(values, 'format', DATA_FORMATS, 'text'),
    columns: parseColumns(values.columns as string | undefined),
    trainOn: choice(values, 'train-on', ['completion', 'all'] as const, defaults.trainOn),
    // Boolean flags: given means on, which the defaults are not.
    pack: values.pack === true,
    skipBadRows: values['skip-bad-rows'] === true,
    dropDuplicates: values['drop-duplicates'] === true,
    chatTemplate: typeof values['chat-template'] === 'string' ? path.resolve(values['chat-template']) : null,
  };
}

export const DATA_COMMANDS: Record<string, Command> = {
  data: {
    positionals: true,
    summary: 'inspect a dataset: format, stats, bad rows, and which tokens of the first rows are trained',
    usage: `peft-studio data inspect FILE --model DIR ${DATA_FLAGS} [--max-seq-len 512] [--rows 3] [--json]`,
    options: { model: str, ...dataOptions, 'max-seq-len': str, rows: str, json },
    async run(values, positionals) {
      if (positionals[0] !== 'inspect' || positionals.length !== 2)
        throw new UsageError('usage: data inspect FILE --model DIR');
      if (!values.model) throw new UsageError('--model is required (its tokenizer and chat template render the data)');
      const maxSeqLen = positiveInt(values, 'max-seq-len', 512);
      const inspection = await inspectDataset({
        file: positionals[1],
        modelDir: values.model as string,
        data: dataSettings(values),
        maxSeqLen,
        previewRows: positiveInt(values, 'rows', 3),
      });
      const { file, stats: s, previews } = inspection;
      if (values.json) return void process.stdout.write(`${JSON.stringify(inspection)}\n`);
      const out: string[] = [];
      if (s) {
        out.push(`${file}: ${inspection.format}, sha256 ${inspection.sourceSha256}`);
        out.push(
          `rows ${s.rows} (bad ${s.badRows}, empty ${s.emptyRows}, duplicate ${s.duplicateRows}), tokens ${s.tokens}, trained ${s.trainedTokens}, truncated rows ${s.truncatedRows} (${s.cutTokens} tokens cut at ${maxSeqLen})`,
        );
        out.push(
          `lengths ${s.minLength}..${s.maxLength}, mean ${s.meanLength.toFixed(1)}: ${s.lengthHistogram.map((b) => `${b.from}-${b.to}: ${b.rows}`).join(', ')}`,
        );
        const quoted = quotedValuesWarning(s);
        if (quoted) out.push(`warning: ${quoted}`);
        const repeated = values['drop-duplicates'] ? null : duplicatesWarning(s);
        if (repeated) out.push(`warning: ${repeated} (--drop-duplicates)`);
        for (const bad of inspection.badRows) out.push(`bad ${file}:${bad.row}: ${bad.reason}`);
        const bad = new Set(inspection.badRows.map((row) => row.row));
        for (const cut of inspection.cutRows) if (!bad.has(cut.row)) out.push(`cut ${file}:${cut.row}: ${cut.reason}`);
      } else {
        out.push(`${file}: nothing to train on`);
      }
      const color = process.stdout.isTTY === true;
      for (const preview of previews)
        out.push(
          '',
          `row ${preview.row}${color ? ' (trained tokens in green)' : ' (trained tokens in [[ ]])'}:`,
          formatPreview(preview, { color }),
        );
      process.stdout.write(`${out.join('\n')}\n`);
    },
  },
};
