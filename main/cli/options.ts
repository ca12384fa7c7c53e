// Shared pieces of the CLI's subcommands: the command shape, typed flag parsing, usage errors.
import type { ParseArgsConfig } from 'node:util';
import type { DeviceChoice } from '../../shared/training.js';

/** Bad usage of a command: exit code 2 and the command's usage line. */
export class UsageError extends Error {}

export type Options = ParseArgsConfig['options'] & object;

export interface Command {
  summary: string;
  usage: string;
  options: Options;
  /** Whether the command reads positional arguments (the others refuse them). */
  positionals?: true;
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: string[]): Promise<void>;
}

export function number(values: Record<string, unknown>, name: string, fallback: number, check: (n: number) => boolean = Number.isFinite, expected = 'a number'): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} ${raw}: expected ${expected}`);
  return n;
}

export const positiveInt = (values: Record<string, unknown>, name: string, fallback: number) => number(values, name, fallback, (n) => Number.isInteger(n) && n > 0, 'a positive integer');
export const nonNegative = (values: Record<string, unknown>, name: string, fallback: number) => number(values, name, fallback, (n) => n >= 0, 'a number >= 0');

export function choice<T extends string>(values: Record<string, unknown>, name: string, allowed: readonly T[], fallback: T): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} ${raw}: expected one of ${allowed.join(', ')}`);
  return raw as T;
}

export const DEVICES: readonly DeviceChoice[] = ['auto', 'cpu', 'webgpu', 'cuda', 'dml'];
export const json = { type: 'boolean', default: false } as const;
export const str = { type: 'string' } as const;
