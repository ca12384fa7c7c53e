// Which files of a repo are fetched: for a model only what the studio reads (config, safetensors weights, tokenizer,
// generation config, chat template), never the duplicate .bin/.pth/GGUF/ONNX exports; for a dataset its data files.

/** Root-level files a model folder needs (see modelFolder.ts, tokenizer.ts, render.ts, generate.ts). */
const MODEL_FILES = new Set([
  'config.json',
  'generation_config.json',
  'model.safetensors.index.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.jinja',
  'chat_template.json',
]);
/** model.safetensors or model-00001-of-00004.safetensors; not consolidated.safetensors (Mistral's duplicate copy). */
const MODEL_WEIGHTS = /^model(-\d+-of-\d+)?\.safetensors$/;

export const isWeightsFile = (file: string): boolean => MODEL_WEIGHTS.test(file);

export function isModelFile(file: string): boolean {
  return MODEL_FILES.has(file) || isWeightsFile(file);
}

const DATA_EXTENSIONS = /\.(jsonl|json|csv|tsv|parquet)$/i;
/** JSON files `datasets` writes about a dataset, not rows of it. */
const DATASET_METADATA = new Set(['dataset_info.json', 'dataset_infos.json', 'dataset_dict.json', 'state.json']);

export function isDataFile(file: string): boolean {
  return DATA_EXTENSIONS.test(file) && !DATASET_METADATA.has(file.split('/').at(-1)!);
}

/**
 * A split's files by the Hub's naming conventions: `train.jsonl`, `data/train-00000-of-00001.parquet`,
 * `train/part-0.csv`, `sft_train.json`; the split name stands between separators.
 */
export function isSplitFile(file: string, split: string): boolean {
  const name = split.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[/_.-])${name}([/_.-]|$)`, 'i').test(file);
}

/** fnmatch-style patterns as huggingface_hub's allow_patterns: `*` spans folders, `dir/` means everything under it. */
export function globToRegExp(glob: string): RegExp {
  const pattern = glob.endsWith('/') ? `${glob}*` : glob;
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') source += '.*';
    else if (c === '?') source += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) source += '\\[';
      else {
        const body = pattern.slice(i + 1, end);
        source += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else source += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

export interface Selection {
  type: 'model' | 'dataset';
  /** Replace the default choice: the files matching any of these patterns. */
  include?: string[];
  /** Dataset only: keep the files of this split. */
  split?: string;
}

export function fileSelector(selection: Selection): (file: string) => boolean {
  const patterns = selection.include?.length ? selection.include.map(globToRegExp) : null;
  return (file) => {
    if (patterns) {
      if (!patterns.some((p) => p.test(file))) return false;
    } else if (!(selection.type === 'model' ? isModelFile(file) : isDataFile(file))) {
      return false;
    }
    return selection.split === undefined || isSplitFile(file, selection.split);
  };
}
