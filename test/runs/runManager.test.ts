// The run manager in-process, as the app uses it: a queue executed one run at a time in the engine process, events
// streamed to subscribers with an ETA and written to the store in batches, and failures that never take it down.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../shared/runs.js';
import type { TrainJob } from '../../shared/training.js';
import type * as Manager from '../../main/studio/runs/runManager.js';
import type * as Stores from '../../main/store/store.js';
import { ROOT, runCliAsync } from '../support/cli.js';

// The built modules: the engine process is started from dist/main/engine/process/worker.js beside them.
const { RunManager } = (await import(path.join(ROOT, 'dist/main/studio/runs/runManager.js'))) as typeof Manager;
const { Store } = (await import(path.join(ROOT, 'dist/main/store/store.js'))) as typeof Stores;

let root: string;
let job: TrainJob;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-manager-'));
  // The job exactly as `train` builds it from its defaults (the demo model and data).
  const seedHome = path.join(root, 'seed');
  const result = await runCliAsync([
    'train',
    '--steps',
    '1',
    '--device',
    'cpu',
    '--home',
    seedHome,
    '--out',
    path.join(root, 'seed-adapter'),
  ]);
  expect(result.code, result.stderr).toBe(0);
  const store = Store.open(seedHome);
  job = store.run(1)!.job;
  store.close();
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function until(what: string, probe: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the run manager', () => {
  it('executes queued runs one at a time, streams events with an ETA, and survives a run that fails', async () => {
    const store = Store.open(path.join(root, 'queue'));
    const manager = new RunManager(store, { autoStart: true, flushIntervalMs: 100 });
    const events: RunEvent[] = [];
    manager.subscribe((e) => events.push(e));
    const first = manager.enqueue({ ...job, steps: 12, checkpointEvery: 5, outDir: path.join(root, 'first') });
    const broken = manager.enqueue({
      ...job,
      steps: 12,
      dataFile: path.join(root, 'missing.jsonl'),
      outDir: path.join(root, 'broken'),
    });
    const last = manager.enqueue({ ...job, steps: 6, outDir: path.join(root, 'last') });
    await until('the queue to drain', () => store.runs().every((r) => ['completed', 'failed'].includes(r.status)));

    const statuses = events.filter((e) => e.type === 'status').map((e) => `${e.runId}:${e.status}`);
    // The first run starts as it is queued; the others wait for the one before to end.
    expect(statuses).toEqual([
      '1:queued',
      '1:running',
      '2:queued',
      '3:queued',
      '1:completed',
      '2:running',
      '2:failed',
      '3:running',
      '3:completed',
    ]);
    expect(store.run(broken.id)!.error).toMatch(new RegExp(`missing\\.jsonl`));
    expect(store.run(broken.id)!.error).not.toMatch(/\n/);

    const steps = events.flatMap((e) =>
      e.runId === first.id && e.type === 'engine' && e.event.type === 'step'
        ? [{ step: e.event.step, eta: e.etaSeconds }]
        : [],
    );
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const { eta } of steps) expect(eta).toBeGreaterThanOrEqual(0);
    expect(steps.at(-1)!.eta).toBe(0);
    expect(steps[0].eta!).toBeGreaterThan(steps.at(-2)!.eta!);

    // Everything streamed was written: every step, the checkpoints, the dataset and the adapter with its run.
    expect(store.metrics(first.id).map((m) => m.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(store.checkpoints(first.id).map((c) => c.step)).toEqual([5, 10, 12]);
    expect(store.run(first.id)).toMatchObject({ status: 'completed', step: 12, totalSteps: 12, device: 'cpu' });
    expect(store.datasets()[0]).toMatchObject({ location: job.dataFile, format: 'text' });
    expect(store.adapters().map((a) => [a.runId, a.folder])).toEqual([
      [first.id, path.join(root, 'first')],
      [last.id, path.join(root, 'last')],
    ]);
    expect(store.log(first.id).join('\n')).toMatch(/device: cpu/);
    store.close();
  });

  it('pauses a running run with a checkpoint, resumes it, and cancels another', async () => {
    const store = Store.open(path.join(root, 'controls'));
    const manager = new RunManager(store, { autoStart: true, flushIntervalMs: 100 });
    const events: RunEvent[] = [];
    manager.subscribe((e) => events.push(e));
    const run = manager.enqueue({ ...job, steps: 40, checkpointEvery: 100, outDir: path.join(root, 'paused') });
    await until('step 3', () =>
      events.some((e) => e.type === 'engine' && e.event.type === 'step' && e.event.step >= 3),
    );
    manager.pause(run.id);
    await until('the pause', () => store.run(run.id)!.status === 'paused');
    const pausedAt = store.run(run.id)!.step;
    expect(pausedAt).toBeLessThan(40);
    expect(store.checkpoints(run.id).map((c) => c.step)).toEqual([pausedAt]);

    manager.resume(run.id);
    await until('completion', () => store.run(run.id)!.status === 'completed');
    expect(events.some((e) => e.type === 'engine' && e.event.type === 'resumed' && e.event.step === pausedAt)).toBe(
      true,
    );
    expect(store.metrics(run.id).map((m) => m.step)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));

    const doomed = manager.enqueue({ ...job, steps: 400, outDir: path.join(root, 'cancelled') });
    await until('the second run to step', () =>
      events.some((e) => e.runId === doomed.id && e.type === 'engine' && e.event.type === 'step'),
    );
    manager.cancel(doomed.id);
    await until('the cancel', () => store.run(doomed.id)!.status === 'cancelled');
    expect(fs.existsSync(path.join(root, 'cancelled'))).toBe(false);
    expect(() => manager.resume(doomed.id)).toThrow(
      /run 2 is cancelled: only paused, failed, interrupted runs can be resumed/,
    );
    store.close();
  });
});
