// A model's own chat template (tokenizer_config.json `chat_template`, or chat_template.jinja beside it), rendered
// with @huggingface/jinja the way transformers' apply_chat_template does.
import fs from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { UserError } from '../../shared/errors.js';

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatTemplate {
  /** Where the template came from, for error messages. */
  source: string;
  render(messages: ChatTurn[], options: { addGenerationPrompt: boolean }): string;
}

function specialToken(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return '';
}

/** The model folder's chat template, or null when it has none. */
export function loadChatTemplate(modelDir: string): ChatTemplate | null {
  const jinjaFile = path.join(modelDir, 'chat_template.jinja');
  const configFile = path.join(modelDir, 'tokenizer_config.json');
  const config = fs.existsSync(configFile) ? (JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>) : {};
  let text: string | null = null;
  let source = configFile;
  if (fs.existsSync(jinjaFile)) {
    text = fs.readFileSync(jinjaFile, 'utf8');
    source = jinjaFile;
  } else if (typeof config.chat_template === 'string') {
    text = config.chat_template;
  } else if (Array.isArray(config.chat_template)) {
    // Several named templates: transformers uses the one named "default".
    const named = (config.chat_template as { name: string; template: string }[]).find((t) => t.name === 'default');
    text = named?.template ?? null;
  }
  if (text === null) return null;
  let template: Template;
  try {
    template = new Template(text);
  } catch (err) {
    throw new UserError(`${source}: chat template does not parse (${(err as Error).message})`);
  }
  const tokens = { bos_token: specialToken(config.bos_token), eos_token: specialToken(config.eos_token), pad_token: specialToken(config.pad_token), unk_token: specialToken(config.unk_token) };
  return {
    source,
    render(messages, { addGenerationPrompt }) {
      try {
        return template.render({ messages, add_generation_prompt: addGenerationPrompt, ...tokens });
      } catch (err) {
        throw new UserError(`${source}: chat template failed (${(err as Error).message})`);
      }
    },
  };
}
