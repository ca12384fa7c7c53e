// The desktop IPC contract: three channels, the reply shape, and what the main process does with each message
// (sender check, then schema, then the studio API). Pure TypeScript plus zod: tested without Electron. The preload
// cannot import this file (a sandboxed preload may require only 'electron'), so it repeats the channel names and
// test/electron/security.test.ts checks they match.
import { z } from 'zod';
import { errorShape, parseCall, type ApiErrorShape, type CheckedCall, type StudioApi } from '../../shared/api.js';
import { ApiError, UserError } from '../../shared/errors.js';
import { isTrustedSender, type MessageSender, type TrustedRenderer } from './security.js';

export const CHANNELS = {
  /** renderer -> main, invoke(method, params): IpcReply of the method's result. */
  call: 'studio:call',
  /** main -> renderer, send(StudioEvent). */
  event: 'studio:event',
  /** renderer -> main, invoke(PickRequest): IpcReply of the chosen path or null. */
  pick: 'studio:pick',
} as const;

/**
 * Replies are values, never thrown errors: Electron would rewrite a thrown error's message ("Error invoking remote
 * method...").
 */
export type IpcReply<T> = { ok: true; value: T } | { ok: false; error: ApiErrorShape };

const fileFilterSchema = z.strictObject({
  name: z.string().min(1).max(100),
  // Bare extensions as the OS dialogs take them ("jsonl", not ".jsonl"); '*' for all files.
  extensions: z
    .array(z.string().regex(/^(\*|[A-Za-z0-9]{1,16})$/, 'expected an extension such as jsonl, or *'))
    .min(1)
    .max(20),
});

export const pickRequestSchema = z.strictObject({
  kind: z.enum(['file', 'folder']),
  title: z.string().min(1).max(200).optional(),
  filters: z.array(fileFilterSchema).max(20).default([]),
});
export type PickRequest = z.input<typeof pickRequestSchema>;
export type CheckedPickRequest = z.output<typeof pickRequestSchema>;

/** What the preload exposes as `window.peftStudio`: the studio API plus the native file and folder pickers. */
export interface DesktopBridge extends StudioApi {
  /** The chosen path, or null when the user cancelled. */
  pick(request: PickRequest): Promise<string | null>;
}

export function parsePickRequest(raw: unknown): CheckedPickRequest {
  const checked = pickRequestSchema.safeParse(raw);
  if (checked.success) return checked.data;
  const issue = checked.error.issues[0];
  throw new ApiError(
    `pick: ${issue.path.length ? `request.${issue.path.join('.')}` : 'request'}: ${issue.message.replace(/\s+/g, ' ')}`,
  );
}

/** showOpenDialog's properties for a request: a folder picker may create the folder (export destinations). */
export function openDialogProperties(
  request: CheckedPickRequest,
): Array<'openFile' | 'openDirectory' | 'createDirectory'> {
  return request.kind === 'file' ? ['openFile'] : ['openDirectory', 'createDirectory'];
}

function untrusted(sender: MessageSender): ApiError {
  return new ApiError(`message refused: not from the studio window (${sender.frameUrl ?? 'no frame'})`);
}

/**
 * The question the main process asks itself (a native dialog) before a call that deletes something, so that a script
 * injected into the page cannot delete on its own; null for every other call.
 */
export function deletionQuestion(call: CheckedCall): string | null {
  switch (call.method) {
    case 'runs.delete':
      return `Delete run ${call.params.id} and its checkpoints? Its adapter folder stays.`;
    case 'adapters.delete':
      return call.params.deleteFiles
        ? `Delete adapter ${call.params.id} and the files the studio wrote for it? This cannot be undone.`
        : `Remove adapter ${call.params.id} from the library? Its files stay on disk.`;
    case 'models.delete':
      return `Remove model ${call.params.id} from the library? Its files stay on disk.`;
    case 'datasets.delete':
      return `Remove dataset ${call.params.id} from the library? The file stays on disk.`;
    default:
      return null;
  }
}

/** Asks the user a yes/no question in the main process: true to go ahead. */
export type ConfirmInMain = (question: string) => Promise<boolean>;

/**
 * A `studio:call` message: refused unless our window sent it, then checked against the contract, confirmed by the
 * user when it deletes something, then answered.
 */
export async function answerCall(
  api: StudioApi,
  trusted: TrustedRenderer,
  sender: MessageSender,
  method: unknown,
  params: unknown,
  confirm: ConfirmInMain,
): Promise<IpcReply<unknown>> {
  try {
    if (!isTrustedSender(sender, trusted)) throw untrusted(sender);
    const call = parseCall(method, params);
    const question = deletionQuestion(call);
    if (question !== null && !(await confirm(question)))
      throw new UserError(`${call.method}: not done; you chose to keep it`);
    return { ok: true, value: await api.call(call.method, call.params) };
  } catch (err) {
    return { ok: false, error: errorShape(err) };
  }
}

/** A `studio:pick` message: the same sender check and a schema, then the OS dialog `choose` opens. */
export async function answerPick(
  choose: (request: CheckedPickRequest) => Promise<string | null>,
  trusted: TrustedRenderer,
  sender: MessageSender,
  raw: unknown,
): Promise<IpcReply<string | null>> {
  try {
    if (!isTrustedSender(sender, trusted)) throw untrusted(sender);
    return { ok: true, value: await choose(parsePickRequest(raw)) };
  } catch (err) {
    return { ok: false, error: errorShape(err) };
  }
}
