// Shared pieces of the CLI's subcommands: the command shape, typed flag parsing, usage errors, and flags as the
// fields of a job or generation request they set (named back as flags when the schema refuses a value).
import type { ParseArgsConfig } from 'node:util';
import { oneLine, type FieldProblem } from '../../shared/errors.js';
import { GENERATION_FIELDS } from '../../shared/generation.js';
import {
  JOB_BOUNDS,
  JOB_FIELDS,
  numberSchema,
  QUANTIZE_CHOICES,
  type FieldNames,
  type NumberBounds,
} from '../../shared/trainJob.js';
import type { QuantizeChoice } from '../../shared/training.js';

/** Bad usage of a command: exit code 2 and the command's usage line. */
export class UsageError extends Error {}

export type Options = ParseArgsConfig['options'] & object;
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  summary: string;
  usage: string;
  options: Options;
  /** Whether the command reads positional arguments (the others refuse them). */
  positionals?: true;
  run(values: Values, positionals: string[]): Promise<void>;
}

export function number(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  check: (n: number) => boolean = Number.isFinite,
  expected = 'a number',
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} ${raw}: expected ${expected}`);
  return n;
}

export const positiveInt = (values: Record<string, unknown>, name: string, fallback: number) =>
  number(values, name, fallback, (n) => Number.isInteger(n) && n > 0, 'a positive integer');

export function choice<T extends string>(
  values: Record<string, unknown>,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} ${raw}: expected one of ${allowed.join(', ')}`);
  return raw as T;
}

/**
 * A number flag as the value of its field, or undefined when not given; text that is no number becomes NaN, which the
 * schema refuses.
 */
export function flagNumber(values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  return typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
}

/** A string flag, or undefined when not given. */
export const flagString = (values: Values, name: string): string | undefined =>
  typeof values[name] === 'string' ? (values[name] as string) : undefined;

/** `base` with the fields a flag gave (the undefined ones are flags not given). */
export function withGiven<T extends object>(base: T, given: { [K in keyof T]?: T[K] | undefined }): T {
  return { ...base, ...Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined)) };
}

const FIELD_NAMES: Record<string, FieldNames> = { ...JOB_FIELDS, ...GENERATION_FIELDS };

/** The flag that sets a field ('lora.rank': --rank); the path itself where no flag does. */
export function flagOf(field: string): string {
  return FIELD_NAMES[field]?.flag ?? field;
}

/** A schema's problem said against the flag the user typed: `--rank many: must be a number`. */
function flagProblem(problem: FieldProblem, values: Values): string {
  const flag = flagOf(problem.field);
  const raw = values[flag.replace(/^--/, '')];
  return `${flag}${typeof raw === 'string' ? ` ${oneLine(raw, 200)}` : ''}: ${problem.message}`;
}

/** Throws the first problem as a UsageError naming its flag. */
export function refuseProblems(problems: FieldProblem[], values: Values): void {
  if (problems.length) throw new UsageError(flagProblem(problems[0], values));
}

/** A number flag outside any job (eval, bench), checked against the bounds of the job field it mirrors. */
export function boundedNumber(values: Values, name: string, fallback: number, bounds: NumberBounds): number {
  const given = flagNumber(values, name);
  if (given === undefined) return fallback;
  const checked = numberSchema(bounds).safeParse(given);
  if (!checked.success) throw new UsageError(`--${name} ${values[name]}: ${checked.error.issues[0].message}`);
  return checked.data;
}

/** `--threads N`: the engine's CPU threads, checked against the job's bounds; null (every core) when not given. */
export function threadsFlag(values: Values): number | null {
  return values.threads === undefined ? null : boundedNumber(values, 'threads', 0, JOB_BOUNDS.threads);
}

/** `--quantize none|nf4|fp4|int4`: 4-bit base weights (QLoRA), quantized on load; none when not given. */
export function quantizeFlag(values: Values): QuantizeChoice {
  return choice(values, 'quantize', QUANTIZE_CHOICES, 'none');
}

export const json = { type: 'boolean', default: false } as const;
export const str = { type: 'string' } as const;
