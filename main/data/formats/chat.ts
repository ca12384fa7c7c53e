// Chat rows: OpenAI messages, ShareGPT conversations and Alpaca instructions, all to one list of chat messages.
import { describeValue, isRecord } from '../jsonValues.js';
import type { ChatMessage, ChatRole, Sample } from '../samples.js';
import { columnName, listField, nonEmptyText, optionalText, reject, requiredText, type RowFields } from './fields.js';

// ShareGPT says human and gpt; either naming is accepted in either format, in any case.
const ROLES: ReadonlyMap<string, ChatRole> = new Map([
  ['system', 'system'],
  ['user', 'user'],
  ['assistant', 'assistant'],
  ['human', 'user'],
  ['gpt', 'assistant'],
]);

/** A `messages` ({role, content}) or `conversations` ({from, value}) list. */
export function chatSample(fields: RowFields, field: 'messages' | 'conversations'): Sample {
  const turns = listField(fields, field, true) ?? [];
  if (turns.length === 0) reject(`"${columnName(field, fields.mapping)}" is an empty list`);
  const messages = turns.map((turn, i) => chatMessage(turn, i + 1, fields.tabular));
  checkConversation(messages);
  return { kind: 'chat', messages };
}

/** Alpaca: optional system, user = instruction + blank line + input (when there is one), assistant = output. */
export function alpacaSample(fields: RowFields): Sample {
  const instruction = requiredText(fields, 'instruction');
  const input = optionalText(fields, 'input');
  const output = requiredText(fields, 'output');
  const system = optionalText(fields, 'system');
  const messages: ChatMessage[] = [
    ...(system === undefined ? [] : [{ role: 'system' as const, content: system }]),
    { role: 'user', content: input === undefined ? instruction : `${instruction}\n\n${input}` },
    { role: 'assistant', content: output },
  ];
  return { kind: 'chat', messages };
}

function chatMessage(turn: unknown, number: number, tabular: boolean): ChatMessage {
  const where = `message ${number}`;
  if (!isRecord(turn)) reject(`${where} must be an object with "role" and "content", found ${describeValue(turn)}`);
  const [roleKey, contentKey] =
    Object.hasOwn(turn, 'from') && !Object.hasOwn(turn, 'role') ? ['from', 'value'] : ['role', 'content'];
  const roleName = turn[roleKey];
  if (roleName === undefined) reject(`${where} has no "role" field`);
  if (typeof roleName !== 'string') reject(`${where} "${roleKey}" must be text, found ${describeValue(roleName)}`);
  const role = ROLES.get(roleName.toLowerCase());
  if (role === undefined)
    reject(`${where} has the unknown role "${roleName}"; expected system, user or assistant (or human, gpt)`);
  if (!Object.hasOwn(turn, contentKey)) reject(`${where} has no "${contentKey}" field`);
  return { role, content: nonEmptyText(turn[contentKey], `${where} "${contentKey}"`, tabular) };
}

function checkConversation(messages: ChatMessage[]): void {
  const laterSystem = messages.findIndex((message, i) => i > 0 && message.role === 'system');
  if (laterSystem !== -1) reject(`message ${laterSystem + 1} is a system message; only the first message may be one`);
  if (!messages.some((message) => message.role === 'assistant')) reject('no assistant message, so nothing to train on');
}
