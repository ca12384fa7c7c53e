// The Settings step's "Which models fit" table against a scripted StudioApi: asked with the form's settings (no model
// folder) on that step only, debounced with the memory plan, one call at a time and not twice in a row for the same
// settings; and the words and tooltips of its cells.
import { describe, expect, it, vi } from 'vitest';
import type {
  CatalogueFit,
  CatalogueFitCell,
  DatasetInspection,
  MemoryFit,
  MethodName,
  ModelInspection,
  Params,
  Result,
  StudioApi,
} from '../../shared/api.js';
import {
  catalogueCellText,
  catalogueCellTitle,
  catalogueFitConfig,
  fitConfig,
  initialForm,
} from '../../renderer/src/lib/wizard.js';
import { WizardState } from '../../renderer/src/lib/wizardState.svelte.js';

const GIB = 2 ** 30;
const DEMO = { modelDir: '/res/demo/model', dataFile: '/res/demo/data.jsonl', heldOutFile: '/res/demo/held-out.jsonl' };
const MODEL = { source: DEMO.modelDir, kind: 'local', supported: true } as ModelInspection;
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
const FIT = { device: 'cpu', totalBytes: 10, availableBytes: 1000, fits: true } as MemoryFit;

const cell = (verdict: CatalogueFitCell['verdict'], plannedBytes: number, change: string | null = null) => ({
  budgetBytes: 4 * GIB,
  verdict,
  change,
  changeDetail: change === 'nf4' ? 'quantize the base weights to 4 bits (nf4)' : null,
  plannedBytes,
});
const catalogue = (totalBytes: number): CatalogueFit => ({
  device: 'cpu',
  availableBytes: 16 * GIB,
  models: [{ repoId: 'Qwen/Qwen3-8B', name: 'Qwen3 8B', totalBytes, cells: [cell('none', totalBytes)] }],
});

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

/** A wizard on the Settings step with the demo model and data checked; timers are Vitest's fake ones. */
async function onSettingsStep(api: StudioApi): Promise<WizardState> {
  const wizard = new WizardState(api, () => DEMO);
  await wizard.checkModel();
  wizard.goTo('data');
  await vi.advanceTimersByTimeAsync(0);
  wizard.goTo('method');
  wizard.goTo('settings');
  expect(wizard.step).toBe('settings');
  return wizard;
}

const catalogueCalls = (api: ReturnType<typeof scriptedApi>) =>
  api.calls.filter((c) => c.method === 'models.catalogueFit').map((c) => c.params as Params<'models.catalogueFit'>);

describe('the catalogue table in the wizard', () => {
  it("asks with the form's settings and no model, one plan at a time, only for settings not asked last", async () => {
    vi.useFakeTimers();
    try {
      const answers: ((fit: CatalogueFit) => void)[] = [];
      const api = scriptedApi({
        'models.inspect': async () => MODEL,
        'datasets.inspect': async () => DATASET,
        'models.fit': async () => FIT,
        'models.catalogueFit': () => new Promise<CatalogueFit>((resolve) => answers.push(resolve)),
      });
      const wizard = await onSettingsStep(api);
      const first = wizard.form.batchSize;
      expect([1, 2, 16]).not.toContain(first);
      // Debounced with the memory plan: nothing before the pause, then both.
      expect(catalogueCalls(api)).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(300);
      expect(catalogueCalls(api)).toEqual([{ config: catalogueFitConfig(wizard.form) }]);
      expect(catalogueCalls(api)[0].config).not.toHaveProperty('modelDir');
      expect(wizard.catalogueBusy).toBe(true);

      // An edit that leaves the plan's settings as they were (the learning rate) asks for the memory plan only.
      wizard.form.learningRate = 1e-3;
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      expect(catalogueCalls(api)).toHaveLength(1);
      expect(api.calls.filter((c) => c.method === 'models.fit')).toHaveLength(2);

      // Edits while the plans run: none is asked until they answer, then only the newest settings.
      for (const batch of [1, 16]) {
        wizard.form.batchSize = batch;
        wizard.scheduleFit();
        await vi.advanceTimersByTimeAsync(300);
      }
      wizard.form.device = 'cpu';
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      expect(catalogueCalls(api)).toHaveLength(1);
      answers[0](catalogue(10 * GIB));
      await vi.advanceTimersByTimeAsync(0);
      expect(wizard.catalogue?.models[0].totalBytes).toBe(10 * GIB);
      expect(wizard.catalogueBusy).toBe(true);
      expect(catalogueCalls(api)).toHaveLength(2);
      expect(catalogueCalls(api)[1].config).toMatchObject({ batchSize: 16, device: 'cpu' });
      answers[1](catalogue(20 * GIB));
      await vi.advanceTimersByTimeAsync(0);
      expect(wizard.catalogue?.models[0].totalBytes).toBe(20 * GIB);
      expect(wizard.catalogueBusy).toBe(false);
      expect(wizard.catalogueError).toBeNull();

      // Back to settings already asked while they were in flight: not asked again.
      wizard.form.batchSize = 2;
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      wizard.form.batchSize = 16;
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      expect(catalogueCalls(api).map((c) => c.config.batchSize)).toEqual([first, 16, 2]);
      answers[2](catalogue(15 * GIB));
      await vi.advanceTimersByTimeAsync(0);
      expect(catalogueCalls(api).map((c) => c.config.batchSize)).toEqual([first, 16, 2, 16]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('is not asked off the Settings step, nor while a setting is invalid', async () => {
    vi.useFakeTimers();
    try {
      const api = scriptedApi({
        'models.inspect': async () => MODEL,
        'datasets.inspect': async () => DATASET,
        'models.fit': async () => FIT,
        'models.catalogueFit': async () => catalogue(GIB),
      });
      const wizard = await onSettingsStep(api);
      wizard.form.batchSize = 0;
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      expect(catalogueCalls(api)).toHaveLength(0);
      wizard.form.batchSize = 2;
      wizard.goTo('review');
      await vi.advanceTimersByTimeAsync(300);
      expect(api.calls.at(-1)!.method).toBe('models.fit');
      expect(catalogueCalls(api)).toHaveLength(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('shows a failure as its message, and asks again for the same settings on the next edit', async () => {
    vi.useFakeTimers();
    try {
      let fail = true;
      const api = scriptedApi({
        'models.inspect': async () => MODEL,
        'datasets.inspect': async () => DATASET,
        'models.fit': async () => FIT,
        'models.catalogueFit': async () => {
          if (fail) throw new Error('planCatalogueFit: its worker thread exited with code 1 before answering');
          return catalogue(GIB);
        },
      });
      const wizard = await onSettingsStep(api);
      await vi.advanceTimersByTimeAsync(300);
      expect(wizard.catalogueError).toMatch(/worker thread exited/);
      expect(wizard.catalogue).toBeNull();
      fail = false;
      wizard.scheduleFit();
      await vi.advanceTimersByTimeAsync(300);
      expect(catalogueCalls(api)).toHaveLength(2);
      expect(wizard.catalogueError).toBeNull();
      expect(wizard.catalogue?.models[0].name).toBe('Qwen3 8B');
    } finally {
      vi.useRealTimers();
    }
  });

  it('plans the catalogue with exactly the settings the memory plan reads', () => {
    const form = { ...initialForm(), method: 'prompt-tuning' as const, numVirtualTokens: 12, quantize: 'nf4' as const };
    const { modelDir, ...settings } = fitConfig(form, '/m');
    expect(modelDir).toBe('/m');
    expect(catalogueFitConfig(form)).toEqual(settings);
    expect(settings).toMatchObject({
      method: 'prompt-tuning',
      promptTuning: { numVirtualTokens: 12 },
      quantize: 'nf4',
    });
  });

  it('says each cell in a word, and its planned peak in the tooltip', () => {
    expect(catalogueCellText(cell('fits', 1.5 * GIB))).toBe('fits');
    expect(catalogueCellTitle(cell('fits', 1.5 * GIB))).toBe('Fits as chosen: peak 1.5 GiB of 4.0 GiB');
    expect(catalogueCellText(cell('change', 3.2 * GIB, 'nf4'))).toBe('nf4');
    expect(catalogueCellTitle(cell('change', 3.2 * GIB, 'nf4'))).toBe(
      'Fits with quantize the base weights to 4 bits (nf4): peak 3.2 GiB of 4.0 GiB',
    );
    expect(catalogueCellText(cell('none', 24 * GIB))).toBe('no');
    expect(catalogueCellTitle(cell('none', 24 * GIB))).toBe(
      'Does not fit, and no single change makes it: peak 24.0 GiB as chosen',
    );
  });
});
