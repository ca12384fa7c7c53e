// The model picker's state: the catalogue of suggested models (size, license, what the Hub cache holds) and, for
// each, whether training fits this device with each way of keeping the base weights, from the memory plan of the
// wizard's settings (models.catalogueFit, once per way, each on a worker thread of its own).
import type { CatalogueEntry, CatalogueFitConfig, StudioApi } from '../../../shared/api.js';
import type { QuantizeChoice } from '../../../shared/training.js';
import { describeError } from './wizard.js';

/** The ways of keeping the base weights the picker plans: as stored (16-bit), and 4-bit on load (QLoRA). */
export const PICKER_METHODS = [
  { quantize: 'none', label: 'LoRA', detail: 'LoRA on the weights as stored (16-bit)' },
  { quantize: 'nf4', label: 'QLoRA nf4', detail: 'QLoRA: the weights quantized to 4-bit NormalFloat on load' },
  { quantize: 'int4', label: 'QLoRA int4', detail: 'QLoRA: the weights quantized to 4-bit integers on load' },
] as const satisfies readonly { quantize: QuantizeChoice; label: string; detail: string }[];

/** Download sizes in decimal units (12.3 MB, 1.5 GB), as the Hub shows them and the download's errors say them. */
export function formatDownloadBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ] as const) {
    if (bytes >= size) {
      const value = bytes / size;
      return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${unit}`;
    }
  }
  return `${bytes} B`;
}

export type PickerQuantize = (typeof PICKER_METHODS)[number]['quantize'];

/** One model with one method on this device: the planned peak, and whether it fits (null: the device does not say). */
export interface MethodFit {
  plannedBytes: number;
  fits: boolean | null;
}

export class ModelPickerState {
  entries = $state<CatalogueEntry[] | null>(null);
  entriesError = $state<string | null>(null);
  /** By method, then by repo id; a method absent while its plan runs. */
  fits = $state<Partial<Record<PickerQuantize, Record<string, MethodFit>>>>({});
  fitsError = $state<string | null>(null);
  /** The device the plans are for and what it has. */
  device = $state<{ name: string; availableBytes: number | null } | null>(null);
  private fitsAsked: string | null = null;

  constructor(private readonly api: StudioApi) {}

  /** The catalogue and the cache's state: again after a download (it may now hold a model, or part of one). */
  async loadEntries(): Promise<void> {
    try {
      this.entries = await this.api.call('models.catalogue', {});
      this.entriesError = null;
    } catch (err) {
      this.entriesError = describeError(err);
    }
  }

  /** Plans every model with each method and the wizard's other settings; the same settings are not planned twice. */
  async planFits(settings: CatalogueFitConfig): Promise<void> {
    const asked = JSON.stringify(settings);
    if (asked === this.fitsAsked) return;
    this.fitsAsked = asked;
    this.fits = {};
    this.fitsError = null;
    await Promise.all(
      PICKER_METHODS.map(async ({ quantize }) => {
        try {
          const plan = await this.api.call('models.catalogueFit', {
            config: { ...settings, method: 'lora', quantize },
          });
          if (asked !== this.fitsAsked) return;
          this.device = { name: plan.device, availableBytes: plan.availableBytes };
          const byModel: Record<string, MethodFit> = {};
          for (const model of plan.models) {
            byModel[model.repoId] = {
              plannedBytes: model.totalBytes,
              fits: plan.availableBytes === null ? null : model.totalBytes <= plan.availableBytes,
            };
          }
          this.fits = { ...this.fits, [quantize]: byModel };
        } catch (err) {
          if (asked !== this.fitsAsked) return;
          this.fitsAsked = null; // asked again next time
          this.fitsError = describeError(err);
        }
      }),
    );
  }
}
