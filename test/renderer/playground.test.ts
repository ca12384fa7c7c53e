// The playground's conversation: what each side is asked, with its own earlier replies as context.
import { describe, expect, it } from 'vitest';
import type { StudioApi } from '../../shared/api.js';
import {
  conversationInput,
  PlaygroundState,
  type Answer,
  type Turn,
} from '../../renderer/src/lib/playgroundState.svelte.js';

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

describe('the chat-template choice', () => {
  // Choosing an adapter and ticking the box call nothing: an API that throws proves it.
  const api = new Proxy({}, { get: () => () => expect.fail('the API was called') }) as unknown as StudioApi;

  it('follows how the chosen adapter was trained, and warns when the choice differs', () => {
    const playground = new PlaygroundState(api);
    playground.chooseAdapter({ chatTemplate: true });
    expect(playground.useChatTemplate).toBe(true);
    expect(playground.templateWarning).toBeNull();
    playground.useChatTemplate = false;
    expect(playground.templateWarning).toBe(
      'This adapter was trained with the chat template; replies may be poor this way',
    );

    playground.chooseAdapter({ chatTemplate: false });
    expect(playground.useChatTemplate).toBe(false);
    expect(playground.templateWarning).toBeNull();
    playground.useChatTemplate = true;
    expect(playground.templateWarning).toBe(
      'This adapter was trained without the chat template; replies may be poor this way',
    );
  });

  it('keeps plain text and no warning for an adapter with no record, or none', () => {
    const playground = new PlaygroundState(api);
    playground.chooseAdapter({ chatTemplate: true });
    playground.chooseAdapter({ chatTemplate: null });
    expect(playground.useChatTemplate).toBe(false);
    playground.useChatTemplate = true;
    expect(playground.templateWarning).toBeNull();
    playground.chooseAdapter(null);
    expect(playground.useChatTemplate).toBe(false);
    expect(playground.templateWarning).toBeNull();
  });
});
