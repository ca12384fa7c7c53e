// The README.md pushed with an adapter: the YAML metadata the Hub reads for PEFT adapters (library, base model and
// its relation, tags, task, license) and a body saying how it was trained and how to load it.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import type { LossPoint } from './lossChart.js';

/** What training reports about a run (ADAPTER_DIR/training.json); every field is optional. */
export interface TrainingFacts {
  settings?: Record<string, unknown>;
  dataset?: { name?: string; sha256?: string };
  finalLoss?: number | null;
  evalLoss?: number | null;
  losses?: LossPoint[];
}

export type AdapterMethod = 'lora' | 'prompt-tuning';

export interface ModelCardInput {
  /** The adapter's repo, org/name. */
  repoId: string;
  /** The base model's repo, org/name. */
  baseModel: string;
  hubUrl: string;
  method: AdapterMethod;
  adapterConfig: Record<string, unknown>;
  /** The base model card's license fields, copied so the adapter states the terms it inherits. */
  license?: { license?: string | string[]; license_name?: string; license_link?: string };
  training?: TrainingFacts;
  /** Repo paths of the files the card points to, when they were pushed. */
  chart?: string;
  merged?: string;
  gguf?: string;
  /** The tokenizer was pushed with the adapter. */
  hasTokenizer: boolean;
  /** The name of the studio run that trained it, when it came from one. */
  runName?: string;
}

function isNumberOrNull(value: unknown): boolean {
  return value === null || value === undefined || (typeof value === 'number' && Number.isFinite(value));
}

/** Reads ADAPTER_DIR/training.json; undefined when there is none. Errors name the file and the field. */
export function readTrainingFacts(file: string): TrainingFacts | undefined {
  if (!fs.existsSync(file)) return undefined;
  let facts: Record<string, unknown>;
  try {
    facts = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
  }
  const isObject = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const bad = (field: string, expected: string) => new UserError(`${file}: field "${field}" must be ${expected}`);
  if (!isObject(facts)) throw new UserError(`${file}: expected a JSON object`);
  if (facts.settings !== undefined && !isObject(facts.settings)) throw bad('settings', 'an object');
  const dataset = facts.dataset as Record<string, unknown> | undefined;
  if (
    dataset !== undefined &&
    (!isObject(dataset) || ['name', 'sha256'].some((k) => dataset[k] !== undefined && typeof dataset[k] !== 'string'))
  )
    throw bad('dataset', 'an object with string name and sha256');
  for (const field of ['finalLoss', 'evalLoss'])
    if (!isNumberOrNull(facts[field])) throw bad(field, 'a number or null');
  const losses = facts.losses;
  if (
    losses !== undefined &&
    (!Array.isArray(losses) ||
      losses.some((p) => !isObject(p) || typeof p.step !== 'number' || typeof p.loss !== 'number'))
  )
    throw bad('losses', 'a list of {"step": number, "loss": number}');
  return facts as TrainingFacts;
}

const YAML_WORDS = /^(true|false|yes|no|on|off|null|~)$/i;

/** A YAML scalar: plain when it is safe to, else double-quoted (a JSON string is a valid YAML one). */
function yamlScalar(value: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._/:+-]*$/.test(value) && !YAML_WORDS.test(value) ? value : JSON.stringify(value);
}

function frontMatter(input: ModelCardInput): string {
  const lines = [
    '---',
    'library_name: peft',
    `base_model: ${yamlScalar(input.baseModel)}`,
    'base_model_relation: adapter',
  ];
  const { license, license_name, license_link } = input.license ?? {};
  if (typeof license === 'string') lines.push(`license: ${yamlScalar(license)}`);
  else if (Array.isArray(license) && license.length)
    lines.push('license:', ...license.map((l) => `- ${yamlScalar(l)}`));
  if (license_name) lines.push(`license_name: ${yamlScalar(license_name)}`);
  // A relative link points into the base repo, not this one.
  if (license_link)
    lines.push(
      `license_link: ${yamlScalar(/^https?:/.test(license_link) ? license_link : `${input.hubUrl}/${input.baseModel}/blob/main/${license_link}`)}`,
    );
  lines.push('pipeline_tag: text-generation', 'tags:');
  for (const tag of ['peft', input.method, `base_model:adapter:${input.baseModel}`, 'transformers', 'peft-studio'])
    lines.push(`- ${yamlScalar(tag)}`);
  lines.push('---');
  return lines.join('\n');
}

const cell = (value: string) => value.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** A local file's name without its folders: an absolute path would publish the user's folder names. */
function publicName(value: string): string {
  return path.isAbsolute(value) || /^[A-Za-z]:[\\/]|\\/.test(value) ? value.split(/[\\/]/).at(-1)! : value;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'none';
  if (typeof value === 'string') return publicName(value);
  if (Array.isArray(value)) return value.map(describeValue).join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Settings as table rows; nested objects become dotted names (lora.rank). */
function settingRows(settings: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(settings).flatMap(([key, value]) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? settingRows(value as Record<string, unknown>, `${prefix}${key}.`)
      : [`| ${cell(prefix + key)} | ${cell(describeValue(value))} |`],
  );
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** Optimizer settings the named optimizer ignores. */
const IGNORED_BY: Record<string, string[]> = { adamw: ['momentum'], sgd: ['beta1', 'beta2', 'eps'] };

/**
 * The settings that shaped this adapter: training.json records the whole job, but a LoRA run ignores the
 * prompt-tuning settings and the other way round, a run of set steps ignores `epochs` (and one measured in epochs has
 * no steps), each optimizer ignores the other's hyperparameters, and a prompt started at random has no start text.
 */
function applicableSettings(settings: Record<string, unknown>, method: AdapterMethod): Record<string, unknown> {
  const skipped = new Set([method === 'lora' ? 'promptTuning' : 'lora']);
  if (typeof settings.steps === 'number') skipped.add('epochs');
  else if (settings.steps === null && settings.epochs !== undefined) skipped.add('steps');
  const out = Object.fromEntries(Object.entries(settings).filter(([key]) => !skipped.has(key)));
  const without = (value: Record<string, unknown>, keys: string[]) =>
    Object.fromEntries(Object.entries(value).filter(([key]) => !keys.includes(key)));
  if (isRecord(out.promptTuning) && out.promptTuning.init === 'random')
    out.promptTuning = without(out.promptTuning, ['initText']);
  if (isRecord(out.optimizer)) out.optimizer = without(out.optimizer, IGNORED_BY[String(out.optimizer.name)] ?? []);
  return out;
}

function adapterSummary(input: ModelCardInput): string {
  const c = input.adapterConfig;
  if (input.method === 'prompt-tuning') return `prompt tuning, ${describeValue(c.num_virtual_tokens)} virtual tokens`;
  return `LoRA, r=${describeValue(c.r)}, alpha=${describeValue(c.lora_alpha)}, targets ${describeValue(c.target_modules)}${c.use_rslora === true ? ', rsLoRA' : ''}`;
}

const formatLossValue = (loss: number | null | undefined) =>
  typeof loss === 'number' ? loss.toFixed(4) : 'not measured';

export function renderModelCard(input: ModelCardInput): string {
  const name = input.repoId.split('/').at(-1)!;
  const training = input.training;
  const kind = input.method === 'lora' ? 'A LoRA adapter' : 'A prompt-tuning adapter';
  const out = [
    frontMatter(input),
    '',
    `# ${name}`,
    '',
    `${kind} for [${input.baseModel}](${input.hubUrl}/${input.baseModel}), trained with PEFT Studio.`,
    '',
    '## Training',
    '',
    '| setting | value |',
    '| --- | --- |',
    `| adapter | ${cell(adapterSummary(input))} |`,
    ...(input.runName ? [`| run | ${cell(input.runName)} |`] : []),
    ...settingRows(applicableSettings(training?.settings ?? {}, input.method)),
    '',
  ];
  const dataset = training?.dataset;
  if (dataset?.name || dataset?.sha256) {
    out.push(
      `Dataset: ${dataset.name ? `\`${publicName(dataset.name)}\`` : 'unnamed'}${dataset.sha256 ? ` (sha256 \`${dataset.sha256}\`)` : ''}.`,
      '',
    );
  }
  if (training && (training.finalLoss !== undefined || training.evalLoss !== undefined)) {
    out.push(
      `Final training loss: ${formatLossValue(training.finalLoss)}. Validation loss: ${formatLossValue(training.evalLoss)}.`,
      '',
    );
  }
  const losses = training?.losses ?? [];
  if (input.chart && losses.length) {
    out.push(
      `![Training loss by step](${input.chart})`,
      '',
      `Training loss over ${losses.length} logged steps (step ${losses[0].step} to ${losses.at(-1)!.step}).`,
      '',
    );
  }
  const tokenizerFrom = input.hasTokenizer ? input.repoId : input.baseModel;
  out.push(
    '## Usage',
    '',
    'With [PEFT](https://github.com/huggingface/peft) and transformers:',
    '',
    '```python',
    'from peft import PeftModel',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    '',
    `base = AutoModelForCausalLM.from_pretrained("${input.baseModel}")`,
    `tokenizer = AutoTokenizer.from_pretrained("${tokenizerFrom}")`,
    `model = PeftModel.from_pretrained(base, "${input.repoId}")`,
    '```',
    '',
  );
  if (input.merged) {
    out.push(
      `The adapter merged into the base weights is in \`${input.merged}/\`: \`AutoModelForCausalLM.from_pretrained("${input.repoId}", subfolder="${input.merged}")\`.`,
      '',
    );
  }
  if (input.gguf) out.push(`\`${input.gguf}\` is the GGUF export, for llama.cpp and Ollama.`, '');
  return out.join('\n');
}
