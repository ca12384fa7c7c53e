// Rendering against Python transformers: test/fixtures/templates/<name>/expected.json holds, for real tokenizers and
// chat templates, the text apply_chat_template renders, the ids the Rust tokenizer gives, and which tokens are trained
// (make_expected.py there says how each was made). Masks are compared token by token.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { IGNORE_INDEX, SampleRenderer, type RendererOptions } from '../../main/data/render.js';
import type { Sample, SampleRow } from '../../main/data/samples.js';
import { TextTokenizer } from '../../main/data/tokenize.js';
import { loadChatTemplate } from '../../main/model/chatTemplate.js';
import { loadTokenizer, type ModelTokenizer } from '../../main/model/tokenizer.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/templates');

interface ExpectedCase {
  name: string;
  sample: Sample;
  template?: 'none';
  text?: string;
  inputIds?: number[];
  trained?: string;
  error?: 'not-prefix-stable' | 'ignores-add-generation-prompt' | 'template-error';
  message?: string;
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-render-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const tokenizers = new Map<string, ModelTokenizer>();
/** The fixture's tokenizer; llama3-base has only a tokenizer_config.json and borrows llama3's vocabulary. */
function fixtureTokenizer(name: string): ModelTokenizer {
  let tokenizer = tokenizers.get(name);
  if (tokenizer) return tokenizer;
  let dir = path.join(FIXTURES, name);
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    const borrowed = path.join(scratch, name);
    fs.mkdirSync(borrowed);
    fs.symlinkSync(path.join(FIXTURES, 'llama3', 'tokenizer.json'), path.join(borrowed, 'tokenizer.json'));
    fs.copyFileSync(path.join(dir, 'tokenizer_config.json'), path.join(borrowed, 'tokenizer_config.json'));
    dir = borrowed;
  }
  tokenizers.set(name, (tokenizer = loadTokenizer(dir)));
  return tokenizer;
}

function renderer(
  name: string,
  options: RendererOptions = { trainOn: 'completion' },
  withTemplate = true,
): SampleRenderer {
  const dir = path.join(FIXTURES, name);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  return new SampleRenderer(fixtureTokenizer(name), withTemplate ? loadChatTemplate(dir, config) : null, options);
}

function rendered(outcome: ReturnType<SampleRenderer['renderWithText']>) {
  if (outcome.kind !== 'rendered') throw new Error(`expected a rendered sample, got ${JSON.stringify(outcome)}`);
  return outcome.sample;
}

const row = (sample: Sample, rowNumber = 1): SampleRow => ({ row: rowNumber, sample });

/** One line per token, so that a failing mask shows where: "index id trained". */
function tokenLines(ids: ArrayLike<number>, trained: string): string[] {
  return Array.from(ids, (id, i) => `${i} ${id} ${trained[i]}`);
}

describe.each(['llama3', 'llama3-base', 'qwen3', 'smollm2', 'chatml-generation', 'mistral'])(
  '%s: as transformers renders it',
  (name) => {
    const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'expected.json'), 'utf8')) as {
      cases: ExpectedCase[];
    };

    test.each(expected.cases.map((c) => [c.name, c] as const))('%s', (_caseName, c) => {
      const completionOnly = renderer(name, { trainOn: 'completion' }, c.template !== 'none');
      const sourceFile = name === 'mistral' ? 'chat_template.jinja' : 'tokenizer_config.json';
      if (c.error === 'not-prefix-stable') {
        expect(() => completionOnly.render(row(c.sample))).toThrow(UserError);
        expect(() => completionOnly.render(row(c.sample))).toThrow(new RegExp(`${sourceFile}\\) is not prefix-stable`));
        return;
      }
      if (c.error === 'ignores-add-generation-prompt') {
        expect(() => completionOnly.render(row(c.sample))).toThrow(
          /appends the assistant header even without add_generation_prompt/,
        );
        return;
      }
      if (c.error === 'template-error') {
        const outcome = completionOnly.render(row(c.sample, 7));
        expect(outcome).toEqual({
          kind: 'bad',
          bad: { row: 7, reason: expect.stringContaining(`refused this row: ${c.message}`) },
        });
        return;
      }

      const sample = rendered(completionOnly.renderWithText(row(c.sample)));
      expect(sample.text).toBe(c.text);
      expect(Array.from(sample.inputIds)).toEqual(c.inputIds);
      const trained = Array.from(sample.labels, (label) => (label === IGNORE_INDEX ? '0' : '1')).join('');
      expect(tokenLines(sample.inputIds, trained)).toEqual(tokenLines(sample.inputIds, c.trained!));
      sample.labels.forEach((label, i) => label !== IGNORE_INDEX && expect(label).toBe(sample.inputIds[i]));
      // The fast path (no text kept) gives the same ids and labels.
      expect(completionOnly.render(row(c.sample))).toEqual({
        kind: 'rendered',
        sample: { row: 1, inputIds: sample.inputIds, labels: sample.labels },
      });

      const all = renderer(name, { trainOn: 'all' }, c.template !== 'none').render(row(c.sample));
      expect(all).toEqual({ kind: 'rendered', sample: { row: 1, inputIds: sample.inputIds, labels: sample.inputIds } });
    });
  },
);

describe('chat rendering', () => {
  const chat = (...turns: [string, string][]): Sample => ({
    kind: 'chat',
    messages: turns.map(([role, content]) => ({ role: role as 'user', content })),
  });

  test('a chat sample without a chat template is a UserError naming the folder', () => {
    const plain = renderer('smollm2', { trainOn: 'completion' }, false);
    expect(() => plain.render(row(chat(['user', 'Hi'], ['assistant', 'Hello'])))).toThrow(
      /row 1: chat samples need the model's chat template, and .*smollm2 has none/,
    );
  });

  test('a conversation without an assistant message is a bad row unless every token is trained', () => {
    const sample = chat(['user', 'Hi']);
    expect(renderer('smollm2').render(row(sample, 3))).toEqual({
      kind: 'bad',
      bad: { row: 3, reason: 'no assistant message to train on' },
    });
    expect(renderer('smollm2', { trainOn: 'all' }).render(row(sample)).kind).toBe('rendered');
  });

  test('blank samples are empty, not bad', () => {
    const r = renderer('qwen3');
    expect(r.render(row(chat(['user', ' '], ['assistant', '\n']), 4))).toEqual({ kind: 'empty', row: 4 });
    expect(r.render(row({ kind: 'text', text: '' }, 5))).toEqual({ kind: 'empty', row: 5 });
    expect(r.render(row({ kind: 'tokens', inputIds: [], labels: null }, 6))).toEqual({ kind: 'empty', row: 6 });
  });

  test("decomposed Unicode is normalized as Qwen's NFC normalizer would: same ids, spans still line up", () => {
    const r = renderer('qwen3');
    const composed = rendered(r.renderWithText(row(chat(['user', 'caf\u00e9?'], ['assistant', 'Un caf\u00e9.']))));
    const decomposed = rendered(r.renderWithText(row(chat(['user', 'cafe\u0301?'], ['assistant', 'Un cafe\u0301.']))));
    expect(Array.from(decomposed.inputIds)).toEqual(Array.from(composed.inputIds));
    expect(Array.from(decomposed.labels)).toEqual(Array.from(composed.labels));
  });

  test("the renderer's fixed clock is the template's strftime_now", () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'clock-'));
    fs.writeFileSync(
      path.join(dir, 'chat_template.jinja'),
      "{{ 'Today: ' + strftime_now('%d %b %Y (%A)') + '\\n' }}{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}",
    );
    const template = loadChatTemplate(dir, {});
    const r = new SampleRenderer(fixtureTokenizer('smollm2'), template, {
      trainOn: 'completion',
      now: new Date(2026, 2, 5, 12),
    });
    const sample = rendered(r.renderWithText(row(chat(['user', 'Hi'], ['assistant', 'Hello']))));
    expect(sample.text).toBe('Today: 05 Mar 2026 (Thursday)\nuser: Hi\nassistant: Hello\n');
  });
});

describe('pre-tokenized samples', () => {
  const r = renderer('smollm2', { trainOn: 'completion', vocabSize: 512 });

  test('pass through; labels default to input_ids, -100 kept; trainOn all trains every id', () => {
    expect(r.render(row({ kind: 'tokens', inputIds: [5, 6, 7], labels: null }))).toEqual({
      kind: 'rendered',
      sample: { row: 1, inputIds: Int32Array.of(5, 6, 7), labels: Int32Array.of(5, 6, 7) },
    });
    const labeled: Sample = { kind: 'tokens', inputIds: [5, 6, 7], labels: [-100, 6, 7] };
    expect(r.render(row(labeled))).toMatchObject({ sample: { labels: Int32Array.of(-100, 6, 7) } });
    expect(renderer('smollm2', { trainOn: 'all' }).render(row(labeled))).toMatchObject({
      sample: { labels: Int32Array.of(5, 6, 7) },
    });
  });

  test('ids outside the vocabulary and mismatched labels are bad rows', () => {
    expect(r.render(row({ kind: 'tokens', inputIds: [5, 512], labels: null }, 9))).toEqual({
      kind: 'bad',
      bad: { row: 9, reason: '"input_ids"[1] is 512, outside the model\'s vocabulary of 512 (ids 0..511)' },
    });
    expect(r.render(row({ kind: 'tokens', inputIds: [5, 6], labels: [5] }, 9))).toMatchObject({
      kind: 'bad',
      bad: { reason: '"labels" has 1 entries, "input_ids" has 2; they must match' },
    });
    expect(r.render(row({ kind: 'tokens', inputIds: [5, 6], labels: [5, -1] }, 9))).toMatchObject({
      kind: 'bad',
      bad: { reason: '"labels"[1] is -1: expected a token id or -100' },
    });
  });
});

describe('token spans', () => {
  test('each token covers its own text; a character split over byte tokens belongs to each of them', () => {
    const text = new TextTokenizer(fixtureTokenizer('llama3'));
    const source = 'Hi 😀 naïve\n\n  end';
    const { ids, starts, ends } = text.encodeWithSpans(source, true);
    expect(starts[0]).toBe(ends[0]); // the BOS the post-processor added
    for (let t = 1; t < ids.length; t++) {
      expect(starts[t]).toBeLessThan(ends[t]);
      expect(starts[t]).toBeGreaterThanOrEqual(starts[t - 1]);
    }
    expect(ends[ids.length - 1]).toBe(source.length);
    const covered = new Set<number>();
    for (let t = 0; t < ids.length; t++) for (let c = starts[t]; c < ends[t]; c++) covered.add(c);
    expect(covered.size).toBe(source.length);
  });

  test('a tokenizer that rewrites text (here: lowercases it) cannot give spans: a UserError naming its file', () => {
    const dir = path.join(scratch, 'lowercase');
    fs.mkdirSync(dir);
    const json = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'smollm2', 'tokenizer.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...json, normalizer: { type: 'Lowercase' } }));
    const text = new TextTokenizer(loadTokenizer(dir));
    expect(() => text.encodeWithSpans('Hello', false)).toThrow(
      /lowercase.tokenizer\.json: cannot line the tokens up with the text at character 0 .*train on all tokens instead/,
    );
    expect(text.encodeWithSpans('hello', false).ends.at(-1)).toBe(5);
  });
});
