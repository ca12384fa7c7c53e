// The run dashboard's held-out answers: a completed run's validation rows answered by the base model and with its
// adapter (generation on a one-shot thread), kept in the run's folder so that the dashboard shows them again at once;
// computed again when the adapter's files change.
import fs from 'node:fs';
import path from 'node:path';
import type { HeldOutAnswers } from '../../../shared/api.js';
import { UserError } from '../../../shared/errors.js';
import type { RunRecord } from '../../../shared/runs.js';
import type { TrainJob } from '../../../shared/training.js';
import { answerHeldOut, runHeldOutPrompts } from '../../playground/heldOutAnswers.js';
import { writeFileAtomic } from '../../util/atomicWrite.js';

const CACHE_FILE = 'held-out-answers.json';

interface CachedAnswers extends HeldOutAnswers {
  adapter: string;
  count: number;
}

/** The run's validation rows answered both ways: what the one-shot thread runs. */
export async function computeHeldOutAnswers(job: TrainJob, count: number): Promise<HeldOutAnswers> {
  const { prompts, note, validationRows } = await runHeldOutPrompts(job, count);
  if (validationRows === 0) throw new UserError('this run held out no rows: set a validation split to compare answers');
  if (prompts.length === 0) return { rows: [], note };
  const { modelDir, outDir, device, threads } = job;
  return { rows: await answerHeldOut({ modelDir, adapterDir: outDir, device, threads }, prompts), note };
}

/** Names, sizes and modification times of the adapter's files: a retrained or replaced adapter reads differently. */
function adapterFingerprint(adapterDir: string): string {
  return fs
    .readdirSync(adapterDir, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => {
      const stat = fs.statSync(path.join(adapterDir, entry.name));
      return `${entry.name}:${stat.size}:${stat.mtimeMs}`;
    })
    .sort()
    .join('|');
}

/** Refuses, in words, a run that cannot be compared; returns its adapter's fingerprint. */
function checkComparable(run: RunRecord): string {
  if (run.status !== 'completed')
    throw new UserError(`run ${run.id} is ${run.status}: answers are compared once a run has completed`);
  if (!run.job.evalDataFile && run.job.evalSplit === 0)
    throw new UserError('this run held out no rows: set a validation split to compare answers');
  if (!fs.existsSync(path.join(run.job.outDir, 'adapter_config.json')))
    throw new UserError(`run ${run.id}: its adapter is no longer in ${run.job.outDir}`);
  return adapterFingerprint(run.job.outDir);
}

function readCache(file: string, adapter: string, count: number): HeldOutAnswers | null {
  try {
    const cached = JSON.parse(fs.readFileSync(file, 'utf8')) as CachedAnswers;
    return cached.adapter === adapter && cached.count === count ? { rows: cached.rows, note: cached.note } : null;
  } catch {
    return null;
  }
}

/**
 * Answers from the run's folder when its adapter is unchanged, else computed by `compute` (null: not computed) and
 * kept there.
 */
export async function heldOutAnswersOf(
  run: RunRecord,
  count: number,
  compute: (job: TrainJob, count: number) => Promise<HeldOutAnswers | null>,
): Promise<HeldOutAnswers | null> {
  const adapter = checkComparable(run);
  const file = path.join(run.runDir, CACHE_FILE);
  const cached = readCache(file, adapter, count);
  if (cached) return cached;
  const answers = await compute(run.job, count);
  if (answers) writeFileAtomic(file, JSON.stringify({ adapter, count, ...answers } satisfies CachedAnswers));
  return answers;
}
