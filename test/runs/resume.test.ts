// Runs that survive anything, tested the way it happens: a real `peft-studio train` recording into a real SQLite
// file, a real SIGKILL of the engine process or of the whole app mid-run, then `runs resume`, whose losses must be
// identical to those of a run that was never interrupted (CPU, fixed seed).
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrainingFacts } from '../../main/hub/modelCard.js';
import { previewModelCard } from '../../main/hub/push.js';
import { openDatabase } from '../../main/store/database.js';
import { isProcessAlive } from '../../main/util/process.js';
import { Store } from '../../main/store/store.js';
import { CLI, lastJson, runCliAsync } from '../support/cli.js';

const STEPS = 60;
const TRAIN = [
  'train',
  '--steps',
  String(STEPS),
  '--checkpoint-every',
  '10',
  '--keep-checkpoints',
  '3',
  '--device',
  'cpu',
  '--seed',
  '7',
  '--lora-dropout',
  '0.1',
  '--json',
];

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-resume-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

function startCli(args: string[]): Started {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  child.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => stderr, exit };
}

async function until<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The losses of run `id`, step by step, read through a second (read-only) connection. */
function losses(home: string, id = 1): number[] {
  const store = Store.open(home);
  try {
    return store.metrics(id).map((m) => m.loss!);
  } finally {
    store.close();
  }
}

function recordedRun(home: string, id = 1) {
  const db = openDatabase(home, { readonly: true });
  try {
    return db
      .prepare('SELECT status, step, worker_pid AS workerPid, owner_pid AS ownerPid, error FROM runs WHERE id = ?')
      .get(id) as
      | { status: string; step: number; workerPid: number | null; ownerPid: number | null; error: string | null }
      | undefined;
  } finally {
    db.close();
  }
}

const stepsPrinted = (stderr: string) => Number([...stderr.matchAll(/step (\d+)\/\d+/g)].at(-1)?.[1] ?? 0);

describe('a recorded run', () => {
  let reference: number[];

  beforeAll(async () => {
    const home = path.join(root, 'reference');
    const result = await runCliAsync([...TRAIN, '--home', home, '--out', path.join(root, 'reference-adapter')]);
    expect(result.code, result.stderr).toBe(0);
    expect(lastJson(result.stdout)).toMatchObject({ id: 1, status: 'completed', step: STEPS });
    reference = losses(home);
  });

  it('is visible to a concurrent reader while it trains, and keeps the last K checkpoints', async () => {
    expect(reference).toHaveLength(STEPS);
    const home = path.join(root, 'concurrent');
    // Progress lines are only printed without --json.
    const run = startCli([
      ...TRAIN.filter((a) => a !== '--json'),
      '--home',
      home,
      '--out',
      path.join(root, 'concurrent-adapter'),
    ]);
    const seen: { status: string; rows: number }[] = [];
    // The run is in the database once the CLI says so (the file exists a moment before its tables).
    await until('the run to be recorded', () => /run 1 recorded in/.test(run.stderr()));
    // A second connection reads while the run manager writes: WAL readers never wait for the writer.
    while (run.child.exitCode === null) {
      const db = openDatabase(home, { readonly: true });
      const status = (db.prepare('SELECT status FROM runs WHERE id = 1').get() as { status: string }).status;
      const rows = (db.prepare('SELECT count(*) AS n FROM metrics WHERE run_id = 1').get() as { n: number }).n;
      db.close();
      seen.push({ status, rows });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await run.exit, run.stderr()).toBe(0);
    const whileRunning = seen.filter((s) => s.status === 'running').map((s) => s.rows);
    expect(new Set(whileRunning).size).toBeGreaterThan(2);
    expect(whileRunning.some((rows) => rows > 0 && rows < STEPS)).toBe(true);
    expect(losses(home)).toEqual(reference);
    const store = Store.open(home);
    expect(store.checkpoints(1).map((c) => c.step)).toEqual([40, 50, 60]);
    expect(fs.readdirSync(path.join(home, 'runs', '1', 'checkpoints'))).toEqual([
      'step-00000040',
      'step-00000050',
      'step-00000060',
    ]);
    expect(store.adapters()).toEqual([
      expect.objectContaining({ runId: 1, folder: path.join(root, 'concurrent-adapter') }),
    ]);
    store.close();
  });

  it('continues after SIGKILL of its engine process mid-run with identical losses', async () => {
    const home = path.join(root, 'worker-killed');
    const run = startCli([
      ...TRAIN.filter((a) => a !== '--json'),
      '--home',
      home,
      '--out',
      path.join(root, 'worker-killed-adapter'),
    ]);
    await until('step 15', () => stepsPrinted(run.stderr()) >= 15);
    const { workerPid } = recordedRun(home)!;
    expect(workerPid).toBeGreaterThan(0);
    process.kill(workerPid!, 'SIGKILL');
    const killedAt = stepsPrinted(run.stderr());
    expect(await run.exit).toBe(1);
    expect(run.stderr()).toMatch(
      /run 1 interrupted: the engine process was killed \(SIGKILL\) at step \d+; unless someone stopped it, the system ran out of memory: .*; resume continues from its last checkpoint; resume with: peft-studio runs resume 1/,
    );
    expect(killedAt).toBeLessThan(STEPS);
    expect(recordedRun(home)).toMatchObject({ status: 'interrupted', workerPid: null });

    const resumed = await runCliAsync(['runs', 'resume', '1', '--home', home, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(lastJson(resumed.stdout)).toMatchObject({ id: 1, status: 'completed', step: STEPS });
    expect(losses(home)).toEqual(reference);
    const shown = await runCliAsync(['runs', 'show', '1', '--home', home, '--json']);
    expect(lastJson(shown.stdout).log.join('\n')).toMatch(/resumed from .*step-000000[1-5]0 \(step [1-5]0 of 60\)/);
  });

  it('continues after SIGKILL of the whole app, skipping a damaged checkpoint for the one before', async () => {
    const home = path.join(root, 'app-killed');
    const run = startCli([
      ...TRAIN.filter((a) => a !== '--json'),
      '--home',
      home,
      '--out',
      path.join(root, 'app-killed-adapter'),
    ]);
    await until('the checkpoint of step 30', () => /checkpoint of step 30 written/.test(run.stderr()));
    const { workerPid } = recordedRun(home)!;
    run.child.kill('SIGKILL');
    await run.exit;
    // The engine notices its app is gone and stops too.
    await until('the engine to exit', () => !isProcessAlive(workerPid!));
    expect(stepsPrinted(run.stderr())).toBeLessThan(STEPS);

    // Reopening the store finds the run's process gone.
    const listed = await runCliAsync(['runs', 'list', '--home', home, '--json']);
    expect(lastJson(listed.stdout)[0]).toMatchObject({
      id: 1,
      status: 'interrupted',
      error: expect.stringMatching(/resume continues from its last checkpoint/),
    });

    const checkpoints = path.join(home, 'runs', '1', 'checkpoints');
    const newest = fs
      .readdirSync(checkpoints)
      .filter((n) => n.startsWith('step-'))
      .sort()
      .at(-1)!;
    const state = path.join(checkpoints, newest, 'state.safetensors');
    const bytes = fs.readFileSync(state);
    bytes[bytes.length - 3] ^= 0x40;
    fs.writeFileSync(state, bytes);

    const resumed = await runCliAsync(['runs', 'resume', '1', '--home', home]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const skippedStep = Number(newest.slice(5));
    expect(resumed.stderr).toContain(
      `skipping checkpoint ${path.join(checkpoints, newest)}: state.safetensors does not match its checksum`,
    );
    expect(resumed.stderr).toMatch(new RegExp(`resumed from .*step-${String(skippedStep - 10).padStart(8, '0')}`));
    // Only the steps after the checkpoint are trained again.
    expect(resumed.stderr).toMatch(new RegExp(`\\] step ${skippedStep - 9}/60 `));
    expect(resumed.stderr).not.toMatch(new RegExp(`\\] step ${skippedStep - 10}/60 `));
    expect(resumed.stdout).toMatch(/run 1 completed: adapter written to .*app-killed-adapter after 60 steps/);
    expect(losses(home)).toEqual(reference);
  });

  it('stops and saves a paused run from the command line: its adapter from the checkpoint, no step more', async () => {
    const home = path.join(root, 'stopped');
    const adapterDir = path.join(root, 'stopped-adapter');
    const run = startCli([...TRAIN.filter((a) => a !== '--json'), '--home', home, '--out', adapterDir]);
    await until('step 5', () => stepsPrinted(run.stderr()) >= 5);
    // Running in the training process, not this one: refused in one line that says what to do.
    const elsewhere = await runCliAsync(['runs', 'stop', '1', '--home', home]);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr.trim().split('\n').at(-1)).toMatch(
      /run 1 is running in another process: pause it there or here, then stop and save it$/,
    );
    await runCliAsync(['runs', 'pause', '1', '--home', home]);
    expect(await run.exit, run.stderr()).toBe(0);
    const pausedAt = recordedRun(home)!.step;

    const stopped = await runCliAsync(['runs', 'stop', '1', '--home', home, '--json']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(lastJson(stopped.stdout)).toMatchObject({ id: 1, status: 'completed', step: pausedAt });
    const shown = await runCliAsync(['runs', 'show', '1', '--home', home, '--json']);
    expect(lastJson(shown.stdout).log.join('\n')).toContain(
      `stopped after step ${pausedAt} of ${STEPS}: saving the adapter as it is now`,
    );
    expect(readTrainingFacts(path.join(adapterDir, 'training.json'))!.losses).toHaveLength(pausedAt);
    expect(fs.existsSync(path.join(adapterDir, 'adapter_model.safetensors'))).toBe(true);
  });

  it('pauses on request from another process, with a checkpoint, and resumes to the same losses', async () => {
    const home = path.join(root, 'paused');
    const run = startCli([
      ...TRAIN.filter((a) => a !== '--json'),
      '--home',
      home,
      '--out',
      path.join(root, 'paused-adapter'),
    ]);
    await until('step 5', () => stepsPrinted(run.stderr()) >= 5);
    const paused = await runCliAsync(['runs', 'pause', '1', '--home', home]);
    expect(paused.stdout).toBe('run 1: pause requested\n');
    expect(await run.exit, run.stderr()).toBe(0);
    const record = recordedRun(home)!;
    expect(record.status).toBe('paused');
    expect(record.step).toBeLessThan(STEPS);
    expect(run.stderr()).toContain(`checkpoint of step ${record.step} written`);

    const resumed = await runCliAsync(['runs', 'resume', '1', '--home', home, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(losses(home)).toEqual(reference);

    // The adapter's record and the model card pushed with it cover the whole run, not only the steps after the resume.
    const adapterDir = path.join(root, 'paused-adapter');
    expect(readTrainingFacts(path.join(adapterDir, 'training.json'))!.losses).toEqual(
      reference.map((loss, i) => ({ step: i + 1, loss })),
    );
    const card = previewModelCard({ adapterDir, repoId: 'alice/paused', baseModel: 'alice/base' }, 'https://hub.test');
    expect(card).toContain(`Training loss over ${STEPS} logged steps (step 1 to ${STEPS}).`);
    // A run of set steps: its steps, not the default epochs; a LoRA run: no prompt-tuning settings.
    expect(card).toContain(`| steps | ${STEPS} |`);
    expect(card).not.toMatch(/\| epochs |promptTuning/);
  });

  it('resumes from a checkpoint written before checkpoints kept the loss history', async () => {
    const home = path.join(root, 'old-checkpoint');
    const run = startCli([
      ...TRAIN.filter((a) => a !== '--json'),
      '--home',
      home,
      '--out',
      path.join(root, 'old-checkpoint-adapter'),
    ]);
    await until('step 5', () => stepsPrinted(run.stderr()) >= 5);
    await runCliAsync(['runs', 'pause', '1', '--home', home]);
    expect(await run.exit, run.stderr()).toBe(0);
    const { step } = recordedRun(home)!;
    expect(step).toBeLessThan(STEPS);

    // The checkpoint as older versions wrote it: trainer.json without `losses`, the manifest's checksum to match.
    const folder = path.join(home, 'runs', '1', 'checkpoints', `step-${String(step).padStart(8, '0')}`);
    const trainerFile = path.join(folder, 'trainer.json');
    const trainer = JSON.parse(fs.readFileSync(trainerFile, 'utf8'));
    expect(trainer.losses.map((p: { step: number }) => p.step)).toEqual(Array.from({ length: step }, (_, i) => i + 1));
    delete trainer.losses;
    fs.writeFileSync(trainerFile, JSON.stringify(trainer, null, 1));
    const manifestFile = path.join(folder, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    manifest.sha256['trainer.json'] = crypto.createHash('sha256').update(fs.readFileSync(trainerFile)).digest('hex');
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));

    const resumed = await runCliAsync(['runs', 'resume', '1', '--home', home, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(losses(home)).toEqual(reference);
    const facts = readTrainingFacts(path.join(root, 'old-checkpoint-adapter', 'training.json'))!;
    expect(facts.losses).toEqual(reference.slice(step).map((loss, i) => ({ step: step + i + 1, loss })));
  });
});
