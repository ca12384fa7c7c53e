// models.fit: the memory plan of a training configuration against what the chosen device has.
import type { FitConfig, MemoryFit } from '../../../shared/api.js';
import { chooseDevice } from '../../engine/runtime/runtime.js';
import { planTrainingMemory, suggestFit, type MemoryPlanInput } from '../../engine/compile/memoryPlan.js';
import { openModelFolder } from '../../model/modelFolder.js';
import { listDevices } from './devices.js';

const DTYPE_BYTES: ReadonlyMap<string, number> = new Map([
  ['F32', 4],
  ['BF16', 2],
  ['F16', 2],
]);

export function planFit(config: FitConfig): MemoryFit {
  const folder = openModelFolder(config.modelDir);
  const { device } = chooseDevice(config.device);
  // The widest stored weight decides: a mixed checkpoint is planned as if all of it were that wide. A loop, not
  // Math.max(...all): a checkpoint may hold more tensors than a call takes arguments. A 4-bit checkpoint's bytes
  // (U8 codes and quant states) are left out: its other weights decide.
  let weightBytesPerElement = 0;
  for (const t of folder.tensors.values()) {
    if (t.dtype === 'U8' && folder.quantization) continue;
    weightBytesPerElement = Math.max(weightBytesPerElement, DTYPE_BYTES.get(t.dtype) ?? 4);
  }
  const input: MemoryPlanInput = {
    spec: folder.spec,
    weightBytesPerElement: weightBytesPerElement || 4,
    // A bitsandbytes 4-bit checkpoint trains as it is stored, whatever the job asks (the trainer refuses a mismatch).
    quantize: folder.quantization?.quantType ?? config.quantize,
    method: config.method,
    lora: config.lora,
    numVirtualTokens: config.promptTuning.numVirtualTokens,
    batchSize: config.batchSize,
    seqLen: config.maxSeqLen,
    gradientCheckpointing: config.gradientCheckpointing,
    optimizer: config.optimizer.name,
    device,
  };
  const plan = planTrainingMemory(input);
  const availableBytes = listDevices().find((d) => d.device === device)?.memoryBytes ?? null;
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
