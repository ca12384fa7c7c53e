// peft-studio demo as users run it: the built CLI in a real process, a few training steps on the built-in demo.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { lastJson, runCliAsync, type CliResult } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

// Without PEFT_STUDIO_HOME the demo records nothing unless --home is given.
const env = { ...process.env, PEFT_STUDIO_HOME: '' };
const cli = (args: string[]) => runCliAsync(args, { env });

let work: string;
let out: string;
let result: CliResult;

beforeAll(async () => {
  work = tempDir('demo');
  out = path.join(work, 'demo');
  // The default settings, as users run them: the test checks the change they would see.
  result = await cli(['demo', '--out', out, '--device', 'cpu', '--json']);
});

describe('demo', () => {
  it('trains, answers held-out prompts both ways, and exports the adapter', async () => {
    expect(result.code, result.stderr).toBe(0);
    const report = lastJson(result.stdout);
    for (const file of [
      'adapter/adapter_config.json',
      'adapter/adapter_model.safetensors',
      'gguf/adapter.gguf',
      'gguf/Modelfile',
      'data/train.jsonl',
      'data/held-out.jsonl',
    ]) {
      expect(fs.existsSync(path.join(out, file)), file).toBe(true);
    }
    expect(report.adapterDir).toBe(path.join(out, 'adapter'));
    expect(report.comparisons.length).toBeGreaterThan(0);
    for (const c of report.comparisons) {
      expect(c.prompt).toMatch(/^User: .*\nAssistant:$/s);
      expect(typeof c.base).toBe('string');
      expect(typeof c.adapter).toBe('string');
      expect(c.expected.length).toBeGreaterThan(0);
    }
    // The held-out rows were never trained on: a lower loss there is what the adapter learned, not memorised.
    const held = fs.readFileSync(path.join(out, 'data/held-out.jsonl'), 'utf8');
    const train = fs.readFileSync(path.join(out, 'data/train.jsonl'), 'utf8').split('\n');
    expect(held.split('\n').filter((row) => row && train.includes(row))).toEqual([]);
    expect(report.heldOutLoss.adapter).toBeLessThan(report.heldOutLoss.base - 0.5);
  });

  it('answers held-out prompts visibly better with the adapter, and in clean words: every word one it trained on', async () => {
    const report = lastJson(result.stdout);
    const comparisons: { prompt: string; base: string; adapter: string; expected: string }[] = report.comparisons;
    const shown = JSON.stringify(comparisons, null, 2);
    const words = (text: string) => text.toLowerCase().match(/[a-z0-9'-]+/g) ?? [];
    // A garbled answer ("Northwind Cyclesren") makes words no training row has.
    const trained = new Set(words(fs.readFileSync(path.join(out, 'data/train.jsonl'), 'utf8')));
    expect(comparisons).toHaveLength(3);
    for (const c of comparisons) {
      expect(words(c.adapter).length, shown).toBeGreaterThan(3);
      expect(
        words(c.adapter).filter((word) => !trained.has(word)),
        shown,
      ).toEqual([]);
    }
    // Better: the adapter's answer shares far more of the expected answer's words than the base's does (F1 over
    // word counts; the base was never told about the shop).
    const f1 = (answer: string, expected: string) => {
      const counts = new Map<string, number>();
      for (const word of words(expected)) counts.set(word, (counts.get(word) ?? 0) + 1);
      let common = 0;
      for (const word of words(answer)) {
        const left = counts.get(word) ?? 0;
        if (left === 0) continue;
        common++;
        counts.set(word, left - 1);
      }
      return common === 0 ? 0 : (2 * common) / (words(answer).length + words(expected).length);
    };
    const better = comparisons.filter((c) => f1(c.adapter, c.expected) >= f1(c.base, c.expected) + 0.4);
    expect(better.length, shown).toBeGreaterThanOrEqual(2);
    for (const c of comparisons) expect(c.base).not.toMatch(/northwind/i);
  });

  it('prints both answers side by side and what it wrote, and records the run when given a studio folder', async () => {
    const home = path.join(work, 'home');
    const rerun = await cli(['demo', '--out', out, '--steps', '2', '--device', 'cpu', '--home', home]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toContain('base model');
    expect(rerun.stdout).toContain('with the adapter');
    expect(rerun.stdout).toMatch(/held-out loss: base \d+\.\d+, adapter \d+\.\d+/);
    expect(rerun.stdout).toContain(path.join(out, 'gguf', 'Modelfile'));
    const runs = lastJson((await cli(['runs', 'list', '--home', home, '--json'])).stdout);
    expect(runs).toHaveLength(1);
    expect(runs[0].status).toBe('completed');
  });

  it('refuses an --out folder holding other files, before training', async () => {
    const busy = path.join(work, 'busy');
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, 'notes.txt'), 'mine');
    const refused = await cli(['demo', '--out', busy]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/busy: the folder holds other files \(notes\.txt\)/);
  });
});
