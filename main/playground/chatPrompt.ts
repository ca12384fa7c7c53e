// A conversation as prompt token ids, ready for the assistant's reply: through the model's chat template, or, for a
// model without one (the demo), as plain "User: / Assistant:" text when the caller allows it.
import { UserError } from '../../shared/errors.js';
import { loadChatTemplate, SampleRenderer } from '../data/render.js';
import type { ChatMessage } from '../data/samples.js';
import type { ModelTokenizer } from '../model/tokenizer.js';

export function chatPromptIds(modelDir: string, tokenizer: ModelTokenizer, messages: ChatMessage[], plainFallback: boolean): number[] {
  const rendered = new SampleRenderer(tokenizer, loadChatTemplate(modelDir, tokenizer.config), { trainOn: 'all' }).generationPrompt(messages);
  if (rendered !== null) return tokenizer.encode(rendered, { addSpecialTokens: false });
  if (!plainFallback) throw new UserError(`${modelDir}: the model has no chat template; pass --plain-chat to use "User: ... / Assistant:" text instead`);
  const text = messages.map((m) => `${m.role === 'user' ? 'User' : m.role === 'assistant' ? 'Assistant' : 'System'}: ${m.content}`).join('\n');
  return tokenizer.encode(`${text}\nAssistant:`);
}
