// The pure rules behind run names and the dashboard's ETA (shared/runs.ts).
import { describe, expect, it } from 'vitest';
import { defaultRunName, etaSeconds, normalizeRunName, paceAnchor, runNameProblem } from '../../shared/runs.js';

describe('run names', () => {
  it('derive a readable default from the model folder, the data file and the local date', () => {
    const at = new Date(2026, 11, 1, 9, 5);
    expect(defaultRunName({ modelDir: '/models/SmolLM2-135M/', dataFile: 'C:\\data\\support.csv' }, at)).toBe(
      'SmolLM2-135M on support.csv, 2026-12-01 09:05',
    );
    // A Hugging Face cache snapshot is named by its repository, not its commit hash.
    const snapshot =
      '/home/u/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/7ae557604adf67be50417f59c2c2f167def9a775';
    expect(defaultRunName({ modelDir: snapshot, dataFile: '/d/alpaca.jsonl' }, at)).toBe(
      'Qwen2.5-0.5B-Instruct on alpaca.jsonl, 2026-12-01 09:05',
    );
    const long = defaultRunName({ modelDir: `/m/${'a'.repeat(200)}`, dataFile: '/d.csv' }, at);
    expect(long).toHaveLength(120);
    expect(runNameProblem(long)).toBeNull();
  });

  it('keep a name on one line and say in words why one cannot be used', () => {
    expect(normalizeRunName('  lr 1e-3\n\trank 8 ')).toBe('lr 1e-3 rank 8');
    expect(runNameProblem('support bot')).toBeNull();
    expect(runNameProblem(' \n ')).toBe('a run name cannot be empty');
    expect(runNameProblem('x'.repeat(121))).toBe('a run name must be at most 120 characters');
    expect(runNameProblem('a\u0000b')).toBe('a run name cannot contain control characters');
  });
});

describe('the ETA', () => {
  it('times a run that started at step 0 from its start', () => {
    const anchor = paceAnchor(0, { step: 1, elapsedSeconds: 2 });
    expect(etaSeconds(anchor, { step: 1, totalSteps: 11, elapsedSeconds: 2 })).toBe(20);
    expect(etaSeconds(anchor, { step: 5, totalSteps: 11, elapsedSeconds: 10 })).toBe(12);
    expect(etaSeconds(anchor, { step: 11, totalSteps: 11, elapsedSeconds: 22 })).toBe(0);
  });

  it('uses only the pace since the last resume, not the time of the sessions before it', () => {
    // 100 steps took 1000 s before a pause (10 s a step, on another device); after the resume a step takes 1 s. The
    // engine's elapsed seconds go on from 1000.
    const resumedAt = 100;
    const first = { step: 101, totalSteps: 200, elapsedSeconds: 1001 };
    const anchor = paceAnchor(resumedAt, first);
    // One step since the resume cannot be timed apart from the session's start: no guess.
    expect(etaSeconds(anchor, first)).toBeNull();
    const eta = etaSeconds(anchor, { step: 111, totalSteps: 200, elapsedSeconds: 1011 });
    expect(eta).toBe(89);
    // Timed since the run's start instead, the same moment would say about 9 times as long.
    expect((1011 / 111) * 89).toBeGreaterThan(8 * eta!);
  });
});
