// Runs recorded in the studio's store: `train` through the run manager when a store is configured, and
// `runs list|show|resume|pause|cancel`.
import { UserError } from '../../shared/errors.js';
import { runNameProblem, type RunRecord } from '../../shared/runs.js';
import type { TrainJob } from '../../shared/training.js';
import { RunManager } from '../studio/runs/runManager.js';
import { defaultStudioHome } from '../store/home.js';
import { Store } from '../store/store.js';
import { json, positiveInt, str, UsageError, type Command } from './options.js';
import { printEvent } from './progress.js';

/** The studio folder the user configured (`--home`, else PEFT_STUDIO_HOME), or null: train then records nothing. */
export function configuredHome(values: Record<string, unknown>): string | null {
  if (typeof values.home === 'string') return values.home;
  return process.env.PEFT_STUDIO_HOME ? defaultStudioHome() : null;
}

function summary(run: RunRecord): string {
  switch (run.status) {
    case 'completed':
      return `run ${run.id} completed: adapter written to ${run.job.outDir} after ${run.step} steps`;
    case 'paused':
      return `run ${run.id} paused after step ${run.step}; continue with: peft-studio runs resume ${run.id}`;
    default:
      return `run ${run.id} ${run.status}`;
  }
}

/**
 * Executes queued run `id` in the foreground with progress on stderr. Ctrl-C pauses it (a checkpoint, then exit);
 * a second Ctrl-C stops at once. A run that does not complete or pause is an error (exit code 1).
 */
async function executeInForeground(manager: RunManager, id: number, asJson: boolean): Promise<void> {
  const unsubscribe = manager.subscribe((e) => {
    if (e.runId === id && e.type === 'engine' && !asJson) printEvent(e.event);
  });
  let interrupts = 0;
  const onInterrupt = () => {
    if (interrupts++ === 0) {
      process.stderr.write('pausing after the current step (Ctrl-C again to stop now)\n');
      manager.pause(id);
    } else manager.cancel(id);
  };
  process.on('SIGINT', onInterrupt);
  try {
    const run = await manager.execute(id);
    if (run.status !== 'completed' && run.status !== 'paused') {
      const retry = run.status === 'cancelled' ? '' : `; resume with: peft-studio runs resume ${id}`;
      throw new UserError(`run ${id} ${run.status}: ${run.error ?? 'stopped'}${retry}`);
    }
    const last = manager.store.metrics(id, run.step).at(-1);
    process.stdout.write(
      asJson
        ? `${JSON.stringify({ ...run, finalLoss: last?.loss ?? null, evalLoss: last?.evalLoss ?? null })}\n`
        : `${summary(run)}\n`,
    );
  } finally {
    process.off('SIGINT', onInterrupt);
    unsubscribe();
  }
}

/** `train --name`: the recorded run's name, checked; refused without a studio folder to record it in. */
export function runNameFlag(values: Record<string, unknown>, home: string | null): string | undefined {
  if (typeof values.name !== 'string') return undefined;
  if (!home) throw new UsageError('--name names a run recorded in a studio folder: give --home DIR too');
  const problem = runNameProblem(values.name);
  if (problem) throw new UsageError(`--name: ${problem}`);
  return values.name;
}

/**
 * `train` with a store: the run is recorded (named `name`, else after its model, data and date), checkpointed, and
 * resumable.
 */
export async function trainRecorded(job: TrainJob, home: string, asJson: boolean, name?: string): Promise<void> {
  const store = Store.open(home);
  try {
    const manager = new RunManager(store);
    const run = manager.enqueue(job, name);
    if (!asJson) process.stderr.write(`run ${run.id} recorded in ${store.home}: "${run.name}"\n`);
    await executeInForeground(manager, run.id, asJson);
  } finally {
    store.close();
  }
}

function runId(positionals: string[], verb: string): number {
  const id = Number(positionals[1]);
  if (positionals.length !== 2 || !Number.isInteger(id) || id <= 0)
    throw new UsageError(`runs ${verb} takes one run id`);
  return id;
}

const fmt = (n: number | null | undefined, digits = 4) => (n === null || n === undefined ? '-' : n.toFixed(digits));

export const RUNS_COMMANDS: Record<string, Command> = {
  runs: {
    summary: 'training runs recorded in the studio folder: list, show, resume, pause, stop and save, cancel',
    usage: 'peft-studio runs list|show ID|resume ID|pause ID|stop ID|cancel ID [--home DIR] [--points 200] [--json]',
    positionals: true,
    options: { home: str, points: str, json },
    async run(values, positionals) {
      const verb = positionals[0];
      if (!['list', 'show', 'resume', 'pause', 'stop', 'cancel'].includes(verb))
        throw new UsageError(`unknown runs command "${verb ?? ''}"`);
      const store = Store.open(configuredHome(values) ?? defaultStudioHome());
      try {
        // Opening the manager marks runs whose process is gone as interrupted.
        const manager = new RunManager(store);
        const asJson = values.json === true;
        if (verb === 'list') {
          if (positionals.length !== 1) throw new UsageError('runs list takes no argument');
          const runs = store.runs();
          if (asJson) return void process.stdout.write(`${JSON.stringify(runs)}\n`);
          const lines = ['ID  STATUS       STEP        METHOD         LOSS    NAME'];
          for (const run of runs) {
            const loss = store.metrics(run.id, run.step).at(0)?.loss;
            lines.push(
              `${String(run.id).padEnd(3)} ${run.status.padEnd(12)} ${`${run.step}/${run.totalSteps ?? '?'}`.padEnd(11)} ${run.method.padEnd(14)} ${fmt(loss).padEnd(7)} ${run.name}`,
            );
          }
          if (!runs.length) lines.push('(no runs yet)');
          return void process.stdout.write(`${lines.join('\n')}\n`);
        }
        const id = runId(positionals, verb);
        const run = store.run(id);
        if (!run) throw new UserError(`run ${id}: no such run in ${store.home}`);
        if (verb === 'show') {
          const details = {
            ...run,
            model: store.model(run.modelId),
            dataset: store.datasets().find((d) => d.id === run.datasetId) ?? null,
            chart: store.lossChart(id, positiveInt(values, 'points', 200)),
            evalCurve: store.evalCurve(id),
            checkpoints: store.checkpoints(id),
            adapters: store.adapters().filter((a) => a.runId === id),
            log: store.log(id, 20),
          };
          if (asJson) return void process.stdout.write(`${JSON.stringify(details)}\n`);
          const last = store.metrics(id, run.step).at(0);
          const lines = [
            `run ${id} "${run.name}": ${run.status}${run.error ? ` (${run.error})` : ''}`,
            `model ${details.model?.location} (${details.model?.architecture}, ${details.model?.parameters} parameters)`,
            `data ${details.dataset ? `${details.dataset.location} (${details.dataset.format}, sha256 ${details.dataset.sha256.slice(0, 12)})` : run.job.dataFile}`,
            `${run.method}, step ${run.step}/${run.totalSteps ?? '?'}, loss ${fmt(last?.loss)}, validation ${fmt(details.evalCurve.at(-1)?.loss)}, device ${run.device ?? '-'}`,
            `checkpoints: ${details.checkpoints.map((c) => c.step).join(', ') || 'none'}`,
            `adapter: ${details.adapters[0]?.folder ?? 'not yet'}`,
            ...details.log.map((l) => `  ${l}`),
          ];
          return void process.stdout.write(`${lines.join('\n')}\n`);
        }
        if (verb === 'pause') {
          manager.pause(id);
          return void process.stdout.write(`run ${id}: pause requested\n`);
        }
        if (verb === 'cancel') {
          manager.cancel(id);
          return void process.stdout.write(
            `run ${id}: ${store.run(id)!.status === 'cancelled' ? 'cancelled' : 'cancel requested'}\n`,
          );
        }
        // stop: a paused run is resumed here only to write its adapter (a running one elsewhere is refused).
        if (verb === 'stop') manager.stop(id);
        else manager.resume(id);
        await executeInForeground(manager, id, asJson);
      } finally {
        store.close();
      }
    },
  },
};
