/** An error caused by the user's input: shown as one line, without a stack trace. */
export class UserError extends Error {
  override name = 'UserError';
}

/** A call the contract refuses: unknown method or bad params. */
export class ApiError extends Error {
  override name = 'ApiError';
}

/** An error as it crosses a thread, process or network boundary: `name` says which class to rebuild. */
export interface WireError {
  name: string;
  message: string;
}

/** The longest message that crosses a boundary: a huge bad value is never echoed back whole. */
export const MAX_ERROR_CHARS = 1000;

/** One line of at most `max` characters: whitespace runs (newlines included) become one space. */
export function oneLine(text: string, max = MAX_ERROR_CHARS): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

export function toWire(err: unknown): WireError {
  if (err instanceof Error) return { name: err.name, message: oneLine(err.message) };
  return { name: 'Error', message: oneLine(String(err)) };
}

/** The error `toWire` sent: UserError and ApiError keep their class (front ends answer them differently). */
export function fromWire(wire: WireError): Error {
  const Kind = wire.name === 'UserError' ? UserError : wire.name === 'ApiError' ? ApiError : Error;
  const err = new Kind(wire.message);
  if (Kind === Error) err.name = wire.name;
  return err;
}
