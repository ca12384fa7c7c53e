// The Library's facts about each run, and the settings two compared runs differ in.
import { describe, expect, it } from 'vitest';
import type { AdapterRecord, DatasetRecord, RunRecord } from '../../shared/runs.js';
import { defaultTrainJob } from '../../shared/trainJob.js';
import { runFacts, settingsDiff } from '../../renderer/src/lib/library.js';

const job = defaultTrainJob('lora', { modelDir: '/m', dataFile: '/data/support.csv', outDir: '/out' });
const run = (id: number, changes: Partial<RunRecord> = {}): RunRecord => ({
  id,
  name: `Run ${id}`,
  method: 'lora',
  modelId: 1,
  datasetId: 3,
  job,
  status: 'completed',
  device: 'cpu',
  threads: 2,
  step: 100,
  totalSteps: 100,
  createdAt: '2026-12-01T10:00:00.000Z',
  startedAt: '2026-12-01T10:00:05.000Z',
  finishedAt: '2026-12-01T10:02:35.000Z',
  error: null,
  runDir: `/runs/${id}`,
  ...changes,
});
const dataset = { id: 3, location: '/data/support.csv' } as DatasetRecord;
const adapter = (id: number, runId: number, evalLoss: number | null) =>
  ({ id, runId, metrics: { finalLoss: 1, evalLoss, steps: 100 } }) as AdapterRecord;

describe('runFacts', () => {
  it('names the data file, takes the validation loss of the latest adapter, and times the run', () => {
    const facts = runFacts(run(1), [dataset], [adapter(1, 1, 2.5), adapter(2, 2, 9), adapter(3, 1, 2.25)], 0);
    expect(facts).toEqual({ dataset: 'support.csv', validationLoss: 2.25, durationSeconds: 150 });
  });

  it('counts a running run to now, and says nothing it does not know', () => {
    const running = run(2, { status: 'running', finishedAt: null, datasetId: null });
    expect(runFacts(running, [dataset], [], Date.parse('2026-12-01T10:01:05.000Z'))).toEqual({
      dataset: null,
      validationLoss: null,
      durationSeconds: 60,
    });
    expect(runFacts(run(3, { status: 'queued', startedAt: null }), [], [], 0).durationSeconds).toBeNull();
  });
});

describe('settingsDiff', () => {
  it('lists the settings whose values differ, by label, in the order of the fields', () => {
    const other = run(2, {
      job: { ...job, steps: 500, lora: { ...job.lora, rank: 8, targets: ['q_proj', 'v_proj'] } },
    });
    expect(settingsDiff([run(1), other])).toEqual([
      { label: 'LoRA rank', values: ['16', '8'] },
      { label: 'Target modules', values: ['q_proj, k_proj, v_proj, o_proj', 'q_proj, v_proj'] },
      { label: 'Steps', values: ['–', '500'] },
    ]);
    expect(settingsDiff([run(1), run(2)])).toEqual([]);
  });
});
