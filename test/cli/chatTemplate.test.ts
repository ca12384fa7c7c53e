// --chat-template FILE (the Data step's "A Jinja template file of my own"): chat rows render through the file instead
// of the model's template, the adapter keeps a copy, and the playground, merge and exports talk to it that way.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../main/model/tokenizer.js';
import { lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

const cli = (...args: string[]) => runCliAsync(args);

// A plain "### role" format a base model without a chat template might be taught.
const TEMPLATE =
  "{% for m in messages %}{{ '### ' + m['role'] + '\\n' + m['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '### assistant\\n' }}{% endif %}";

let work: string;
let model: string;
let data: string;
let template: string;

beforeAll(async () => {
  work = tempDir('chat-template');
  model = path.join(work, 'model');
  expect((await cli('create-tiny-model', model)).code).toBe(0);
  data = path.join(work, 'chat.jsonl');
  const chat = (user: string, assistant: string) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: user },
        { role: 'assistant', content: assistant },
      ],
    });
  fs.writeFileSync(data, [chat('Hi', 'Hello.'), chat('Open?', 'Until six.'), chat('Price?', 'Ten.')].join('\n') + '\n');
  template = path.join(work, 'mine.jinja');
  fs.writeFileSync(template, TEMPLATE);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('--chat-template FILE', () => {
  it('renders chat rows through the file instead of the model template, and trains the answers only', async () => {
    type Facts = {
      stats: { trainedTokens: number; tokens: number };
      previews: { tokens: { text: string; trained: boolean }[] }[];
    };
    const firstRow = (facts: Facts) => facts.previews[0].tokens.map((t) => t.text).join('');
    const own = await cli('data', 'inspect', data, '--model', model, '--json');
    expect(own.code, own.stderr).toBe(0);
    expect(firstRow(lastJson(own.stdout) as Facts)).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n',
    );

    const mine = await cli('data', 'inspect', data, '--model', model, '--chat-template', template, '--json');
    expect(mine.code, mine.stderr).toBe(0);
    const facts = lastJson(mine.stdout) as Facts;
    expect(firstRow(facts)).toBe('### user\nHi\n### assistant\nHello.\n');
    const trained = facts.previews[0].tokens
      .filter((t) => t.trained)
      .map((t) => t.text)
      .join('');
    expect(trained).toBe('Hello.\n');
    expect(facts.stats.trainedTokens).toBeGreaterThan(0);
    expect(facts.stats.trainedTokens).toBeLessThan(facts.stats.tokens);
  });

  it('is part of the job; the adapter keeps the template, and generate talks to it that way', async () => {
    const out = path.join(work, 'adapter');
    const dry = await cli(
      'train',
      '--model',
      model,
      '--data',
      data,
      '--out',
      out,
      '--chat-template',
      template,
      '--dry-run',
      '--json',
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(lastJson(dry.stdout)).toMatchObject({ data: { chatTemplate: template } });

    const trained = await cli(
      'train',
      '--model',
      model,
      '--data',
      data,
      '--out',
      out,
      '--chat-template',
      template,
      '--steps',
      '3',
      '--batch-size',
      '2',
    );
    expect(trained.code, trained.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'chat_template.jinja'), 'utf8')).toBe(TEMPLATE);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'peft-studio-manifest.json'), 'utf8'));
    expect(manifest.files.map((f: { path: string }) => f.path)).toContain('chat_template.jinja');

    const messages = path.join(work, 'ask.json');
    fs.writeFileSync(messages, JSON.stringify([{ role: 'user', content: 'Open?' }]));
    const ask = (...flags: string[]) =>
      cli(
        'generate',
        '--model',
        model,
        '--adapter',
        out,
        '--messages',
        messages,
        '--max-new-tokens',
        '2',
        '--json',
        ...flags,
      );
    const tokenizer = loadTokenizer(model);
    const asTemplate = tokenizer.encode('### user\nOpen?\n### assistant\n', { addSpecialTokens: false }).length;
    const asModel = tokenizer.encode('<|im_start|>user\nOpen?<|im_end|>\n<|im_start|>assistant\n', {
      addSpecialTokens: false,
    }).length;
    expect(asTemplate).not.toBe(asModel);
    const adapted = await ask();
    expect(adapted.code, adapted.stderr).toBe(0);
    expect(lastJson(adapted.stdout)).toMatchObject({ promptTokens: asTemplate });
    // As the base model, the model's own template.
    const base = await ask('--base');
    expect(lastJson(base.stdout)).toMatchObject({ promptTokens: asModel });

    // A merged model brings the template with it (transformers reads chat_template.jinja first).
    const merged = path.join(work, 'merged');
    const merge = await cli('merge', '--model', model, '--adapter', out, '--out', merged);
    expect(merge.code, merge.stderr).toBe(0);
    expect(fs.readFileSync(path.join(merged, 'chat_template.jinja'), 'utf8')).toBe(TEMPLATE);
  });

  it('a file that is not there is refused in one line', async () => {
    const missing = path.join(work, 'nope.jinja');
    const result = await cli('data', 'inspect', data, '--model', model, '--chat-template', missing);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim()).toBe(
      `peft-studio data: error: ${missing}: cannot read the chat template (no such file)`,
    );
  });
});
