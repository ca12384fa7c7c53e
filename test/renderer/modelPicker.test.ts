// The model picker's state and the wizard's download against a scripted StudioApi: the catalogue planned once per
// method with the wizard's settings, each model's fit read against what the device has; a failed download keeps its
// one-line cause and where it stopped, and a retry that succeeds makes the model the wizard's.
import { describe, expect, it } from 'vitest';
import type {
  CatalogueEntry,
  CatalogueFit,
  MethodName,
  ModelInspection,
  ModelRecord,
  Params,
  Result,
  StudioApi,
  StudioEvent,
} from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import { ModelPickerState } from '../../renderer/src/lib/modelPicker.svelte.js';
import { catalogueFitConfig, initialForm } from '../../renderer/src/lib/wizard.js';
import { WizardState } from '../../renderer/src/lib/wizardState.svelte.js';

const GIB = 2 ** 30;
const SMALL = 'HuggingFaceTB/SmolLM2-135M-Instruct';
const LARGE = 'Qwen/Qwen3-8B';

type Handler = { [M in MethodName]?: (params: Params<M>) => Promise<Result<M>> };

function scriptedApi(handlers: Handler) {
  const calls: { method: MethodName; params: unknown }[] = [];
  const listeners = new Set<(event: StudioEvent) => void>();
  const api: StudioApi = {
    call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
      calls.push({ method, params });
      const handler = handlers[method] as ((p: Params<M>) => Promise<Result<M>>) | undefined;
      return handler ? handler(params) : Promise.reject(new Error(`unexpected call ${method}`));
    },
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return { api, calls, emit: (event: StudioEvent) => listeners.forEach((l) => l(event)), listeners };
}

/** The plan of both models for a quantize choice: the large one fits only at 4 bits. */
function plan(quantize: string): CatalogueFit {
  const large = quantize === 'none' ? 20 * GIB : 9 * GIB;
  return {
    device: 'cpu',
    availableBytes: 16 * GIB,
    models: [
      { repoId: SMALL, name: 'SmolLM2 135M', totalBytes: GIB, cells: [] },
      { repoId: LARGE, name: 'Qwen3 8B', totalBytes: large, cells: [] },
    ],
  };
}

describe('the model picker', () => {
  it('plans the catalogue once per method with the wizard settings, and reads each fit against the device', async () => {
    const entries = [{ repoId: SMALL, name: 'SmolLM2 135M', license: 'apache-2.0' } as CatalogueEntry];
    const { api, calls } = scriptedApi({
      'models.catalogue': async () => entries,
      'models.catalogueFit': async (p) => plan(p.config.quantize),
    });
    const picker = new ModelPickerState(api);
    await picker.loadEntries();
    expect(picker.entries).toEqual(entries);

    const form = { ...initialForm(), method: 'prompt-tuning' as const, quantize: 'nf4' as const };
    await picker.planFits(catalogueFitConfig(form));
    const asked = calls.filter((c) => c.method === 'models.catalogueFit').map((c) => c.params);
    // LoRA whatever the form says, each way of keeping the weights; the other settings as the form has them.
    expect(asked).toEqual(
      ['none', 'nf4', 'int4'].map((quantize) => ({
        config: { ...catalogueFitConfig(form), method: 'lora', quantize },
      })),
    );
    expect(picker.fits.none?.[LARGE]).toEqual({ plannedBytes: 20 * GIB, fits: false });
    expect(picker.fits.nf4?.[LARGE]).toEqual({ plannedBytes: 9 * GIB, fits: true });
    expect(picker.fits.int4?.[SMALL]).toEqual({ plannedBytes: GIB, fits: true });
    expect(picker.device).toEqual({ name: 'cpu', availableBytes: 16 * GIB });

    // The same settings are not planned again (seconds of CPU each).
    await picker.planFits(catalogueFitConfig(form));
    expect(calls.filter((c) => c.method === 'models.catalogueFit')).toHaveLength(3);
  });

  it('says why the catalogue could not be planned, and asks again next time', async () => {
    let fail = true;
    const { api } = scriptedApi({
      'models.catalogueFit': async (p) => {
        if (fail) throw new UserError('planning failed: out of memory');
        return plan(p.config.quantize);
      },
    });
    const picker = new ModelPickerState(api);
    const settings = catalogueFitConfig(initialForm());
    await picker.planFits(settings);
    expect(picker.fitsError).toBe('planning failed: out of memory');
    fail = false;
    await picker.planFits(settings);
    expect(picker.fitsError).toBeNull();
    expect(picker.fits.none?.[SMALL]?.fits).toBe(true);
  });
});

describe('downloading the chosen model', () => {
  it('keeps the cause and the progress of a failed download; Retry resumes and makes the model the wizard’s', async () => {
    const folder = `/cache/models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/${'a'.repeat(40)}`;
    const network = `look up model ${SMALL}: cannot reach 127.0.0.1:9 (ECONNREFUSED); check the network connection, then press Retry to resume`;
    let attempt = 0;
    const script = scriptedApi({
      'models.download': async (p) => {
        attempt++;
        script.emit({
          kind: 'download.progress',
          requestId: p.requestId,
          file: 'model.safetensors',
          fileBytes: attempt * 100,
          fileSize: 300,
          doneBytes: attempt * 100,
          totalBytes: 300,
          index: 1,
          count: 1,
        });
        if (attempt === 1) throw new UserError(network);
        return { folder } as ModelRecord;
      },
      'models.inspect': async (p) => ({ source: p.source, kind: 'local', supported: true }) as ModelInspection,
    });
    const wizard = new WizardState(script.api, () => null);
    wizard.form.modelSource = 'hub';
    wizard.form.hubRepo = SMALL;

    await wizard.downloadModel();
    expect(wizard.downloadError).toBe(network);
    expect(wizard.error).toBeNull();
    expect(wizard.download).toMatchObject({ doneBytes: 100, totalBytes: 300 });
    expect(wizard.facts.modelDir).toBeNull();
    expect(wizard.problems('model')).toEqual(['Download the model first.']);
    // Its last progress may come after the answer: still heard, until the next download or another model.
    script.emit({
      kind: 'download.progress',
      requestId: (script.calls[0].params as { requestId: string }).requestId,
      file: 'model.safetensors',
      fileBytes: 150,
      fileSize: 300,
      doneBytes: 150,
      totalBytes: 300,
      index: 1,
      count: 1,
    });
    expect(wizard.download).toMatchObject({ doneBytes: 150 });
    expect(script.listeners.size).toBe(1);

    await wizard.downloadModel();
    expect(wizard.downloadError).toBeNull();
    expect(wizard.download).toBeNull();
    expect(wizard.facts.modelDir).toBe(folder);
    expect(script.listeners.size).toBe(0);
    expect(wizard.facts.model).toMatchObject({ source: folder, kind: 'local', supported: true });
    expect(wizard.problems('model')).toEqual([]);
    expect(script.calls.map((c) => c.method)).toEqual(['models.download', 'models.download', 'models.inspect']);

    // Choosing another model forgets the old one's download state.
    wizard.form.hubRepo = LARGE;
    wizard.modelChanged();
    expect([wizard.facts.modelDir, wizard.download, wizard.downloadError]).toEqual([null, null, null]);
    expect(script.listeners.size).toBe(0);
  });
});
