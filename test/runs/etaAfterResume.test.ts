// The ETA of a resumed run through the run manager and a real engine process: measured from the first step after the
// resume, never from the engine's elapsed time, which goes on counting the sessions before the pause.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../shared/runs.js';
import type * as Manager from '../../main/studio/runs/runManager.js';
import type * as Stores from '../../main/store/store.js';
import { demoJob } from '../api/jobs.js';
import { ROOT } from '../support/cli.js';

const { RunManager } = (await import(path.join(ROOT, 'dist/main/studio/runs/runManager.js'))) as typeof Manager;
const { Store } = (await import(path.join(ROOT, 'dist/main/store/store.js'))) as typeof Stores;

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-eta-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function until(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the ETA of a resumed run', () => {
  it('starts again from the pace after the resume', async () => {
    const store = Store.open(path.join(root, 'home'));
    const manager = new RunManager(store, { autoStart: true, flushIntervalMs: 100 });
    const steps: { step: number; eta: number | null; elapsed: number; session: number }[] = [];
    let session = 0;
    manager.subscribe((e: RunEvent) => {
      if (e.type === 'status' && e.status === 'running') session++;
      if (e.type === 'engine' && e.event.type === 'step')
        steps.push({ step: e.event.step, eta: e.etaSeconds, elapsed: e.event.elapsedSeconds, session });
    });
    const job = { ...demoJob(path.join(root, 'adapter'), 30), checkpointEvery: 100, evalSplit: 0, evalEvery: 0 };
    const run = manager.enqueue(job);
    await until('a few steps', () => steps.length >= 4);
    manager.pause(run.id);
    await until('the pause', () => store.run(run.id)!.status === 'paused');
    const pausedAt = store.run(run.id)!.step;
    // Paused for a while: no part of it may count in the pace after the resume.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    manager.resume(run.id);
    await until('the run to complete', () => store.run(run.id)!.status === 'completed');
    await manager.close();
    store.close();

    const first = steps.filter((s) => s.session === 1);
    const second = steps.filter((s) => s.session === 2);
    expect(first[0]).toMatchObject({ step: 1, eta: expect.any(Number) });
    expect(second[0].step).toBe(pausedAt + 1);
    // The engine's clock goes on from the steps before the pause...
    expect(second[0].elapsed).toBeGreaterThan(first.at(-1)!.elapsed);
    // ...but one step after a resume is no pace yet, and later ones are timed from it.
    expect(second[0].eta).toBeNull();
    for (const s of second.slice(1)) {
      const perStep = (s.elapsed - second[0].elapsed) / (s.step - second[0].step);
      expect(s.eta).toBeCloseTo(perStep * (30 - s.step), 6);
    }
    expect(second.at(-1)!.eta).toBe(0);
  });
});
