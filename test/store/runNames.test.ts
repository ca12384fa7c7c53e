// Run names in the studio database: given at creation or derived from the model, data and date, changed by rename,
// checked in words, and "Run <id>" for runs recorded before names existed (migration 7).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UserError } from '../../shared/errors.js';
import type { TrainJob } from '../../shared/training.js';
import { openDatabase } from '../../main/store/database.js';
import { MIGRATIONS } from '../../main/store/migrations.js';
import { Store } from '../../main/store/store.js';

const homes: string[] = [];
function tempHome(): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-names-'));
  homes.push(home);
  return home;
}
afterEach(() => {
  for (const home of homes.splice(0)) fs.rmSync(home, { recursive: true, force: true });
});

// Enough of a job for the store, which keeps it as JSON.
const job = {
  method: 'lora',
  modelDir: '/models/SmolLM2-135M-Instruct',
  dataFile: '/data/support.csv',
  outDir: '/out/a',
} as unknown as TrainJob;

function storeWithModel(): Store {
  const store = Store.open(tempHome());
  store.addModel({
    source: 'local',
    location: job.modelDir,
    revision: null,
    folder: job.modelDir,
    architecture: 'llama',
    parameters: 1,
    dtype: 'f32',
    sizeBytes: 1,
  });
  return store;
}

describe('run names', () => {
  it('name a new run after its model, its data and when it was created, unless it is given one', () => {
    const store = storeWithModel();
    const named = store.createRun(job, 1, null);
    expect(named.name).toMatch(/^SmolLM2-135M-Instruct on support\.csv, \d{4}-\d\d-\d\d \d\d:\d\d$/);
    const given = store.createRun(job, 1, null, '  rank 8,\n lr 1e-3  ');
    expect(given.name).toBe('rank 8, lr 1e-3');
    expect(store.runs().map((r) => r.name)).toEqual([named.name, 'rank 8, lr 1e-3']);
    store.close();
  });

  it('rename a run, refuse a name that cannot be one in words, and leave the old name in place', () => {
    const store = storeWithModel();
    const run = store.createRun(job, 1, null, 'first try');
    expect(store.renameRun(run.id, 'support bot v2').name).toBe('support bot v2');
    expect(store.run(run.id)!.name).toBe('support bot v2');
    expect(() => store.renameRun(run.id, '   ')).toThrow(new UserError('a run name cannot be empty (given "   ")'));
    expect(() => store.renameRun(run.id, 'x'.repeat(121))).toThrow(/at most 120 characters/);
    expect(() => store.renameRun(run.id, 'bell\u0007')).toThrow(/cannot contain control characters/);
    expect(() => store.renameRun(99, 'nobody')).toThrow(new UserError('run 99: no such run'));
    expect(store.run(run.id)!.name).toBe('support bot v2');
    store.close();
  });

  it('call the runs of a database from before names existed by their id', () => {
    const home = tempHome();
    // Every migration before the one that names runs.
    const old = openDatabase(home, { upTo: MIGRATIONS.findIndex((m) => m.includes('ADD COLUMN name')) });
    old
      .prepare(
        `INSERT INTO models (source, location, folder, architecture, parameters, dtype, size_bytes, added_at)
         VALUES ('local', '/m', '/m', 'llama', 1, 'f32', 1, '2026-01-01T00:00:00Z')`,
      )
      .run();
    const insert = old.prepare(
      `INSERT INTO runs (id, method, model_id, job, status, created_at, run_dir)
       VALUES (?, 'lora', 1, ?, 'completed', '2026-01-01T00:00:00Z', '/home/runs')`,
    );
    insert.run(1, JSON.stringify(job));
    insert.run(7, JSON.stringify(job));
    old.close();
    const store = Store.open(home);
    expect(store.runs().map((r) => r.name)).toEqual(['Run 1', 'Run 7']);
    store.close();
  });
});
