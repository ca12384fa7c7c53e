/** An error caused by the user's input: shown as one line, without a stack trace. */
export class UserError extends Error {
  override name = 'UserError';
}
