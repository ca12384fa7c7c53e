// The typed repository over the studio database: every SQL statement of the app is in this file.
import path from 'node:path';
import type { DatasetStats } from '../../shared/data.js';
import type { AdapterMethod, ExecutionDevice, TrainJob } from '../../shared/training.js';
import type {
  AdapterRecord,
  ChartPoint,
  CheckpointRecord,
  DatasetRecord,
  ExportFormat,
  ExportRecord,
  MetricPoint,
  ModelRecord,
  RunRecord,
  RunStatus,
} from '../../shared/runs.js';
import { defaultRunName, normalizeRunName, runNameProblem } from '../../shared/runs.js';
import { UserError } from '../../shared/errors.js';
import { openDatabase, storageError, type SqliteDatabase } from './database.js';
import { defaultStudioHome } from './home.js';

type Row = Record<string, unknown>;

/** A run name as stored: normalized, or a UserError saying why it cannot be one. */
function checkedRunName(name: string): string {
  const problem = runNameProblem(name);
  if (problem) throw new UserError(`${problem} (given ${JSON.stringify(name.slice(0, 40))})`);
  return normalizeRunName(name);
}
const now = () => new Date().toISOString();

function modelFromRow(r: Row): ModelRecord {
  return {
    id: r.id as number,
    source: r.source as ModelRecord['source'],
    location: r.location as string,
    revision: r.revision as string | null,
    folder: r.folder as string,
    architecture: r.architecture as string,
    parameters: r.parameters as number,
    dtype: r.dtype as string,
    sizeBytes: r.size_bytes as number,
    addedAt: r.added_at as string,
  };
}

function datasetFromRow(r: Row): DatasetRecord {
  return {
    id: r.id as number,
    source: r.source as DatasetRecord['source'],
    location: r.location as string,
    format: r.format as string,
    sha256: r.sha256 as string,
    stats: JSON.parse(r.stats as string) as DatasetStats,
    addedAt: r.added_at as string,
  };
}

function runFromRow(r: Row): RunRecord {
  return {
    id: r.id as number,
    name: r.name as string,
    method: r.method as AdapterMethod,
    modelId: r.model_id as number,
    datasetId: r.dataset_id as number | null,
    job: JSON.parse(r.job as string) as TrainJob,
    status: r.status as RunStatus,
    device: r.device as ExecutionDevice | null,
    threads: r.threads as number | null,
    step: r.step as number,
    totalSteps: r.total_steps as number | null,
    createdAt: r.created_at as string,
    startedAt: r.started_at as string | null,
    finishedAt: r.finished_at as string | null,
    error: r.error as string | null,
    runDir: r.run_dir as string,
  };
}

function metricFromRow(r: Row): MetricPoint {
  return {
    step: r.step as number,
    loss: r.loss as number | null,
    learningRate: r.learning_rate as number | null,
    gradNorm: r.grad_norm as number | null,
    tokensPerSecond: r.tokens_per_second as number | null,
    memoryBytes: r.memory_bytes as number | null,
    evalLoss: r.eval_loss as number | null,
  };
}

function adapterFromRow(r: Row): AdapterRecord {
  return {
    id: r.id as number,
    runId: r.run_id as number | null,
    parentAdapterId: r.parent_adapter_id as number | null,
    folder: r.folder as string,
    method: r.method as AdapterMethod,
    baseModelId: r.base_model_id as number,
    metrics: JSON.parse(r.metrics as string),
    chatTemplate: manifestChatTemplate(r.manifest as string | null),
    origin: (r.origin as string | null) ?? null,
    createdAt: r.created_at as string,
  };
}

/** The manifest's record of whether training went through the chat template (adapterFiles.ts writes it); else null. */
function manifestChatTemplate(manifest: string | null): boolean | null {
  try {
    const recorded = (JSON.parse(manifest ?? 'null') as { chatTemplate?: unknown } | null)?.chatTemplate;
    return typeof recorded === 'boolean' ? recorded : null;
  } catch {
    return null;
  }
}

/** One chart point per bucket of consecutive steps (the bucket size is cast: JavaScript numbers bind as REAL, and REAL
 * division would put every step in a bucket of its own); exported so a test can check the plan walks the primary key.
 * */
export const LOSS_CHART_SQL = `SELECT max(step) AS step, avg(loss) AS loss, min(loss) AS minLoss, max(loss) AS maxLoss
  FROM metrics WHERE run_id = ? AND loss IS NOT NULL GROUP BY (step - 1) / CAST(? AS INTEGER) ORDER BY 1`;

/** Lookups the studio API makes per call: by primary key, or a run's adapters through adapters_by_run, never a scan of
 * the table; exported so a test can check their plans. */
export const LOOKUP_SQL = {
  dataset: 'SELECT * FROM datasets WHERE id = ?',
  adapter: 'SELECT * FROM adapters WHERE id = ?',
  adaptersOfRun: 'SELECT * FROM adapters WHERE run_id = ? ORDER BY id',
} as const;

export class Store {
  private constructor(
    readonly home: string,
    readonly db: SqliteDatabase,
  ) {}

  static open(home = defaultStudioHome()): Store {
    return new Store(path.resolve(home), openDatabase(path.resolve(home)));
  }

  /** Runs `fn` in one transaction; a storage failure becomes a one-line UserError naming the database. */
  write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      throw storageError(err, this.db.name);
    }
  }

  close(): void {
    this.db.close();
  }

  // ---- models and datasets

  /** Records a model folder (again: updates what was known about it). */
  addModel(model: Omit<ModelRecord, 'id' | 'addedAt'>): ModelRecord {
    return this.write(() => {
      this.db
        .prepare(
          `INSERT INTO models (source, location, revision, folder, architecture, parameters, dtype, size_bytes, added_at)
           VALUES (@source, @location, @revision, @folder, @architecture, @parameters, @dtype, @sizeBytes, @addedAt)
           ON CONFLICT (folder) DO UPDATE SET source = excluded.source, location = excluded.location, revision = excluded.revision,
             architecture = excluded.architecture, parameters = excluded.parameters, dtype = excluded.dtype, size_bytes = excluded.size_bytes`,
        )
        .run({ ...model, addedAt: now() });
      return modelFromRow(this.db.prepare('SELECT * FROM models WHERE folder = ?').get(model.folder) as Row);
    });
  }

  models(): ModelRecord[] {
    return (this.db.prepare('SELECT * FROM models ORDER BY id').all() as Row[]).map(modelFromRow);
  }

  model(id: number): ModelRecord | null {
    const row = this.db.prepare('SELECT * FROM models WHERE id = ?').get(id) as Row | undefined;
    return row ? modelFromRow(row) : null;
  }

  addDataset(dataset: Omit<DatasetRecord, 'id' | 'addedAt'>): DatasetRecord {
    return this.write(() => {
      this.db
        .prepare(
          `INSERT INTO datasets (source, location, format, sha256, stats, added_at) VALUES (@source, @location, @format, @sha256, @stats, @addedAt)
           ON CONFLICT (location, sha256) DO UPDATE SET format = excluded.format, stats = excluded.stats`,
        )
        .run({ ...dataset, stats: JSON.stringify(dataset.stats), addedAt: now() });
      return datasetFromRow(
        this.db
          .prepare('SELECT * FROM datasets WHERE location = ? AND sha256 = ?')
          .get(dataset.location, dataset.sha256) as Row,
      );
    });
  }

  datasets(): DatasetRecord[] {
    return (this.db.prepare('SELECT * FROM datasets ORDER BY id').all() as Row[]).map(datasetFromRow);
  }

  dataset(id: number): DatasetRecord | null {
    const row = this.db.prepare(LOOKUP_SQL.dataset).get(id) as Row | undefined;
    return row ? datasetFromRow(row) : null;
  }

  // ---- runs

  /**
   * A new queued run; its folder (checkpoints) is `<home>/runs/<id>`. Without a name it is named after its model, data
   * and date.
   */
  createRun(job: TrainJob, modelId: number, datasetId: number | null, name?: string): RunRecord {
    const createdAt = new Date();
    const runName = checkedRunName(name ?? defaultRunName(job, createdAt));
    return this.write(() => {
      const id = this.nextId('runs');
      this.db
        .prepare(
          `INSERT INTO runs (id, name, method, model_id, dataset_id, job, status, created_at, run_dir) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, '')`,
        )
        .run(id, runName, job.method, modelId, datasetId, JSON.stringify(job), createdAt.toISOString());
      this.db.prepare('UPDATE runs SET run_dir = ? WHERE id = ?').run(this.runFolder(id), id);
      return this.run(id)!;
    });
  }

  /** The folder the studio makes for run `id`; a run record naming another one is not the studio's to delete. */
  runFolder(id: number): string {
    return path.join(this.home, 'runs', String(id));
  }

  /** A new id for `table` that no row ever had: ids of deleted rows are not given out again. */
  private nextId(table: 'runs' | 'adapters'): number {
    const row = this.db
      .prepare('UPDATE id_high_water SET last_id = last_id + 1 WHERE tbl = ? RETURNING last_id')
      .get(table) as Row;
    return row.last_id as number;
  }

  run(id: number): RunRecord | null {
    const row = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as Row | undefined;
    return row ? runFromRow(row) : null;
  }

  runs(): RunRecord[] {
    return (this.db.prepare('SELECT * FROM runs ORDER BY id').all() as Row[]).map(runFromRow);
  }

  nextQueuedRun(): RunRecord | null {
    const row = this.db.prepare(`SELECT * FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1`).get() as
      Row | undefined;
    return row ? runFromRow(row) : null;
  }

  /** Takes a queued run for this process; false when another process took it first. */
  claimRun(id: number, ownerPid: number): boolean {
    return this.write(
      () =>
        this.db
          .prepare(
            `UPDATE runs SET status = 'running', owner_pid = ?, started_at = coalesce(started_at, ?), finished_at = NULL, error = NULL, requested = NULL WHERE id = ? AND status = 'queued'`,
          )
          .run(ownerPid, now(), id).changes === 1,
    );
  }

  setRunStatus(id: number, status: RunStatus, error: string | null = null): void {
    // A run that is not running has no engine process and no pending request.
    const finished = status === 'queued' ? null : now();
    this.write(() =>
      this.db
        .prepare(
          'UPDATE runs SET status = ?, error = ?, finished_at = ?, worker_pid = NULL, requested = NULL WHERE id = ?',
        )
        .run(status, error, finished, id),
    );
  }

  setRunProgress(
    id: number,
    progress: { step?: number; totalSteps?: number; device?: ExecutionDevice; threads?: number; workerPid?: number },
  ): void {
    this.write(() =>
      this.db
        .prepare(
          'UPDATE runs SET step = coalesce(?, step), total_steps = coalesce(?, total_steps), device = coalesce(?, device), threads = coalesce(?, threads), worker_pid = coalesce(?, worker_pid) WHERE id = ?',
        )
        .run(
          progress.step ?? null,
          progress.totalSteps ?? null,
          progress.device ?? null,
          progress.threads ?? null,
          progress.workerPid ?? null,
          id,
        ),
    );
  }

  /** Gives a run another name (normalized; refused in words when it cannot name a run). */
  renameRun(id: number, name: string): RunRecord {
    const runName = checkedRunName(name);
    return this.write(() => {
      if (this.db.prepare('UPDATE runs SET name = ? WHERE id = ?').run(runName, id).changes === 0)
        throw new UserError(`run ${id}: no such run`);
      return this.run(id)!;
    });
  }

  setRunDataset(id: number, datasetId: number): void {
    this.write(() => this.db.prepare('UPDATE runs SET dataset_id = ? WHERE id = ?').run(datasetId, id));
  }

  /** The engine process pid and owner process pid of a running run. */
  runProcesses(id: number): { ownerPid: number | null; workerPid: number | null } {
    const row = this.db.prepare('SELECT owner_pid, worker_pid FROM runs WHERE id = ?').get(id) as Row | undefined;
    return {
      ownerPid: (row?.owner_pid as number | null) ?? null,
      workerPid: (row?.worker_pid as number | null) ?? null,
    };
  }

  /** Asks the process that owns a running run to pause or cancel it (it polls this). */
  requestRunAction(id: number, action: 'pause' | 'cancel'): void {
    this.write(() =>
      this.db.prepare(`UPDATE runs SET requested = ? WHERE id = ? AND status = 'running'`).run(action, id),
    );
  }

  /** The pending request for a run, cleared as it is read. */
  takeRunRequest(id: number): 'pause' | 'cancel' | null {
    return this.write(() => {
      const row = this.db.prepare('SELECT requested FROM runs WHERE id = ?').get(id) as Row | undefined;
      if (row?.requested) this.db.prepare('UPDATE runs SET requested = NULL WHERE id = ?').run(id);
      return (row?.requested as 'pause' | 'cancel' | null) ?? null;
    });
  }

  /** Runs left `running` by a process that no longer exists become `interrupted`; returns their ids. */
  markOrphansInterrupted(isAlive: (pid: number) => boolean): number[] {
    return this.write(() => {
      const rows = this.db.prepare(`SELECT id, owner_pid FROM runs WHERE status = 'running'`).all() as Row[];
      const orphans = rows
        .filter((r) => r.owner_pid == null || !isAlive(r.owner_pid as number))
        .map((r) => r.id as number);
      const mark = this.db.prepare(
        `UPDATE runs SET status = 'interrupted', error = ?, finished_at = ?, worker_pid = NULL WHERE id = ?`,
      );
      for (const id of orphans)
        mark.run('the app stopped while this run was training; resume continues from its last checkpoint', now(), id);
      return orphans;
    });
  }

  /** Forgets a model; refused while runs or adapters refer to it (they would lose what they were trained on). */
  deleteModel(id: number): void {
    this.write(() => {
      const runs = (this.db.prepare('SELECT id FROM runs WHERE model_id = ? ORDER BY id').all(id) as Row[]).map(
        (r) => r.id,
      );
      const adapters = (
        this.db.prepare('SELECT id FROM adapters WHERE base_model_id = ? ORDER BY id').all(id) as Row[]
      ).map((r) => r.id);
      if (runs.length || adapters.length) {
        const users = [
          runs.length ? `runs ${runs.join(', ')}` : '',
          adapters.length ? `adapters ${adapters.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join(' and ');
        throw new UserError(`model ${id} is the base of ${users}: delete those first`);
      }
      this.db.prepare('DELETE FROM models WHERE id = ?').run(id);
    });
  }

  /** Forgets a dataset; refused while runs refer to it. */
  deleteDataset(id: number): void {
    this.write(() => {
      const runs = (this.db.prepare('SELECT id FROM runs WHERE dataset_id = ? ORDER BY id').all(id) as Row[]).map(
        (r) => r.id,
      );
      if (runs.length)
        throw new UserError(`dataset ${id} was trained on by runs ${runs.join(', ')}: delete those first`);
      this.db.prepare('DELETE FROM datasets WHERE id = ?').run(id);
    });
  }

  /** Forgets an adapter and its exports; adapters continued from it keep their record, without the link. */
  deleteAdapter(id: number): void {
    this.write(() => this.db.prepare('DELETE FROM adapters WHERE id = ?').run(id));
  }

  deleteRun(id: number): void {
    this.write(() => this.db.prepare('DELETE FROM runs WHERE id = ?').run(id));
  }

  // ---- metrics and log

  /** Upserts step metrics; a point carrying only evalLoss merges into its step's row. */
  writeMetrics(runId: number, points: MetricPoint[]): void {
    if (!points.length) return;
    this.write(() => {
      const upsert = this.db.prepare(
        `INSERT INTO metrics (run_id, step, loss, learning_rate, grad_norm, tokens_per_second, memory_bytes, eval_loss)
         VALUES (@runId, @step, @loss, @learningRate, @gradNorm, @tokensPerSecond, @memoryBytes, @evalLoss)
         ON CONFLICT (run_id, step) DO UPDATE SET
           loss = coalesce(excluded.loss, loss), learning_rate = coalesce(excluded.learning_rate, learning_rate),
           grad_norm = coalesce(excluded.grad_norm, grad_norm), tokens_per_second = coalesce(excluded.tokens_per_second, tokens_per_second),
           memory_bytes = coalesce(excluded.memory_bytes, memory_bytes), eval_loss = coalesce(excluded.eval_loss, eval_loss)`,
      );
      for (const p of points) upsert.run({ runId, ...p });
    });
  }

  /** Forgets the metrics after `step`: a resumed run recomputes them from its checkpoint. */
  deleteMetricsAfter(runId: number, step: number): void {
    this.write(() => this.db.prepare('DELETE FROM metrics WHERE run_id = ? AND step > ?').run(runId, step));
  }

  metrics(runId: number, fromStep = 0): MetricPoint[] {
    return (
      this.db
        .prepare('SELECT * FROM metrics WHERE run_id = ? AND step >= ? ORDER BY step')
        .all(runId, fromStep) as Row[]
    ).map(metricFromRow);
  }

  /** The training loss curve in at most `maxPoints` buckets of consecutive steps (mean, min, max), for charts. */
  lossChart(runId: number, maxPoints: number): ChartPoint[] {
    const last = (this.db.prepare('SELECT max(step) AS step FROM metrics WHERE run_id = ?').get(runId) as Row).step as
      number | null;
    if (last === null) return [];
    const bucket = Math.max(1, Math.ceil(last / maxPoints));
    return this.db.prepare(LOSS_CHART_SQL).all(runId, bucket) as ChartPoint[];
  }

  /** Validation losses, which are few: every one of them. */
  evalCurve(runId: number): { step: number; loss: number }[] {
    return this.db
      .prepare('SELECT step, eval_loss AS loss FROM metrics WHERE run_id = ? AND eval_loss IS NOT NULL ORDER BY step')
      .all(runId) as { step: number; loss: number }[];
  }

  appendLog(runId: number, messages: string[]): void {
    if (!messages.length) return;
    this.write(() => {
      const next =
        ((this.db.prepare('SELECT max(seq) AS seq FROM run_log WHERE run_id = ?').get(runId) as Row).seq as
          number | null) ?? 0;
      const insert = this.db.prepare('INSERT INTO run_log (run_id, seq, at, message) VALUES (?, ?, ?, ?)');
      messages.forEach((m, i) => insert.run(runId, next + 1 + i, now(), m));
    });
  }

  log(runId: number, last = 200): string[] {
    const rows = this.db
      .prepare('SELECT message FROM run_log WHERE run_id = ? ORDER BY seq DESC LIMIT ?')
      .all(runId, last) as Row[];
    return rows.map((r) => r.message as string).reverse();
  }

  // ---- checkpoints, adapters, exports

  /** Makes the checkpoint rows of a run match the folders kept on disk. */
  syncCheckpoints(runId: number, kept: { step: number; folder: string }[]): void {
    this.write(() => {
      this.db
        .prepare(
          `DELETE FROM checkpoints WHERE run_id = ? AND step NOT IN (${kept.map(() => '?').join(',') || 'NULL'})`,
        )
        .run(runId, ...kept.map((c) => c.step));
      const insert = this.db.prepare(
        'INSERT OR IGNORE INTO checkpoints (run_id, step, folder, created_at) VALUES (?, ?, ?, ?)',
      );
      for (const c of kept) insert.run(runId, c.step, c.folder, now());
    });
  }

  checkpoints(runId: number): CheckpointRecord[] {
    return (this.db.prepare('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step').all(runId) as Row[]).map(
      (r) => ({
        runId: r.run_id as number,
        step: r.step as number,
        folder: r.folder as string,
        createdAt: r.created_at as string,
      }),
    );
  }

  /**
   * Records an adapter (again, for a folder written anew: it keeps its id) with the manifest of its files, which
   * also says whether its training went through the chat template; an imported one with its origin.
   */
  addAdapter(
    adapter: Omit<AdapterRecord, 'id' | 'createdAt' | 'chatTemplate' | 'origin'> & { origin?: string | null },
    manifest: string | null,
  ): AdapterRecord {
    return this.write(() => {
      const existing = this.db.prepare('SELECT id FROM adapters WHERE folder = ?').get(adapter.folder) as
        Row | undefined;
      this.db
        .prepare(
          `INSERT INTO adapters (id, run_id, parent_adapter_id, folder, method, base_model_id, metrics, created_at, manifest, origin)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (folder) DO UPDATE SET run_id = excluded.run_id, parent_adapter_id = excluded.parent_adapter_id, method = excluded.method,
             base_model_id = excluded.base_model_id, metrics = excluded.metrics, created_at = excluded.created_at,
             manifest = excluded.manifest, origin = excluded.origin`,
        )
        .run(
          (existing?.id as number | undefined) ?? this.nextId('adapters'),
          adapter.runId,
          adapter.parentAdapterId,
          adapter.folder,
          adapter.method,
          adapter.baseModelId,
          JSON.stringify(adapter.metrics),
          now(),
          manifest,
          adapter.origin ?? null,
        );
      return adapterFromRow(this.db.prepare('SELECT * FROM adapters WHERE folder = ?').get(adapter.folder) as Row);
    });
  }

  /** The manifest of the files the studio wrote into an adapter's folder, as recorded; null when none was. */
  adapterManifest(id: number): string | null {
    const row = this.db.prepare('SELECT manifest FROM adapters WHERE id = ?').get(id) as Row | undefined;
    return (row?.manifest as string | null | undefined) ?? null;
  }

  adapters(): AdapterRecord[] {
    return (this.db.prepare('SELECT * FROM adapters ORDER BY id').all() as Row[]).map(adapterFromRow);
  }

  adapter(id: number): AdapterRecord | null {
    const row = this.db.prepare(LOOKUP_SQL.adapter).get(id) as Row | undefined;
    return row ? adapterFromRow(row) : null;
  }

  /** The adapters run `runId` wrote, oldest first. */
  adaptersOfRun(runId: number): AdapterRecord[] {
    return (this.db.prepare(LOOKUP_SQL.adaptersOfRun).all(runId) as Row[]).map(adapterFromRow);
  }

  adapterByFolder(folder: string): AdapterRecord | null {
    const row = this.db.prepare('SELECT * FROM adapters WHERE folder = ?').get(folder) as Row | undefined;
    return row ? adapterFromRow(row) : null;
  }

  addExport(adapterId: number, format: ExportFormat, destination: string, hubUrl: string | null = null): ExportRecord {
    return this.write(() => {
      const { lastInsertRowid } = this.db
        .prepare('INSERT INTO exports (adapter_id, format, destination, hub_url, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(adapterId, format, destination, hubUrl, now());
      return this.exports(adapterId).find((e) => e.id === Number(lastInsertRowid))!;
    });
  }

  exports(adapterId: number): ExportRecord[] {
    return (this.db.prepare('SELECT * FROM exports WHERE adapter_id = ? ORDER BY id').all(adapterId) as Row[]).map(
      (r) => ({
        id: r.id as number,
        adapterId: r.adapter_id as number,
        format: r.format as ExportFormat,
        destination: r.destination as string,
        hubUrl: r.hub_url as string | null,
        createdAt: r.created_at as string,
      }),
    );
  }
}
