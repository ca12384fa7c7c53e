import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import type { TokenPreview } from '../../shared/data.js';
import { formatPreview, previewSample } from '../../main/data/preview.js';
import { IGNORE_INDEX, SampleRenderer } from '../../main/data/render.js';
import type { Sample } from '../../main/data/samples.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/templates');
const qwen3 = SampleRenderer.forModel(path.join(FIXTURES, 'qwen3'), { trainOn: 'completion' });
const llama3 = SampleRenderer.forModel(path.join(FIXTURES, 'llama3'), { trainOn: 'completion' });

function preview(renderer: SampleRenderer, sample: Sample): TokenPreview {
  const outcome = previewSample(renderer, { row: 1, sample });
  if (outcome.kind !== 'preview') throw new Error(`no preview: ${JSON.stringify(outcome)}`);
  return outcome.preview;
}

describe('previewSample', () => {
  const chat: Sample = {
    kind: 'chat',
    messages: [
      { role: 'user', content: 'Hi 😀  there' },
      { role: 'assistant', content: 'Hello, naïve one!' },
    ],
  };

  test('chat: the pieces join into the rendered text; trained and special flags follow the labels and added tokens', () => {
    const { tokens } = preview(qwen3, chat);
    const outcome = qwen3.renderWithText({ row: 1, sample: chat });
    if (outcome.kind !== 'rendered') throw new Error('not rendered');
    expect(tokens.map((t) => t.text).join('')).toBe(outcome.sample.text);
    expect(tokens.map((t) => t.id)).toEqual(Array.from(outcome.sample.inputIds));
    expect(tokens.map((t) => t.trained)).toEqual(Array.from(outcome.sample.labels, (l) => l !== IGNORE_INDEX));
    expect(tokens.filter((t) => t.special).map((t) => t.text)).toEqual([
      '<|im_start|>',
      '<|im_end|>',
      '<|im_start|>',
      '<think>',
      '</think>',
      '<|im_end|>',
    ]);
    expect(
      tokens
        .filter((t) => t.trained)
        .map((t) => t.text)
        .join(''),
    ).toBe('<think>\n\n</think>\n\nHello, naïve one!<|im_end|>\n');
  });

  test('text: the BOS the tokenizer adds and the EOS appended show their token strings', () => {
    const { tokens } = preview(llama3, { kind: 'text', text: 'Hi 😀 there' });
    expect(tokens[0]).toEqual({ id: 128000, text: '<|begin_of_text|>', trained: true, special: true });
    expect(tokens[tokens.length - 1]).toMatchObject({ text: '<|eot_id|>', special: true });
    expect(
      tokens
        .slice(1, -1)
        .map((t) => t.text)
        .join(''),
    ).toBe('Hi 😀 there');
  });

  test('pre-tokenized: a character split over byte tokens shows on the token that completes it', () => {
    const ids = llama3.textTokenizer.encode(' 🪿', false);
    expect(ids.length).toBeGreaterThan(1); // the emoji is split over byte tokens
    const { tokens } = preview(llama3, { kind: 'tokens', inputIds: ids, labels: null });
    expect(tokens.map((t) => t.text).join('')).toBe(' 🪿');
    expect(tokens[tokens.length - 1].text).toBe('🪿');
  });

  test('a long row shows its first tokens and counts the others', () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(400);
    const all = preview(llama3, { kind: 'text', text });
    const outcome = previewSample(llama3, { row: 1, sample: { kind: 'text', text } }, 100);
    if (outcome.kind !== 'preview') throw new Error('no preview');
    const { tokens, hiddenTokens } = outcome.preview;
    expect(tokens).toEqual(all.tokens.slice(0, 100));
    expect(hiddenTokens).toBe(all.tokens.length + all.hiddenTokens - 100);
    expect(all.tokens).toHaveLength(512);
    expect(all.hiddenTokens).toBeGreaterThan(3000);
  });

  test('an empty or bad row has no preview', () => {
    expect(previewSample(qwen3, { row: 4, sample: { kind: 'text', text: ' ' } })).toEqual({ kind: 'empty', row: 4 });
    expect(
      previewSample(qwen3, { row: 5, sample: { kind: 'chat', messages: [{ role: 'user', content: 'Hi' }] } }),
    ).toMatchObject({ kind: 'bad' });
  });
});

describe('formatPreview', () => {
  const tokens = (...spec: [string, boolean][]): TokenPreview => ({
    row: 1,
    tokens: spec.map(([text, trained], id) => ({ id, text, trained, special: false })),
    hiddenTokens: 0,
  });
  const sample = tokens(
    ['User: ', false],
    ['Hi', false],
    ['\n', false],
    ['Hel', true],
    ['lo', true],
    ['.', false],
    ['!', true],
  );

  test('without color, trained stretches are wrapped in [[ ]]; boundaries put | between tokens', () => {
    expect(formatPreview(sample, { color: false })).toBe('User: Hi\n[[Hello]].[[!]]');
    expect(formatPreview(sample, { color: false, boundaries: true })).toBe('User: |Hi|\n|[[Hel|lo]]|.|[[!]]');
  });

  test('a cut preview says how many tokens it leaves out', () => {
    expect(formatPreview({ ...tokens(['a', false], ['b', true]), hiddenTokens: 7 }, { color: false })).toBe(
      'a[[b]] … (7 more tokens)',
    );
  });

  test('with color, trained tokens are green (every other one bold) and the rest dim', () => {
    expect(formatPreview(tokens(['a', false], ['b', true], ['c', true]), { color: true })).toBe(
      '\x1b[2ma\x1b[0m\x1b[1;32mb\x1b[0m\x1b[32mc\x1b[0m',
    );
  });
});
