// Chat templates as transformers renders them: test/fixtures/templates/<name>/expected.json holds the text
// apply_chat_template gives for each conversation (make_expected.py there says how); the generation prompts below are
// what the playground sent before the template left main/data/render.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import type { Sample } from '../../main/data/samples.js';
import { CompiledChatTemplate, holdsGenerationMarker, loadChatTemplate } from '../../main/model/chatTemplate.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/templates');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-template-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function fixtureTemplate(name: string, now = new Date()): CompiledChatTemplate {
  const dir = path.join(FIXTURES, name);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  return new CompiledChatTemplate(loadChatTemplate(dir, config)!, config, now);
}

/** A template of its own in a folder of its own, with no special tokens. */
function templateOf(text: string, now = new Date()): CompiledChatTemplate {
  const dir = fs.mkdtempSync(path.join(scratch, 'template-'));
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), text);
  return new CompiledChatTemplate(loadChatTemplate(dir, {})!, {}, now);
}

describe.each(['llama3', 'qwen3', 'smollm2', 'chatml-generation', 'mistral'])(
  '%s: the text transformers renders',
  (name) => {
    const { cases } = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'expected.json'), 'utf8')) as {
      cases: { name: string; sample: Sample; template?: 'none'; text?: string }[];
    };
    // Conversations only: a completion sample is rendered as [user: prompt, assistant: completion] when there is a
    // template.
    const conversations = cases.flatMap((c): [string, ChatMessage[], string][] => {
      if (c.text === undefined || c.template === 'none') return [];
      if (c.sample.kind === 'chat') return [[c.name, c.sample.messages, c.text]];
      if (c.sample.kind === 'completion')
        return [
          [
            c.name,
            [
              { role: 'user', content: c.sample.prompt },
              { role: 'assistant', content: c.sample.completion },
            ],
            c.text,
          ],
        ];
      return [];
    });

    test.each(conversations)('%s', (_caseName, messages, text) => {
      const template = fixtureTemplate(name);
      expect(template.render(messages, false)).toBe(text);
      if (template.marksGenerations) expect(template.renderGenerations(messages).text).toBe(text);
    });
  },
);

describe('the generation prompt', () => {
  const conversation: ChatMessage[] = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Date?' },
  ];

  test('ends with the assistant header, as the playground sends it', () => {
    expect(fixtureTemplate('smollm2').generationPrompt(conversation)).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nDate?<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(fixtureTemplate('llama3').generationPrompt(conversation)).toBe(
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nDate?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(fixtureTemplate('chatml-generation').generationPrompt(conversation)).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n\nHello.<|im_end|>\n\n<|im_start|>user\nDate?<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test("a conversation the template's raise_exception refuses is a UserError naming the template's file", () => {
    const refused = () =>
      fixtureTemplate('mistral').generationPrompt([{ role: 'system', content: 'Be brief.' }, ...conversation]);
    expect(refused).toThrow(UserError);
    expect(refused).toThrow(
      `${path.join(FIXTURES, 'mistral', 'chat_template.jinja')}: Conversation roles must alternate user/assistant/user/assistant/...`,
    );
  });
});

describe('templates', () => {
  const chat = (content: string): ChatMessage[] => [{ role: 'user', content }];

  test('strftime_now prints the given clock in English, as Python does', () => {
    const template = templateOf("{{ 'Today: ' + strftime_now('%d %b %Y (%A) %H:%M') }}", new Date(2026, 2, 5, 12, 7));
    expect(template.render(chat('Hi'), false)).toBe('Today: 05 Mar 2026 (Thursday) 12:07');
  });

  test('chat_template.jinja wins over tokenizer_config.json; a list of templates uses "default"; a bad template is a UserError', () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'template-'));
    expect(loadChatTemplate(dir, { chat_template: 'A' })).toEqual({
      source: path.join(dir, 'tokenizer_config.json'),
      text: 'A',
    });
    expect(
      loadChatTemplate(dir, {
        chat_template: [
          { name: 'tool_use', template: 'T' },
          { name: 'default', template: 'D' },
        ],
      })?.text,
    ).toBe('D');
    expect(() => loadChatTemplate(dir, { chat_template: [{ name: 'tool_use', template: 'T' }] })).toThrow(
      /none named "default"/,
    );
    expect(loadChatTemplate(dir, {})).toBeNull();
    fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}');
    const template = loadChatTemplate(dir, { chat_template: 'A' });
    expect(template?.source).toBe(path.join(dir, 'chat_template.jinja'));
    expect(() => new CompiledChatTemplate(template!, {}, new Date())).toThrow(
      /chat_template\.jinja: the chat template does not parse/,
    );
  });

  test("str.strip / lstrip / rstrip take Python's characters argument (Qwen3's template needs it)", () => {
    const template = templateOf(
      "{{ '\\n\\n  ab \\n'.strip('\\n') + '|' + 'xxaxx'.lstrip('x') + '|' + 'xxaxx'.rstrip('x') + '|' + '  a  '.strip() + '|' + 'ba'.strip('ab') + '|' }}" +
        '{% for m in messages %}{{ m.content }}{% endfor %}',
    );
    expect(template.render(chat('Hi'), false)).toBe('  ab |axx|xxa|a||Hi');
  });

  test('the special tokens come from tokenizer_config.json, as strings or AddedToken objects', () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'template-'));
    const config = {
      chat_template: '{{ bos_token }}{{ messages[0].content }}{{ eos_token }}',
      bos_token: '<s>',
      eos_token: { content: '</s>' },
    };
    expect(new CompiledChatTemplate(loadChatTemplate(dir, config)!, config, new Date()).render(chat('Hi'), false)).toBe(
      '<s>Hi</s>',
    );
  });

  test("a message holding a generation block's marker is told apart", () => {
    expect(holdsGenerationMarker(chat('a \uFDD1 b'))).toBe(true);
    expect(holdsGenerationMarker(chat('plain'))).toBe(false);
  });
});
