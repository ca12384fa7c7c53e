// models.fit: the memory plan of a training configuration against what the chosen device has; and
// models.catalogueFit: the same settings planned for every model of the catalogue against common memory sizes.
import {
  CATALOGUE_BUDGETS_GIB,
  type CatalogueFit,
  type CatalogueFitCell,
  type CatalogueFitConfig,
  type FitConfig,
  type MemoryFit,
} from '../../../shared/api.js';
import type { ExecutionDevice, QuantizeChoice } from '../../../shared/training.js';
import { chooseDevice } from '../../engine/runtime/runtime.js';
import { planTrainingMemory, suggestFit, type MemoryPlanInput } from '../../engine/compile/memoryPlan.js';
import type { ModelSpec } from '../../model/architecture.js';
import { catalogueSpecs } from '../../model/catalogue.js';
import { openModelFolder } from '../../model/modelFolder.js';
import { listDevices } from './devices.js';

const DTYPE_BYTES: ReadonlyMap<string, number> = new Map([
  ['F32', 4],
  ['BF16', 2],
  ['F16', 2],
]);

const GIB = 2 ** 30;

/** The base model as the plan sees it: its shape, how wide its stored weights are, and the 4-bit format it runs in. */
interface PlannedBase {
  spec: ModelSpec;
  weightBytesPerElement: number;
  quantize: QuantizeChoice;
}

/** The wizard's settings over one base model, as the memory plan reads them. */
function memoryPlanInput(settings: CatalogueFitConfig, base: PlannedBase, device: ExecutionDevice): MemoryPlanInput {
  return {
    ...base,
    method: settings.method,
    lora: settings.lora,
    numVirtualTokens: settings.promptTuning.numVirtualTokens,
    batchSize: settings.batchSize,
    seqLen: settings.maxSeqLen,
    gradientCheckpointing: settings.gradientCheckpointing,
    optimizer: settings.optimizer.name,
    device,
  };
}

/** What the device has, when it says. */
function deviceMemory(device: ExecutionDevice): number | null {
  return listDevices().find((d) => d.device === device)?.memoryBytes ?? null;
}

export function planFit(config: FitConfig): MemoryFit {
  const folder = openModelFolder(config.modelDir);
  const { device } = chooseDevice(config.device);
  // The widest stored weight decides: a mixed checkpoint is planned as if all of it were that wide. A loop, not
  // Math.max(...all): a checkpoint may hold more tensors than a call takes arguments. A 4-bit checkpoint's quantized
  // weights (codes, scales, maps and quant states) are left out: its other weights decide.
  const quantizedPart = (name: string) =>
    folder.quantized.has(
      name.replace(/\.(?:absmax|scales|nested_absmax|quant_map|nested_quant_map|quant_state\..*)$/, ''),
    );
  let weightBytesPerElement = 0;
  for (const t of folder.tensors.values()) {
    if (quantizedPart(t.name)) continue;
    weightBytesPerElement = Math.max(weightBytesPerElement, DTYPE_BYTES.get(t.dtype) ?? 4);
  }
  const input = memoryPlanInput(
    config,
    {
      spec: folder.spec,
      weightBytesPerElement: weightBytesPerElement || 4,
      // A bitsandbytes 4-bit checkpoint trains as it is stored, whatever the job asks (the trainer refuses a mismatch).
      quantize: folder.quantization?.quantType ?? config.quantize,
    },
    device,
  );
  const plan = planTrainingMemory(input);
  const availableBytes = deviceMemory(device);
  const fits = availableBytes === null ? null : plan.totalBytes <= availableBytes;
  const suggestion = fits === false ? suggestFit(input, availableBytes!) : null;
  return {
    device,
    totalBytes: plan.totalBytes,
    parts: plan.parts,
    availableBytes,
    fits,
    suggestion: suggestion?.change ?? null,
    suggestedBytes: suggestion?.plan.totalBytes ?? null,
  };
}

/** The one setting suggestFit changed, in a word or two for a table cell. */
function shortChange(from: MemoryPlanInput, to: MemoryPlanInput): string {
  if (to.quantize !== from.quantize) return to.quantize;
  if (to.gradientCheckpointing !== from.gradientCheckpointing) return 'checkpointing';
  if (to.batchSize !== from.batchSize) return `batch ${to.batchSize}`;
  if (to.seqLen !== from.seqLen) return `seq ${to.seqLen}`;
  return `rank ${to.lora.rank}`;
}

/**
 * Every catalogue model planned with the wizard's settings on the chosen device, against each budget of
 * CATALOGUE_BUDGETS_GIB: fits as chosen, fits after suggestFit's single change, or does not fit. Catalogue models are
 * full-precision (bf16) checkpoints, so a chosen nf4/fp4/int4 quantizes them on load as it would a downloaded one.
 */
export function planCatalogueFit(config: CatalogueFitConfig): CatalogueFit {
  const { device } = chooseDevice(config.device);
  const budgets = CATALOGUE_BUDGETS_GIB.map((gib) => gib * GIB);
  const models = catalogueSpecs().map(({ repoId, name, spec, weightBytesPerElement }) => {
    const input = memoryPlanInput(config, { spec, weightBytesPerElement, quantize: config.quantize }, device);
    const totalBytes = planTrainingMemory(input).totalBytes;
    const cells = new Array<CatalogueFitCell>(budgets.length);
    // Largest budget first. Every candidate change has one plan whatever the budget, so once none fits a budget,
    // none fits a smaller one: those cells need no more plans (each is a whole graph compile and walk).
    let nothingFits = false;
    for (let i = budgets.length - 1; i >= 0; i--) {
      const budgetBytes = budgets[i];
      const suggestion = totalBytes <= budgetBytes || nothingFits ? null : suggestFit(input, budgetBytes);
      if (totalBytes <= budgetBytes) {
        cells[i] = { budgetBytes, verdict: 'fits', change: null, changeDetail: null, plannedBytes: totalBytes };
      } else if (suggestion) {
        cells[i] = {
          budgetBytes,
          verdict: 'change',
          change: shortChange(input, suggestion.input),
          changeDetail: suggestion.change,
          plannedBytes: suggestion.plan.totalBytes,
        };
      } else {
        nothingFits = true;
        cells[i] = { budgetBytes, verdict: 'none', change: null, changeDetail: null, plannedBytes: totalBytes };
      }
    }
    return { repoId, name, totalBytes, cells };
  });
  return { device, availableBytes: deviceMemory(device), models };
}
