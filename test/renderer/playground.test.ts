// The playground's conversation: what each side is asked, with its own earlier replies as context.
import { describe, expect, it } from 'vitest';
import { conversationInput, type Answer, type Turn } from '../../renderer/src/lib/playgroundState.svelte.js';

const answer = (text: string): Answer => ({ requestId: 'r', text, summary: null, error: null, running: false });
const turns: Turn[] = [
  { user: 'Hi!', base: answer(' hello there\n'), tuned: answer(' Hello! How can I help you today?') },
];

describe('conversationInput', () => {
  it('writes plain User/Assistant text with each side its own replies, ready for the next reply', () => {
    expect(conversationInput(turns, 'base', 'Who are you?', false)).toEqual({
      type: 'prompt',
      text: 'User: Hi!\nAssistant: hello there\nUser: Who are you?\nAssistant:',
    });
    expect(conversationInput(turns, 'tuned', 'Who are you?', false)).toEqual({
      type: 'prompt',
      text: 'User: Hi!\nAssistant: Hello! How can I help you today?\nUser: Who are you?\nAssistant:',
    });
    expect(conversationInput([], 'base', 'Hi!', false)).toEqual({ type: 'prompt', text: 'User: Hi!\nAssistant:' });
  });

  it('gives messages for the chat template', () => {
    expect(conversationInput(turns, 'tuned', 'Who are you?', true)).toEqual({
      type: 'messages',
      messages: [
        { role: 'user', content: 'Hi!' },
        { role: 'assistant', content: 'Hello! How can I help you today?' },
        { role: 'user', content: 'Who are you?' },
      ],
    });
  });
});
