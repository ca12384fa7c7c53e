// models.catalogueFit over the real parts: every catalogue model planned by the memory planner (real graphs compiled
// and walked) with the studio's default settings, against 4 to 24 GiB; then the same call through the built studio
// API, which answers it from a worker thread while the API thread stays free.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CATALOGUE_BUDGETS_GIB,
  catalogueFitConfigSchema,
  type CatalogueFit,
  type CatalogueFitConfig,
} from '../../shared/api.js';
import { defaultTrainJob } from '../../shared/trainJob.js';
import { planCatalogueFit } from '../../main/studio/services/memoryFit.js';
import type { createStudioApi as CreateStudioApi, StudioService } from '../../main/studio/studioApi.js';
import { ROOT } from '../support/cli.js';

const GIB = 2 ** 30;
/** The wizard's defaults (LoRA r 16 on q, k, v, o; 4 rows of 512 tokens; checkpointing; AdamW), on the CPU. */
const DEFAULTS: CatalogueFitConfig = catalogueFitConfigSchema.parse({
  ...defaultTrainJob('lora', { modelDir: 'm', dataFile: 'd', outDir: 'o' }),
  device: 'cpu',
});
const RANK = { none: 0, change: 1, fits: 2 } as const;

let asChosen: CatalogueFit;
let quantized: CatalogueFit;
beforeAll(() => {
  const started = performance.now();
  asChosen = planCatalogueFit(DEFAULTS);
  console.log(`catalogue table, default settings: ${Math.round(performance.now() - started)} ms`);
  quantized = planCatalogueFit({ ...DEFAULTS, quantize: 'nf4' });
});

const row = (fit: CatalogueFit, repoId: string) => fit.models.find((m) => m.repoId === repoId)!;
const LLAMA_8B = 'meta-llama/Llama-3.1-8B-Instruct';

describe('the catalogue fit', () => {
  it('has one cell per budget for every model, each consistent with its planned bytes', () => {
    expect(asChosen.device).toBe('cpu');
    expect(asChosen.availableBytes).toBe(os.totalmem());
    expect(asChosen.models).toHaveLength(15);
    for (const model of [...asChosen.models, ...quantized.models]) {
      expect(model.cells.map((c) => c.budgetBytes)).toEqual(CATALOGUE_BUDGETS_GIB.map((gib) => gib * GIB));
      for (const cell of model.cells) {
        const where = `${model.name} at ${cell.budgetBytes / GIB} GiB`;
        if (cell.verdict === 'fits') {
          expect(cell.plannedBytes, where).toBe(model.totalBytes);
          expect(model.totalBytes, where).toBeLessThanOrEqual(cell.budgetBytes);
        } else {
          expect(model.totalBytes, where).toBeGreaterThan(cell.budgetBytes);
        }
        if (cell.verdict === 'change') {
          expect(cell.plannedBytes, where).toBeLessThanOrEqual(cell.budgetBytes);
          // The short label names the setting the plan's own words change, with the same value.
          const [, setting, value] = /^(nf4|checkpointing|batch|seq|rank) ?(\d*)$/.exec(cell.change!)!;
          const detail = {
            nf4: /^quantize the base weights to 4 bits \(nf4\)$/,
            checkpointing: /^turn gradient checkpointing on$/,
            batch: new RegExp(`^batch size ${value} \\(was 4\\)$`),
            seq: new RegExp(`^max sequence length ${value} \\(was 512\\)$`),
            rank: new RegExp(`^LoRA rank ${value} \\(was 16\\)$`),
          }[setting]!;
          expect(cell.changeDetail, where).toMatch(detail);
        } else {
          expect([cell.change, cell.changeDetail], where).toEqual([null, null]);
        }
      }
    }
  });

  it('is monotone in the budget: what fits in less memory fits in more', () => {
    for (const model of [...asChosen.models, ...quantized.models]) {
      const ranks = model.cells.map((c) => RANK[c.verdict]);
      expect(ranks, model.name).toEqual([...ranks].sort((a, b) => a - b));
      const [at6, at8] = [6, 8].map((gib) => model.cells.find((c) => c.budgetBytes === gib * GIB)!.verdict);
      if (at6 === 'fits') expect(at8, model.name).toBe('fits');
      if (at6 !== 'none') expect(at8, model.name).not.toBe('none');
    }
  });

  it('Llama 3.1 8B: nothing fits 4 GiB, not even nf4; 8 GiB takes more than as chosen; 16 GiB needs nf4', () => {
    const llama = row(asChosen, LLAMA_8B);
    const at = (gib: number) => llama.cells.find((c) => c.budgetBytes === gib * GIB)!;
    expect(at(4).verdict).toBe('none');
    expect(row(quantized, LLAMA_8B).totalBytes).toBeGreaterThan(4 * GIB);
    expect(at(8).verdict).not.toBe('fits');
    if (at(8).verdict === 'change') expect(at(8).change).toBe('nf4');
    expect(at(16)).toMatchObject({
      verdict: 'change',
      change: 'nf4',
      plannedBytes: row(quantized, LLAMA_8B).totalBytes,
    });
  });

  it('plans every 7-8B model smaller with an nf4 base, and never suggests nf4 when it is chosen', () => {
    const large = asChosen.models.filter((m) => / [78]B$/.test(m.name));
    expect(large.map((m) => m.name)).toEqual(['Qwen2.5 7B', 'Qwen3 8B', 'Llama 3.1 8B', 'Mistral 7B']);
    for (const model of large) {
      const nf4 = row(quantized, model.repoId).totalBytes;
      // 4-bit codes save over 3 of the 2 bytes per weight's 4 GB-plus: at least a few GiB.
      expect(nf4, model.name).toBeLessThan(model.totalBytes - 3 * GIB);
    }
    for (const model of quantized.models)
      for (const cell of model.cells) expect(cell.change, model.name).not.toBe('nf4');
  });

  it('SmolLM2 135M fits everywhere as chosen, with or without nf4', () => {
    for (const fit of [asChosen, quantized]) {
      const smol = row(fit, 'HuggingFaceTB/SmolLM2-135M-Instruct');
      expect(smol.cells.map((c) => c.verdict)).toEqual(CATALOGUE_BUDGETS_GIB.map(() => 'fits'));
      expect(smol.totalBytes).toBeLessThan(4 * GIB);
    }
  });

  it('follows the settings: a longer sequence plans every model larger', () => {
    const longer = planCatalogueFit({ ...DEFAULTS, maxSeqLen: 1024 });
    for (const model of longer.models)
      expect(model.totalBytes, model.name).toBeGreaterThan(row(asChosen, model.repoId).totalBytes);
  });
});

describe('models.catalogueFit through the built studio API', () => {
  let root: string;
  let api: StudioService;
  beforeAll(async () => {
    const { createStudioApi } = (await import(path.join(ROOT, 'dist/main/studio/studioApi.js'))) as {
      createStudioApi: typeof CreateStudioApi;
    };
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-catalogue-'));
    api = createStudioApi({
      home: path.join(root, 'home'),
      homeEnvironment: { env: { XDG_DATA_HOME: path.join(root, 'data') }, platform: 'linux' },
    });
  });
  afterAll(async () => {
    await api?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('answers from a worker thread: the API answers other calls meanwhile, and the table matches', async () => {
    const started = performance.now();
    const pending = api.call('models.catalogueFit', { config: DEFAULTS });
    let answeredMeanwhile = 0;
    let done = false;
    void pending.finally(() => (done = true));
    while (!done) {
      const asked = performance.now();
      await api.call('app.info', {});
      // A call that waited for the plans would take seconds; the API thread answers at once.
      expect(performance.now() - asked).toBeLessThan(500);
      answeredMeanwhile++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const fit = await pending;
    console.log(`models.catalogueFit through the API (worker thread): ${Math.round(performance.now() - started)} ms`);
    expect(answeredMeanwhile).toBeGreaterThan(1);
    expect(fit).toEqual(asChosen);
    // Params are checked by the contract before any plan is made.
    await expect(api.dispatch('models.catalogueFit', { config: { ...DEFAULTS, batchSize: 0 } })).rejects.toThrow(
      /params\.config\.batchSize/,
    );
  });
});
