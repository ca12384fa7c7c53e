// The wizard's state class against a scripted StudioApi: what it asks the main process, and what it does with the
// answers (checks in order, stale memory plans dropped, the job it starts).
import { describe, expect, it, vi } from 'vitest';
import type {
  DatasetInspection,
  MemoryFit,
  MethodName,
  ModelInspection,
  Params,
  Result,
  StudioApi,
} from '../../shared/api.js';
import type { RunRecord } from '../../shared/runs.js';
import { CallError } from '../../renderer/src/lib/client.js';
import { WizardState } from '../../renderer/src/lib/wizardState.svelte.js';

const DEMO = { modelDir: '/res/demo/model', dataFile: '/res/demo/data.jsonl', heldOutFile: '/res/demo/held-out.jsonl' };
const MODEL: ModelInspection = {
  source: DEMO.modelDir,
  kind: 'local',
  architecture: 'llama',
  parameters: 1e6,
  dtype: 'f32',
  sizeBytes: 4e6,
  supported: true,
  reason: null,
  gated: false,
};
const DATASET: DatasetInspection = {
  file: DEMO.dataFile,
  format: 'text',
  stats: {
    rows: 3,
    badRows: 0,
    emptyRows: 0,
    duplicateRows: 0,
    tokens: 90,
    trainedTokens: 90,
    truncatedRows: 0,
    cutTokens: 0,
    minLength: 20,
    maxLength: 40,
    meanLength: 30,
    lengthHistogram: [],
    renderedSha256: 'r',
  },
  badRows: [],
  untrainedRows: [],
  sourceSha256: 's',
  previews: [],
};
const fit = (totalBytes: number): MemoryFit => ({
  device: 'cpu',
  totalBytes,
  parts: { weights: 0, checkpoints: 0, layerWorkingSet: 0, logits: 0, optimizerState: 0, runtime: 0 },
  availableBytes: 1000,
  fits: totalBytes <= 1000,
  suggestion: totalBytes <= 1000 ? null : 'turn gradient checkpointing on',
  suggestedBytes: null,
});

type Handler = { [M in MethodName]?: (params: Params<M>) => Promise<Result<M>> };

/** A StudioApi whose methods answer from `handlers`, recording every call. */
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

async function readyWizard(api: StudioApi): Promise<WizardState> {
  const wizard = new WizardState(api, () => DEMO);
  await wizard.checkModel();
  wizard.goTo('data');
  await vi.waitFor(() => expect(wizard.facts.dataset).not.toBeNull());
  return wizard;
}

describe('WizardState', () => {
  it('checks the demo model, then reads the demo data with its tokenizer on entering the data step', async () => {
    const api = scriptedApi({ 'models.inspect': async () => MODEL, 'datasets.inspect': async () => DATASET });
    const wizard = await readyWizard(api);
    expect(wizard.step).toBe('data');
    // Then the first page of its rows, read with the same settings.
    expect(api.calls.map((c) => c.method)).toEqual(['models.inspect', 'datasets.inspect', 'datasets.rows']);
    expect(api.calls[1].params).toMatchObject({
      file: DEMO.dataFile,
      modelDir: DEMO.modelDir,
      data: { skipBadRows: false },
    });
    expect(api.calls[2].params).toMatchObject({ file: DEMO.dataFile, modelDir: DEMO.modelDir, offset: 0, limit: 20 });
    expect(wizard.problems('data')).toEqual([]);
  });

  it("offers the main process's guessed columns, reads the file that way on request, and drops a stale answer", async () => {
    let answerDemo: (d: DatasetInspection) => void = () => {};
    const api = scriptedApi({
      'models.inspect': async () => MODEL,
      'datasets.inspect': async (params) => {
        if (params.file === DEMO.dataFile) return new Promise((resolve) => (answerDemo = resolve));
        if (params.data.format === null)
          throw new CallError('UserError', 'cannot tell the data format', 'data.columns', {
            format: 'prompt-completion',
            columns: { prompt: 'question', completion: 'answer' },
          });
        return { ...DATASET, file: params.file, format: 'prompt-completion' };
      },
    });
    const wizard = new WizardState(api, () => DEMO);
    await wizard.checkModel();
    wizard.goTo('data'); // starts reading the demo data, which answers late
    wizard.form.dataSource = 'file';
    wizard.form.dataFile = '/d/support.csv';
    wizard.dataChanged();
    await wizard.checkData();
    expect(wizard.error).toBe('Columns: cannot tell the data format');
    expect(wizard.dataSuggestion).toEqual({
      format: 'prompt-completion',
      columns: { prompt: 'question', completion: 'answer' },
    });
    answerDemo(DATASET); // the demo's answer arrives after the data changed: dropped
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(wizard.facts.dataset).toBeNull();
    await wizard.applyDataSuggestion();
    expect(api.calls.at(-1)!.params).toMatchObject({
      file: '/d/support.csv',
      data: { format: 'prompt-completion', columns: { prompt: 'question', completion: 'answer' } },
    });
    expect(wizard.facts).toMatchObject({ dataFile: '/d/support.csv', dataset: { format: 'prompt-completion' } });
    expect(wizard.dataSuggestion).toBeNull();
    expect(wizard.problems('data')).toEqual([]);
  });

  it('shows a failed check as its message and stays on the step', async () => {
    const api = scriptedApi({ 'models.inspect': async () => Promise.reject(new Error('/m/config.json: not found')) });
    const wizard = new WizardState(api, () => DEMO);
    wizard.form.modelSource = 'local';
    wizard.form.modelFolder = '/m';
    await wizard.checkModel();
    expect(wizard.error).toBe('/m/config.json: not found');
    expect(wizard.reachable('data')).toBe(false);
    wizard.goTo('data');
    expect(wizard.step).toBe('model');
  });

  it('forgets the data check when the model changes (the preview used the old tokenizer)', async () => {
    const api = scriptedApi({ 'models.inspect': async () => MODEL, 'datasets.inspect': async () => DATASET });
    const wizard = await readyWizard(api);
    wizard.form.modelSource = 'local';
    wizard.modelChanged();
    expect(wizard.facts.dataset).toBeNull();
    expect(wizard.facts.modelDir).toBeNull();
  });

  it('keeps only the newest memory plan when answers arrive out of order', async () => {
    vi.useFakeTimers();
    try {
      const answers: ((fit: MemoryFit) => void)[] = [];
      const api = scriptedApi({
        'models.inspect': async () => MODEL,
        'models.fit': () => new Promise<MemoryFit>((resolve) => answers.push(resolve)),
      });
      const wizard = new WizardState(api, () => DEMO);
      await wizard.checkModel();
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      wizard.form.batchSize = 64;
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      expect(answers).toHaveLength(2);
      answers[1](fit(5000));
      await vi.advanceTimersByTimeAsync(0);
      answers[0](fit(10));
      await vi.advanceTimersByTimeAsync(0);
      expect(wizard.facts.fit?.totalBytes).toBe(5000);
      expect(wizard.facts.fit?.suggestion).toBe('turn gradient checkpointing on');
    } finally {
      vi.useRealTimers();
    }
  });

  it('asks for no memory plan while a setting is invalid, and debounces typing', async () => {
    vi.useFakeTimers();
    try {
      const api = scriptedApi({ 'models.inspect': async () => MODEL, 'models.fit': async () => fit(10) });
      const wizard = new WizardState(api, () => DEMO);
      await wizard.checkModel();
      wizard.form.batchSize = 0;
      wizard.scheduleFit();
      for (const batch of [1, 2, 3]) {
        wizard.form.batchSize = batch;
        wizard.scheduleFit();
        await vi.advanceTimersByTimeAsync(50);
      }
      await vi.advanceTimersByTimeAsync(300);
      const fitCalls = api.calls.filter((c) => c.method === 'models.fit');
      expect(fitCalls).toHaveLength(1);
      expect(fitCalls[0].params).toMatchObject({ config: { batchSize: 3, modelDir: DEMO.modelDir } });
    } finally {
      vi.useRealTimers();
    }
  });

  it('starts the run with the checked paths and an adapter folder under the studio home', async () => {
    const started = { id: 7 } as RunRecord;
    const api = scriptedApi({
      'models.inspect': async () => MODEL,
      'datasets.inspect': async () => DATASET,
      'runs.start': async () => started,
    });
    const wizard = await readyWizard(api);
    wizard.form.steps = 5;
    const run = await wizard.start({ version: '0.1.0', home: '/home/u/.peft-studio', platform: 'linux', arch: 'x64' });
    expect(run).toBe(started);
    const job = (api.calls.at(-1)!.params as Params<'runs.start'>).job;
    expect(job).toMatchObject({ modelDir: DEMO.modelDir, dataFile: DEMO.dataFile, steps: 5 });
    expect(job.outDir).toMatch(/^\/home\/u\/\.peft-studio\/adapters\/run-/);
    // The Electron preload structured-clones the job: plain data only.
    expect(structuredClone(job)).toEqual(job);
  });

  it("holds out the demo data's own held-out rows when a validation split is asked for, and a split of other data", async () => {
    const info = { version: '0.1.0', home: '/home/u/.peft-studio', platform: 'linux', arch: 'x64' };
    const api = scriptedApi({ 'models.inspect': async () => MODEL, 'datasets.inspect': async () => DATASET });
    const wizard = await readyWizard(api);
    wizard.form.evalSplit = 0.1;
    expect(wizard.recipe(info)).toMatchObject({ evalDataFile: DEMO.heldOutFile, evalSplit: 0 });
    wizard.form.evalSplit = 0;
    expect(wizard.recipe(info)).toMatchObject({ evalDataFile: null, evalSplit: 0 });

    wizard.form.dataSource = 'file';
    wizard.form.dataFile = '/data/support.csv';
    wizard.form.evalSplit = 0.2;
    await wizard.checkData();
    expect(wizard.recipe(info)).toMatchObject({ dataFile: '/data/support.csv', evalDataFile: null, evalSplit: 0.2 });
  });

  it('starts the run with the name given in the Review step, and leaves the name to the studio when it is empty', async () => {
    const api = scriptedApi({
      'models.inspect': async () => MODEL,
      'datasets.inspect': async () => DATASET,
      'runs.start': async () => ({ id: 8 }) as RunRecord,
    });
    const wizard = await readyWizard(api);
    const info = { version: '0.1.0', home: '/home/u/.peft-studio', platform: 'linux', arch: 'x64' };
    wizard.form.runName = '  support bot  ';
    await wizard.start(info);
    expect((api.calls.at(-1)!.params as Params<'runs.start'>).name).toBe('support bot');
    wizard.form.runName = ' ';
    await wizard.start(info);
    expect(api.calls.at(-1)!.params).not.toHaveProperty('name');
  });
});
