// Small helpers for values parsed from data files, shared by the readers and the format converters.

/** A plain record (a JSON object, a CSV row), not null and not a list. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** What a value is, for error messages: `a number (42)`, `text ("Hi")`, `a list`, `null`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string')
    return `text (${JSON.stringify(value.length > 30 ? `${value.slice(0, 30)}…` : value)})`;
  if (typeof value === 'number' || typeof value === 'bigint') return `a number (${value})`;
  if (typeof value === 'boolean') return `a boolean (${value})`;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return 'a list';
  return 'an object';
}

/** Text from a data file or a request, as it appears in a message: at most `max` characters, one line. */
export function clipped(text: string, max = 200): string {
  const head = text.length > max ? `${text.slice(0, max - 1)}…` : text;
  return head.replace(/[\r\n]+/g, ' ');
}
