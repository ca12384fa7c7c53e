// The store's schema history. Each entry runs once, in order, inside a transaction; `PRAGMA user_version` records
// how many have run. Never edit a released migration: add the next one.

export const MIGRATIONS: readonly string[] = [
  // 1: models, datasets, runs and what they produce.
  `
  CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL CHECK (source IN ('local', 'hub', 'builtin')),
    location TEXT NOT NULL,
    revision TEXT,
    folder TEXT NOT NULL UNIQUE,
    architecture TEXT NOT NULL,
    parameters INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    added_at TEXT NOT NULL
  );
  CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL CHECK (source IN ('local', 'hub')),
    location TEXT NOT NULL,
    format TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    stats TEXT NOT NULL,
    added_at TEXT NOT NULL,
    UNIQUE (location, sha256)
  );
  CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    method TEXT NOT NULL CHECK (method IN ('lora', 'prompt-tuning')),
    model_id INTEGER NOT NULL REFERENCES models (id),
    dataset_id INTEGER REFERENCES datasets (id),
    job TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'paused', 'completed', 'failed', 'interrupted', 'cancelled')),
    device TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    run_dir TEXT NOT NULL,
    owner_pid INTEGER
  );
  CREATE INDEX runs_by_status ON runs (status, id);
  CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    loss REAL,
    learning_rate REAL,
    grad_norm REAL,
    tokens_per_second REAL,
    memory_bytes INTEGER,
    eval_loss REAL,
    PRIMARY KEY (run_id, step)
  ) WITHOUT ROWID;
  CREATE TABLE checkpoints (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    folder TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
  );
  CREATE TABLE adapters (
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    parent_adapter_id INTEGER REFERENCES adapters (id) ON DELETE SET NULL,
    folder TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL CHECK (method IN ('lora', 'prompt-tuning')),
    base_model_id INTEGER NOT NULL REFERENCES models (id),
    metrics TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE exports (
    id INTEGER PRIMARY KEY,
    adapter_id INTEGER NOT NULL REFERENCES adapters (id) ON DELETE CASCADE,
    format TEXT NOT NULL CHECK (format IN ('peft', 'merged', 'gguf', 'hub')),
    destination TEXT NOT NULL,
    hub_url TEXT,
    created_at TEXT NOT NULL
  );
  `,
  // 2: the engine process of a running run (so it can be found after a crash), pause/cancel requests from another
  // process (the CLI while the app trains), and the run's log for the dashboard.
  `
  ALTER TABLE runs ADD COLUMN worker_pid INTEGER;
  ALTER TABLE runs ADD COLUMN requested TEXT CHECK (requested IN ('pause', 'cancel'));
  CREATE TABLE run_log (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;
  `,
  // 3: run ids are never reused after a delete (a late event or an old folder must not land on a new run); the
  // highest id ever given out is kept here, since rebuilding runs as AUTOINCREMENT would mean dropping its references.
  `
  CREATE TABLE id_high_water (tbl TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
  INSERT INTO id_high_water (tbl, last_id) SELECT 'runs', coalesce(max(id), 0) FROM runs;
  `,
  // 4: adapter ids are never reused either, and each adapter keeps the manifest of the files the studio wrote into its
  // folder (null for adapters recorded before): deleting an adapter's files removes those, unchanged, and nothing else.
  `
  INSERT INTO id_high_water (tbl, last_id) SELECT 'adapters', coalesce(max(id), 0) FROM adapters;
  ALTER TABLE adapters ADD COLUMN manifest TEXT;
  `,
  // 5: a run's adapters are read through an index (the run's page asks on every open), not a scan of every adapter;
  // deleting a run finds the adapters whose run_id it clears through it too.
  `
  CREATE INDEX adapters_by_run ON adapters (run_id);
  `,
  // 6: the CPU threads a run's engine used, beside its device: throughput is only comparable between equal counts.
  `
  ALTER TABLE runs ADD COLUMN threads INTEGER;
  `,
  // 7: a name the user gives a run (the store names new runs after their model, data and date); runs recorded before
  // are called by their id.
  `
  ALTER TABLE runs ADD COLUMN name TEXT NOT NULL DEFAULT '';
  UPDATE runs SET name = 'Run ' || id;
  `,
  // 8: exports may be merged model GGUFs; SQLite changes a CHECK only by rebuilding the table, rows kept.
  `
  CREATE TABLE exports_v8 (
    id INTEGER PRIMARY KEY,
    adapter_id INTEGER NOT NULL REFERENCES adapters (id) ON DELETE CASCADE,
    format TEXT NOT NULL CHECK (format IN ('peft', 'merged', 'gguf', 'gguf-model', 'hub')),
    destination TEXT NOT NULL,
    hub_url TEXT,
    created_at TEXT NOT NULL
  );
  INSERT INTO exports_v8 (id, adapter_id, format, destination, hub_url, created_at)
    SELECT id, adapter_id, format, destination, hub_url, created_at FROM exports;
  DROP TABLE exports;
  ALTER TABLE exports_v8 RENAME TO exports;
  `,
  // 9: adapters trained elsewhere and imported (`peft-studio import`, adapters.import) keep where they came from: the
  // folder, or the Hub repo at its commit; null for adapters the studio trained.
  `
  ALTER TABLE adapters ADD COLUMN origin TEXT;
  `,
];
