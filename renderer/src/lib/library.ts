// What the Library says about each run beside its status: the data it trained on, its validation loss and how long it
// took; and, for runs compared side by side, the settings in which they differ.
import { JOB_FIELDS, jobFieldValue } from '../../../shared/trainJob.js';
import type { AdapterRecord, DatasetRecord, RunRecord } from '../../../shared/runs.js';

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
  const adapter = adapters.filter((a) => a.runId === run.id).at(-1);
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
