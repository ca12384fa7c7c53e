// The taskbar/dock progress bar and the end-of-run notification, decided from the studio's events.
import { describe, expect, it } from 'vitest';
import type { StudioEvent } from '../../shared/api.js';
import type { RunStatus } from '../../shared/runs.js';
import {
  PROGRESS_HIDDEN,
  PROGRESS_INDETERMINATE,
  progressBarValue,
  runNotification,
} from '../../main/electron/runSignals.js';

const status = (s: RunStatus, error: string | null = null): StudioEvent => ({
  kind: 'run',
  event: { runId: 7, type: 'status', status: s, error },
});
const step = (n: number, total: number): StudioEvent => ({
  kind: 'run',
  event: {
    runId: 7,
    type: 'engine',
    etaSeconds: 12,
    event: {
      type: 'step',
      step: n,
      totalSteps: total,
      loss: 2,
      learningRate: 1e-3,
      gradNorm: 1,
      tokens: 512,
      tokensPerSecond: 900,
      elapsedSeconds: 3,
      memoryBytes: 1e8,
    },
  },
});

describe('progress bar', () => {
  it('follows the steps of a run and goes away when the run stops', () => {
    expect(progressBarValue(status('queued'))).toBe(PROGRESS_INDETERMINATE);
    expect(progressBarValue(status('running'))).toBe(PROGRESS_INDETERMINATE);
    expect(progressBarValue(step(25, 100))).toBe(0.25);
    expect(progressBarValue(step(100, 100))).toBe(1);
    for (const s of ['completed', 'failed', 'paused', 'cancelled', 'interrupted'] as const)
      expect(progressBarValue(status(s)), s).toBe(PROGRESS_HIDDEN);
  });

  it('ignores everything that is not a step or a status', () => {
    expect(
      progressBarValue({
        kind: 'run',
        event: { runId: 7, type: 'engine', etaSeconds: null, event: { type: 'log', message: 'hi' } },
      }),
    ).toBeNull();
    expect(progressBarValue({ kind: 'playground.token', requestId: 'r', tokenId: 1, text: 'a' })).toBeNull();
    expect(progressBarValue(step(0, 0))).toBeNull();
  });
});

describe('notification', () => {
  it('says when a run completed or failed, with the reason', () => {
    expect(runNotification(status('completed'))).toEqual({
      title: 'Run 7 finished',
      body: expect.stringContaining('adapter is ready'),
    });
    expect(runNotification(status('failed', 'out of memory at step 12'))).toEqual({
      title: 'Run 7 failed',
      body: expect.stringContaining('out of memory at step 12'),
    });
  });

  it('stays quiet for what the user did themselves and for progress', () => {
    for (const s of ['queued', 'running', 'paused', 'cancelled', 'interrupted'] as const)
      expect(runNotification(status(s)), s).toBeNull();
    expect(runNotification(step(3, 10))).toBeNull();
  });
});
