/** An error caused by the user's input: shown as one line, without a stack trace. */
export class UserError extends Error {
  override name = 'UserError';
  /**
   * The field of a job or a generation request the error is about, as a path ('maxSeqLen', 'lora.targets'): the CLI
   * names its flag, the GUI its label, so the message itself names neither.
   */
  readonly field: string | undefined;
  /** Data settings that would work (a format and column mapping guessed from a file's headers), when known. */
  readonly suggestion: DataSuggestion | undefined;

  constructor(message: string, options?: { field?: string; suggestion?: DataSuggestion }) {
    super(message);
    this.field = options?.field;
    this.suggestion = options?.suggestion;
  }
}

/** A data format and the file's columns for its fields, e.g. prompt-completion with { prompt: 'question', ... }. */
export interface DataSuggestion {
  format: string;
  columns: Record<string, string>;
}

/** A call the contract refuses: unknown method or bad params. */
export class ApiError extends Error {
  override name = 'ApiError';
}

/** An error as it crosses a thread, process or network boundary: `name` says which class to rebuild. */
export interface WireError {
  name: string;
  message: string;
  /** A UserError's field. */
  field?: string;
  /** A UserError's suggestion. */
  suggestion?: DataSuggestion;
}

/** The longest message that crosses a boundary: a huge bad value is never echoed back whole. */
export const MAX_ERROR_CHARS = 1000;

/** One line of at most `max` characters: whitespace runs (newlines included) become one space. */
export function oneLine(text: string, max = MAX_ERROR_CHARS): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

export function toWire(err: unknown): WireError {
  if (err instanceof UserError && (err.field !== undefined || err.suggestion !== undefined)) {
    const wire: WireError = { name: err.name, message: oneLine(err.message) };
    if (err.field !== undefined) wire.field = err.field;
    if (err.suggestion !== undefined) wire.suggestion = err.suggestion;
    return wire;
  }
  if (err instanceof Error) return { name: err.name, message: oneLine(err.message) };
  return { name: 'Error', message: oneLine(String(err)) };
}

/**
 * The error `toWire` sent: UserError (with its field) and ApiError keep their class (front ends answer them
 * differently).
 */
export function fromWire(wire: WireError): Error {
  if (wire.name === 'UserError')
    return new UserError(wire.message, {
      field: typeof wire.field === 'string' ? wire.field : undefined,
      suggestion: isSuggestion(wire.suggestion) ? wire.suggestion : undefined,
    });
  if (wire.name === 'ApiError') return new ApiError(wire.message);
  const err = new Error(wire.message);
  err.name = wire.name;
  return err;
}

/** A bad value: the field path it is at, and what is wrong with it. */
export interface FieldProblem {
  field: string;
  message: string;
}

/**
 * Schema issues as field problems, the first per field, in the schema's order. An issue inside a list or a record
 * (`lora.targets.2`, `data.columns.prompt`) belongs to the longest of `fields` its path starts with.
 */
export function fieldProblems(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
  fields: readonly string[],
): FieldProblem[] {
  const problems = new Map<string, string>();
  for (const issue of issues) {
    const parts = issue.path.map(String);
    let field = parts.join('.');
    for (let n = parts.length; n > 0; n--) {
      const prefix = parts.slice(0, n).join('.');
      if (fields.includes(prefix)) {
        field = prefix;
        break;
      }
    }
    if (!problems.has(field)) problems.set(field, issue.message);
  }
  return [...problems].map(([field, message]) => ({ field, message }));
}

function isSuggestion(value: unknown): value is DataSuggestion {
  const v = value as DataSuggestion | undefined;
  return (
    typeof v?.format === 'string' &&
    typeof v.columns === 'object' &&
    v.columns !== null &&
    Object.values(v.columns).every((c) => typeof c === 'string')
  );
}
