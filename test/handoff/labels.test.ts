// The labels TRL computes from a handed-off project equal ours, token by token: chat, alpaca and prompt-completion
// rows (completion-only), the same with every token trained, and packed rows (where TRL's collator masks each packed
// sample's first label, as our packing does). Ours: main/data's prepareDataset; TRL's: SFTTrainer's dataset
// preparation and collator in the venv of test/support/trlEnv.ts (test/handoff/trl_labels.py).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultTrainJob } from '../../shared/trainJob.js';
import type { DataSettings, TrainJob } from '../../shared/training.js';
import { fromDataSettings, prepareDataset } from '../../main/data/dataset.js';
import { IGNORE_INDEX } from '../../main/data/render.js';
import { writeHandoff } from '../../main/handoff/handoff.js';
import { ROOT } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { runInVenv, trlPython } from '../support/trlEnv.js';

const DEMO_MODEL = path.join(ROOT, 'resources/demo/model');

const ROWS: Record<string, unknown[]> = {
  chat: [
    {
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'Where is my order?' },
        { role: 'assistant', content: 'It ships tomorrow.' },
        { role: 'user', content: 'Thanks!' },
        { role: 'assistant', content: 'Happy to help.' },
      ],
    },
    {
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello! How can I help?' },
      ],
    },
    { messages: 'not a list' }, // a bad row, skipped
  ],
  alpaca: [
    { instruction: 'Translate to French', input: 'good morning', output: 'bonjour' },
    { instruction: 'Name a colour', input: '', output: 'Blue.' },
  ],
  'prompt-completion': [
    { prompt: 'The capital of France is', completion: ' Paris.' },
    { prompt: 'Two plus two is', completion: ' four.' },
  ],
};

interface Case {
  name: string;
  rows: string;
  data: Partial<DataSettings>;
  maxSeqLen?: number;
}

const CASES: Case[] = [
  { name: 'chat', rows: 'chat', data: { skipBadRows: true } },
  { name: 'alpaca', rows: 'alpaca', data: {} },
  { name: 'prompt-completion', rows: 'prompt-completion', data: {} },
  { name: 'chat, every token', rows: 'chat', data: { skipBadRows: true, trainOn: 'all' } },
  { name: 'alpaca, packed', rows: 'alpaca', data: { pack: true }, maxSeqLen: 128 }, // both rows in one sequence
];

describe('handoff: TRL computes our labels', () => {
  it('for chat, alpaca and prompt-completion rows, masked, unmasked and packed', async () => {
    trlPython(); // fails here, with the reason, when the venv is missing
    const dir = tempDir('handoff-labels');
    const jobs = new Map<string, TrainJob>();
    for (const c of CASES) {
      const dataFile = path.join(dir, `${c.rows}.jsonl`);
      fs.writeFileSync(dataFile, ROWS[c.rows].map((r) => JSON.stringify(r)).join('\n'));
      const base = defaultTrainJob('lora', { modelDir: DEMO_MODEL, dataFile, outDir: path.join(dir, 'adapter') });
      const job = { ...base, maxSeqLen: c.maxSeqLen ?? 48, data: { ...base.data, ...c.data } };
      const project = path.join(dir, c.name.replace(/[^a-z]+/g, '-'));
      await writeHandoff({ job, run: null }, project);
      jobs.set(project, job);
    }
    const { stdout } = await runInVenv('python', [path.join(ROOT, 'test/handoff/trl_labels.py'), ...jobs.keys()]);
    const trl = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<
      string,
      { input_ids: number[]; labels: number[] }[]
    >;

    for (const [i, [project, job]] of [...jobs].entries()) {
      const ours = await prepareDataset({
        file: job.dataFile,
        modelDir: job.modelDir,
        vocabSize: 768,
        maxSeqLen: job.maxSeqLen,
        ...fromDataSettings(job.data),
        validationFraction: 0,
        seed: job.seed,
      });
      const theirs = trl[project];
      expect(theirs.length, CASES[i].name).toBe(ours.sequences.length);
      let trained = 0;
      ours.sequences.forEach((sequence, s) => {
        expect(theirs[s].input_ids, `${CASES[i].name}, sequence ${s}`).toEqual(Array.from(sequence.inputIds));
        expect(theirs[s].labels, `${CASES[i].name}, sequence ${s}`).toEqual(Array.from(sequence.labels));
        trained += sequence.labels.filter((l) => l !== IGNORE_INDEX).length;
      });
      // Each case trains some tokens and leaves others out (but "every token"), so the mask was really compared.
      const total = ours.sequences.reduce((n, s) => n + s.inputIds.length, 0);
      console.log(
        `handoff labels, ${CASES[i].name}: ${ours.sequences.length} sequences, ${trained}/${total} tokens trained, equal`,
      );
      expect(trained).toBeGreaterThan(0);
      if (job.data.trainOn === 'completion') expect(trained).toBeLessThan(total / 2);
      if (job.data.pack) expect(ours.sequences[0].rows).toHaveLength(2);
    }
  });
});
