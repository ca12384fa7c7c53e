// What the Library says about each run beside its status: the data it trained on, its validation loss and how long it
// took; and, for runs compared side by side, the settings in which they differ.
import { JOB_FIELDS, jobFieldValue } from '../../../shared/trainJob.js';
import type { AdapterRecord, DatasetRecord, RunRecord } from '../../../shared/runs.js';

/** An adapter as the lists name it: its id, and the name of the run that made it with the step it is from. */
export function adapterLabel(adapter: AdapterRecord, runs: readonly RunRecord[]): string {
  const method = adapter.method === 'lora' ? 'LoRA' : 'prompt tuning';
  if (adapter.runId === null) return `Adapter ${adapter.id} (${method})`;
  const run = runs.find((r) => r.id === adapter.runId);
  const name = run ? `: ${run.name}` : '';
  return `Adapter ${adapter.id} from run ${adapter.runId}${name}, step ${adapter.metrics.steps} (${method})`;
}

/**
 * The validation loss a checkpoint was saved with: the last one measured at or before its step, with the step it was
 * measured at (validation runs every N steps, checkpoints every M); null when none was measured by then.
 */
export function checkpointValidation(
  step: number,
  evals: readonly { step: number; loss: number }[],
): { step: number; loss: number } | null {
  return evals.filter((e) => e.step <= step).at(-1) ?? null;
}

/** Folders the studio writes a checkpoint's adapter into (runs.checkpointAdapter): `run-<id>-step-<step>`. */
const CHECKPOINT_ADAPTER = /[\\/]run-\d+-step-\d+$/;

/** The adapter run `run` wrote at its end (its output folder), not one made from its checkpoints; null before. */
export function finalAdapter(run: RunRecord, adapters: readonly AdapterRecord[]): AdapterRecord | null {
  const own = adapters.filter((a) => a.runId === run.id);
  return (
    own.find((a) => a.folder === run.job.outDir) ?? own.filter((a) => !CHECKPOINT_ADAPTER.test(a.folder)).at(-1) ?? null
  );
}

export interface RunFacts {
  /** The data file's name (its folder is in the Datasets list), or null when the run has no dataset record yet. */
  dataset: string | null;
  /** The validation loss its latest adapter recorded, or null (no validation, or no adapter yet). */
  validationLoss: number | null;
  /** Seconds from start to finish, or to `now` while it runs; null before it starts. */
  durationSeconds: number | null;
}

export function runFacts(
  run: RunRecord,
  datasets: readonly DatasetRecord[],
  adapters: readonly AdapterRecord[],
  now: number,
): RunFacts {
  const dataset = datasets.find((d) => d.id === run.datasetId);
  const adapter = finalAdapter(run, adapters);
  const end = run.finishedAt ? Date.parse(run.finishedAt) : now;
  return {
    dataset: dataset ? (dataset.location.split(/[\\/]/).at(-1) ?? dataset.location) : null,
    validationLoss: adapter?.metrics.evalLoss ?? null,
    durationSeconds: run.startedAt ? Math.max(0, (end - Date.parse(run.startedAt)) / 1000) : null,
  };
}

/** One setting that differs between compared runs: its label and each run's value, in the runs' order. */
export interface SettingDifference {
  label: string;
  values: string[];
}

/** The job settings (JOB_FIELDS, in their order) whose values are not the same in every one of `runs`. */
export function settingsDiff(runs: readonly RunRecord[]): SettingDifference[] {
  const differences: SettingDifference[] = [];
  for (const [field, { label }] of Object.entries(JOB_FIELDS)) {
    const values = runs.map((run) => settingText(jobFieldValue(run.job, field)));
    if (new Set(values).size > 1) differences.push({ label, values });
  }
  return differences;
}

function settingText(value: unknown): string {
  if (value === null || value === undefined) return '–';
  if (Array.isArray(value)) return value.join(', ');
  if (typeof value === 'object')
    return (
      Object.entries(value as Record<string, string>)
        .map(([field, column]) => `${field}=${column}`)
        .join(', ') || '–'
    );
  return String(value);
}
