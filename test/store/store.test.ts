// The studio database on a real SQLite file: migrations from every earlier schema, storage errors, and chart
// queries over a long run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DatasetStats } from '../../shared/data.js';
import { UserError } from '../../shared/errors.js';
import type { TrainJob } from '../../shared/training.js';
import { openDatabase, type SqliteDatabase } from '../../main/store/database.js';
import { MIGRATIONS } from '../../main/store/migrations.js';
import { LOOKUP_SQL, LOSS_CHART_SQL, Store } from '../../main/store/store.js';

const homes: string[] = [];
function tempHome(): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-store-'));
  homes.push(home);
  return home;
}
afterEach(() => {
  for (const home of homes.splice(0)) fs.rmSync(home, { recursive: true, force: true });
});

const schema = (db: SqliteDatabase) =>
  db.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name`).all();

// Enough of a job for the store, which keeps it as JSON.
const job = {
  method: 'lora',
  modelDir: '/models/m',
  dataFile: '/data/d.jsonl',
  outDir: '/out/a',
} as unknown as TrainJob;

/** Rows that every schema version from 1 on can hold, written with the SQL of that version. */
function seedVersion1(db: SqliteDatabase): void {
  db.prepare(
    `INSERT INTO models (source, location, revision, folder, architecture, parameters, dtype, size_bytes, added_at)
    VALUES ('hub', 'org/model', 'abc123', '/models/m', 'llama', 1000, 'bf16', 2000, '2026-01-01T00:00:00Z')`,
  ).run();
  db.prepare(
    `INSERT INTO runs (method, model_id, job, status, step, total_steps, created_at, run_dir)
    VALUES ('lora', 1, ?, 'completed', 3, 3, '2026-01-01T00:00:00Z', '/home/runs/1')`,
  ).run(JSON.stringify(job));
  const metric = db.prepare('INSERT INTO metrics (run_id, step, loss) VALUES (1, ?, ?)');
  for (let step = 1; step <= 3; step++) metric.run(step, 4 - step);
  db.prepare(
    `INSERT INTO adapters (run_id, folder, method, base_model_id, metrics, created_at)
    VALUES (1, '/out/a', 'lora', 1, '{"finalLoss":1}', '2026-01-01T00:00:00Z')`,
  ).run();
}

describe('migrations', () => {
  it('bring a database of every earlier version forward to the same schema, keeping its rows', () => {
    const fresh = openDatabase(tempHome());
    const expected = schema(fresh);
    expect(fresh.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    fresh.close();

    for (let version = 0; version < MIGRATIONS.length; version++) {
      const home = tempHome();
      const old = openDatabase(home, { upTo: version });
      expect(old.pragma('user_version', { simple: true })).toBe(version);
      if (version >= 1) seedVersion1(old);
      old.close();

      const store = Store.open(home);
      expect(store.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      expect(schema(store.db)).toEqual(expected);
      if (version >= 1) {
        const run = store.run(1)!;
        expect(run.status).toBe('completed');
        expect(run.job).toEqual(job);
        expect(store.model(1)).toMatchObject({
          source: 'hub',
          location: 'org/model',
          revision: 'abc123',
          dtype: 'bf16',
        });
        expect(store.metrics(1).map((m) => m.loss)).toEqual([3, 2, 1]);
        expect(store.adapters()[0]).toMatchObject({ runId: 1, folder: '/out/a', metrics: { finalLoss: 1 } });
        // A column added by a later migration has its default on the old rows.
        expect(store.runProcesses(1)).toEqual({ ownerPid: null, workerPid: null });
      }
      store.close();
    }
  });

  it("never give a deleted run's id to a new run, also in a database from before ids were tracked", () => {
    const home = tempHome();
    const old = openDatabase(home, { upTo: 2 });
    seedVersion1(old);
    old.close();
    const store = Store.open(home);
    store.deleteRun(1);
    expect(store.runs()).toEqual([]);
    expect(store.createRun(job, 1, null).id).toBe(2);
    store.deleteRun(2);
    expect(store.createRun(job, 1, null)).toMatchObject({ id: 3, runDir: path.join(home, 'runs', '3') });
    store.close();
  });

  it("never give a deleted adapter's id to a new adapter, also in a database from before adapter ids were tracked", () => {
    const home = tempHome();
    const old = openDatabase(home, { upTo: 3 });
    seedVersion1(old);
    old.close();
    const store = Store.open(home);
    const adapter = (folder: string) => ({
      runId: 1,
      parentAdapterId: null,
      folder,
      method: 'lora' as const,
      baseModelId: 1,
      metrics: { finalLoss: 1, evalLoss: null, steps: 3 },
    });
    // The adapter recorded before manifests were kept has none: its files are not the studio's to delete.
    expect(store.adapterManifest(1)).toBeNull();
    store.deleteAdapter(1);
    expect(store.adapters()).toEqual([]);
    const second = store.addAdapter(adapter('/out/b'), '{"format":1}');
    expect(second.id).toBe(2);
    expect(store.adapterManifest(2)).toBe('{"format":1}');
    // Written again into the same folder: the same record, with the new manifest.
    expect(store.addAdapter(adapter('/out/b'), '{"format":1,"again":true}')).toMatchObject({ id: 2 });
    expect(store.adapterManifest(2)).toBe('{"format":1,"again":true}');
    store.deleteAdapter(2);
    expect(store.addAdapter(adapter('/out/c'), null).id).toBe(3);
    store.close();
  });

  it('refuse a database from a newer version of the app, saying so', () => {
    const home = tempHome();
    const db = openDatabase(home);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => Store.open(home)).toThrow(UserError);
    expect(() => Store.open(home)).toThrow(/made by a newer PEFT Studio .*update the app/);
  });

  it('name the file when it is not a database', () => {
    const home = tempHome();
    fs.writeFileSync(
      path.join(home, 'studio.db'),
      'this is not sqlite, just text that is long enough to have a header'.repeat(20),
    );
    expect(() => Store.open(home)).toThrow(/studio\.db: the database file is damaged .*move it aside/);
  });

  it('run in WAL mode with foreign keys on', () => {
    const store = Store.open(tempHome());
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(() => store.createRun(job, 42, null)).toThrow(/FOREIGN KEY/);
    store.close();
  });
});

describe('deleting from the library', () => {
  it('refuses to forget a model or dataset that runs or adapters refer to, and forgets an adapter without its descendants', () => {
    const home = tempHome();
    const old = openDatabase(home);
    seedVersion1(old);
    old
      .prepare(
        `INSERT INTO datasets (source, location, format, sha256, stats, added_at) VALUES ('local', '/d.jsonl', 'text', 'abc', '{}', 'now')`,
      )
      .run();
    old.prepare('UPDATE runs SET dataset_id = 1').run();
    old
      .prepare(
        `INSERT INTO adapters (run_id, parent_adapter_id, folder, method, base_model_id, metrics, created_at) VALUES (1, 1, '/out/b', 'lora', 1, '{}', 'now')`,
      )
      .run();
    old
      .prepare(`INSERT INTO exports (adapter_id, format, destination, created_at) VALUES (1, 'peft', '/x', 'now')`)
      .run();
    old.close();
    const store = Store.open(home);
    expect(() => store.deleteModel(1)).toThrow(
      new UserError('model 1 is the base of runs 1 and adapters 1, 2: delete those first'),
    );
    expect(() => store.deleteDataset(1)).toThrow(
      new UserError('dataset 1 was trained on by runs 1: delete those first'),
    );
    store.deleteAdapter(1);
    expect(store.adapters()).toEqual([expect.objectContaining({ id: 2, parentAdapterId: null })]);
    expect(store.exports(1)).toEqual([]);
    store.deleteRun(1);
    store.deleteAdapter(2);
    store.deleteDataset(1);
    store.deleteModel(1);
    expect([store.models(), store.datasets(), store.runs()]).toEqual([[], [], []]);
    store.close();
  });
});

describe('lookups by key', () => {
  const stats: DatasetStats = {
    rows: 4,
    badRows: 1,
    emptyRows: 0,
    duplicateRows: 0,
    tokens: 120,
    trainedTokens: 60,
    truncatedRows: 0,
    cutTokens: 0,
    minLength: 20,
    maxLength: 40,
    meanLength: 30,
    lengthHistogram: [
      { from: 17, to: 32, rows: 2 },
      { from: 33, to: 64, rows: 1 },
    ],
    renderedSha256: 'r',
  };

  it("read a dataset, an adapter and a run's adapters through the primary key or an index, also in a database from before the index", () => {
    const home = tempHome();
    // Seeded at version 1, before ids were tracked: the upgrade records them.
    const old = openDatabase(home, { upTo: 1 });
    seedVersion1(old);
    old.close();
    const store = Store.open(home);
    const dataset = store.addDataset({ source: 'local', location: '/d.jsonl', format: 'chat', sha256: 'abc', stats });
    const run = store.createRun(job, 1, dataset.id);
    const adapter = (folder: string) => ({
      runId: run.id,
      parentAdapterId: 1,
      folder,
      method: 'lora' as const,
      baseModelId: 1,
      metrics: { finalLoss: 1, evalLoss: null, steps: 3 },
    });
    store.addAdapter(adapter('/out/c'), null);
    store.addAdapter(adapter('/out/b'), null);

    expect(dataset.stats).toEqual(stats);
    expect(store.dataset(dataset.id)).toEqual(dataset);
    expect(store.dataset(dataset.id + 1)).toBeNull();
    expect(store.adapter(1)).toMatchObject({ runId: 1, folder: '/out/a' });
    expect(store.adapter(42)).toBeNull();
    expect(store.adaptersOfRun(1).map((a) => a.folder)).toEqual(['/out/a']);
    expect(store.adaptersOfRun(run.id).map((a) => [a.id, a.folder])).toEqual([
      [2, '/out/c'],
      [3, '/out/b'],
    ]);
    expect(store.adaptersOfRun(42)).toEqual([]);

    const plan = (sql: string) =>
      (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(1) as { detail: string }[]).map((r) => r.detail);
    expect(plan(LOOKUP_SQL.dataset)).toEqual([
      expect.stringMatching(/^SEARCH datasets USING INTEGER PRIMARY KEY \(rowid=\?\)/),
    ]);
    expect(plan(LOOKUP_SQL.adapter)).toEqual([
      expect.stringMatching(/^SEARCH adapters USING INTEGER PRIMARY KEY \(rowid=\?\)/),
    ]);
    // One index range, already in id order: no scan, no sort.
    expect(plan(LOOKUP_SQL.adaptersOfRun)).toEqual([
      expect.stringMatching(/^SEARCH adapters USING INDEX adapters_by_run \(run_id=\?\)/),
    ]);
    store.close();
  });
});

describe('metrics of a 10,000-step run', () => {
  // A noisy decaying curve, as a long run has.
  const lossAt = (step: number) => 2 + 3 / Math.sqrt(step) + 0.1 * Math.sin(step * 12.9898);

  it('chart as at most N bucket means with their spread, read through the primary key', () => {
    const store = Store.open(tempHome());
    const model = store.addModel({
      source: 'local',
      location: '/models/m',
      revision: null,
      folder: '/models/m',
      architecture: 'llama',
      parameters: 1,
      dtype: 'f32',
      sizeBytes: 4,
    });
    const long = store.createRun(job, model.id, null);
    const other = store.createRun(job, model.id, null);
    const points = Array.from({ length: 10_000 }, (_, i) => ({
      step: i + 1,
      loss: lossAt(i + 1),
      learningRate: 2e-4,
      gradNorm: 1,
      tokensPerSecond: 100,
      memoryBytes: 1e9,
      evalLoss: null,
    }));
    // Written in batches, as the run manager does.
    for (let i = 0; i < points.length; i += 500) store.writeMetrics(long.id, points.slice(i, i + 500));
    store.writeMetrics(other.id, [
      {
        step: 1,
        loss: 9,
        learningRate: null,
        gradNorm: null,
        tokensPerSecond: null,
        memoryBytes: null,
        evalLoss: null,
      },
    ]);
    store.writeMetrics(long.id, [
      {
        step: 5000,
        loss: null,
        learningRate: null,
        gradNorm: null,
        tokensPerSecond: null,
        memoryBytes: null,
        evalLoss: 2.5,
      },
    ]);

    const chart = store.lossChart(long.id, 200);
    expect(chart).toHaveLength(200);
    // Bucket b holds steps 50b+1 .. 50b+50.
    chart.forEach((point, b) => {
      const steps = Array.from({ length: 50 }, (_, i) => 50 * b + i + 1);
      const losses = steps.map(lossAt);
      expect(point.step).toBe(steps.at(-1));
      expect(point.loss).toBeCloseTo(losses.reduce((a, c) => a + c, 0) / 50, 12);
      expect(point.minLoss).toBe(Math.min(...losses));
      expect(point.maxLoss).toBe(Math.max(...losses));
    });
    // An eval loss merges into its step without touching the training loss.
    expect(store.metrics(long.id, 5000)[0]).toMatchObject({ step: 5000, loss: lossAt(5000), evalLoss: 2.5 });
    expect(store.evalCurve(long.id)).toEqual([{ step: 5000, loss: 2.5 }]);
    expect(store.lossChart(other.id, 200)).toEqual([{ step: 1, loss: 9, minLoss: 9, maxLoss: 9 }]);
    // Fewer steps than points: one point per step.
    expect(store.lossChart(long.id, 20_000)).toHaveLength(10_000);

    const plan = (
      store.db.prepare(`EXPLAIN QUERY PLAN ${LOSS_CHART_SQL}`).all(long.id, 50) as { detail: string }[]
    ).map((r) => r.detail);
    expect(plan.some((d) => /SEARCH metrics USING PRIMARY KEY \(run_id=\?\)/.test(d))).toBe(true);
    expect(plan.some((d) => /SCAN metrics/.test(d))).toBe(false);

    // Resuming a run forgets the metrics after its checkpoint.
    store.deleteMetricsAfter(long.id, 9000);
    expect(store.lossChart(long.id, 100).at(-1)!.step).toBe(9000);
    store.close();
  });
});
