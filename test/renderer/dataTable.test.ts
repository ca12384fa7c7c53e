// The Data step's table and its duplicate choice against a scripted StudioApi: pages asked in order, stale pages
// dropped, "rows X–Y of N", and "Remove duplicates" checking the data again with duplicates dropped.
import { describe, expect, it, vi } from 'vitest';
import type { DatasetInspection, DatasetPage, MethodName, Params, Result, StudioApi } from '../../shared/api.js';
import type { DataSettings } from '../../shared/training.js';
import { defaultDataSettings } from '../../shared/trainJob.js';
import { DatasetTable, TABLE_PAGE_ROWS } from '../../renderer/src/lib/dataTable.svelte.js';
import { toTrainJob } from '../../renderer/src/lib/wizard.js';
import { WizardState } from '../../renderer/src/lib/wizardState.svelte.js';

const FILE = '/data/support.csv';
const QUERY = { file: FILE, modelDir: '/models/tiny', data: defaultDataSettings(), maxSeqLen: 512 };
const TOTAL_ROWS = 45;

/** The page of a 45-row file at `offset`: row numbers offset+2.. as in a CSV with a header. */
function pageAt(offset: number, limit: number): DatasetPage {
  const count = Math.max(0, Math.min(limit, TOTAL_ROWS - offset));
  const rows = Array.from({ length: count }, (_, i) => ({ kind: 'empty' as const, row: offset + i + 2 }));
  return { offset, rows, more: offset + count < TOTAL_ROWS };
}

type Handler = { [M in MethodName]?: (params: Params<M>) => Promise<Result<M>> };

function scriptedApi(handlers: Handler): StudioApi & { calls: { method: MethodName; params: unknown }[] } {
  const calls: { method: MethodName; params: unknown }[] = [];
  return {
    calls,
    call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
      calls.push({ method, params });
      const handler = handlers[method] as ((p: Params<M>) => Promise<Result<M>>) | undefined;
      return handler ? handler(params) : Promise.reject(new Error(`unexpected call ${method}`));
    },
    subscribe: () => () => {},
  };
}

describe('DatasetTable', () => {
  it('pages forward and back by 20 and says which rows it shows', async () => {
    const api = scriptedApi({ 'datasets.rows': async (p) => pageAt(p.offset, p.limit) });
    const table = new DatasetTable(api);
    await table.open(QUERY);
    expect(table.rangeLabel(TOTAL_ROWS)).toBe('rows 1–20 of 45');
    expect([table.hasPrevious, table.hasNext]).toEqual([false, true]);
    await table.next();
    await table.next();
    expect(table.rangeLabel(TOTAL_ROWS)).toBe('rows 41–45 of 45');
    expect(table.page?.rows.at(-1)).toEqual({ kind: 'empty', row: 46 });
    expect([table.hasPrevious, table.hasNext]).toEqual([true, false]);
    await table.previous();
    expect(table.rangeLabel(null)).toBe('rows 21–40');
    expect(api.calls.map((c) => (c.params as { offset: number }).offset)).toEqual([0, 20, 40, 20]);
    expect(api.calls.every((c) => (c.params as { limit: number }).limit === TABLE_PAGE_ROWS)).toBe(true);
    expect(api.calls[0].params).toMatchObject(QUERY);
  });

  it('drops a page that arrives after a later one was asked for, and after the data changed', async () => {
    const waiting: ((page: DatasetPage) => void)[] = [];
    const api = scriptedApi({
      'datasets.rows': (p) =>
        p.offset === 0 ? Promise.resolve(pageAt(0, p.limit)) : new Promise((resolve) => waiting.push(resolve)),
    });
    const table = new DatasetTable(api);
    await table.open(QUERY);
    const slow = table.next();
    const fast = table.next(); // from the first page again: offset 20 once more
    waiting[1](pageAt(20, 20));
    await fast;
    waiting[0]({ offset: 20, rows: [], more: false }); // stale
    await slow;
    expect(table.rangeLabel(TOTAL_ROWS)).toBe('rows 21–40 of 45');
    const late = table.next();
    table.close();
    waiting[2](pageAt(40, 20));
    await late;
    expect(table.page).toBeNull();
    expect(table.busy).toBe(false);
  });

  it('shows the error of a page that cannot be read', async () => {
    const api = scriptedApi({});
    const table = new DatasetTable(api);
    await table.open(QUERY);
    expect(table.error).toBe('unexpected call datasets.rows');
    expect(table.page).toBeNull();
  });
});

describe('WizardState: removing duplicates', () => {
  it('checks the data again with duplicates dropped, and the started job drops them too', async () => {
    const inspected: DataSettings[] = [];
    const inspection = (data: DataSettings): DatasetInspection => ({
      file: FILE,
      format: 'prompt-completion',
      stats: null,
      badRows: [],
      untrainedRows: [],
      cutRows: data.dropDuplicates ? [{ row: 5, reason: 'the same as row 2: dropped' }] : [],
      duplicates: [{ row: 5, firstRow: 2 }],
      sourceSha256: null,
      previews: [],
    });
    const api = scriptedApi({
      'models.inspect': async () => ({
        source: '/models/tiny',
        kind: 'local',
        architecture: 'llama',
        parameters: 1e6,
        dtype: 'f32',
        sizeBytes: 4e6,
        supported: true,
        reason: null,
        gated: false,
      }),
      'datasets.inspect': async (p) => {
        inspected.push(p.data);
        return inspection(p.data);
      },
      'datasets.rows': async (p) => pageAt(p.offset, p.limit),
    });
    const wizard = new WizardState(api, () => ({
      modelDir: '/models/tiny',
      dataFile: FILE,
      heldOutFile: '/models/held-out.jsonl',
    }));
    await wizard.checkModel();
    await wizard.checkData();
    expect(wizard.facts.dataset?.cutRows).toEqual([]);
    await wizard.dropDuplicates(true);
    expect(inspected.map((d) => d.dropDuplicates)).toEqual([false, true]);
    expect(wizard.facts.dataset?.cutRows).toEqual([{ row: 5, reason: 'the same as row 2: dropped' }]);
    await vi.waitFor(() => expect(wizard.table.page?.offset).toBe(0));
    const rowCalls = api.calls.filter((c) => c.method === 'datasets.rows');
    expect(rowCalls.at(-1)?.params).toMatchObject({ data: { dropDuplicates: true } });
    const paths = { modelDir: '/models/tiny', dataFile: FILE, outDir: '/out' };
    expect(toTrainJob(wizard.form, paths).data.dropDuplicates).toBe(true);
    await wizard.dropDuplicates(false);
    expect(inspected.at(-1)?.dropDuplicates).toBe(false);
  });
});
