// Which GPU a handed-off recipe needs under each accelerate config: the studio's memory plan of the same job on a CUDA
// device (main/engine/compile/memoryPlan.ts), with the base weights split across the GPUs where FSDP or ZeRO-3 shard
// them. An estimate from our engine's model of memory, not a measurement of PyTorch's.
import type { TrainJob } from '../../shared/training.js';
import { planTrainingMemory } from '../engine/compile/memoryPlan.js';
import type { ModelSpec } from '../model/architecture.js';

const GIB = 2 ** 30;

/** Memory sizes of GPUs commonly rented (GiB): T4/V100 16, A10/L4/4090 24, A100 40 and 80, L40S 48, H200 141. */
const GPU_SIZES_GIB = [16, 24, 40, 48, 80, 141];

/** What PyTorch's CUDA context and caching allocator add beyond tensors, and the headroom kept on top (estimates). */
const CUDA_CONTEXT_BYTES = 1 * GIB;
const HEADROOM = 1.1;

export interface GpuAdviceRow {
  config: string;
  gpus: number;
  /** Estimated peak per GPU, float32 weights (train.py's default) and bfloat16 ones (TRAIN_DTYPE=bfloat16). */
  float32Bytes: number;
  bfloat16Bytes: number;
  /** The smallest common GPU size (GiB) the float32 and bfloat16 estimates fit, or null past the largest. */
  float32Gpu: number | null;
  bfloat16Gpu: number | null;
}

function perGpuBytes(job: TrainJob, spec: ModelSpec, weightBytes: number, shards: number): number {
  const plan = planTrainingMemory({
    spec,
    weightBytesPerElement: weightBytes,
    quantize: job.quantize,
    method: job.method,
    lora: { rank: job.lora.rank, targets: job.lora.targets },
    numVirtualTokens: job.promptTuning.numVirtualTokens,
    batchSize: job.batchSize,
    seqLen: job.maxSeqLen,
    gradientCheckpointing: job.gradientCheckpointing,
    optimizer: job.optimizer.name,
    device: 'cuda',
  });
  // FSDP and ZeRO-3 keep 1/N of the frozen weights on each GPU (gathered a layer at a time); the rest is per GPU.
  return plan.totalBytes - plan.parts.weights + plan.parts.weights / shards + CUDA_CONTEXT_BYTES;
}

const smallestGpu = (bytes: number) => GPU_SIZES_GIB.find((gib) => bytes * HEADROOM <= gib * GIB) ?? null;

export function gpuAdvice(job: TrainJob, spec: ModelSpec): GpuAdviceRow[] {
  const configs: { config: string; gpus: number; shards: number }[] = [
    { config: 'one GPU', gpus: 1, shards: 1 },
    // DDP keeps a whole copy on every GPU: per GPU it needs what one GPU does.
    { config: 'DDP, any number of GPUs', gpus: 8, shards: 1 },
    ...[2, 4, 8].map((gpus) => ({ config: `FSDP on ${gpus} GPUs`, gpus, shards: gpus })),
    ...[2, 4, 8].map((gpus) => ({ config: `DeepSpeed ZeRO-3 on ${gpus} GPUs`, gpus, shards: gpus })),
  ];
  return configs.map(({ config, gpus, shards }) => {
    const float32Bytes = perGpuBytes(job, spec, 4, shards);
    const bfloat16Bytes = perGpuBytes(job, spec, 2, shards);
    return {
      config,
      gpus,
      float32Bytes,
      bfloat16Bytes,
      float32Gpu: smallestGpu(float32Bytes),
      bfloat16Gpu: smallestGpu(bfloat16Bytes),
    };
  });
}

const gib = (bytes: number) => `${(bytes / GIB).toFixed(1)} GiB`;
const gpu = (size: number | null) => (size === null ? 'more than any single GPU' : `${size} GB GPU`);

/** The advice as a Markdown table, with what it is. */
export function gpuAdviceMarkdown(rows: GpuAdviceRow[]): string {
  return [
    '| config | per GPU, float32 (default) | needs | per GPU, bfloat16 | needs |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.config} | ${gib(r.float32Bytes)} | ${gpu(r.float32Gpu)} | ${gib(r.bfloat16Bytes)} | ${gpu(r.bfloat16Gpu)} |`,
    ),
  ].join('\n');
}

/** The GPU a SkyPilot task asks for: the smallest common one the one-GPU float32 estimate fits, else an 80 GB one. */
export function skyAccelerator(rows: GpuAdviceRow[]): string {
  const size = rows[0]?.float32Gpu ?? 80;
  const names: Record<number, string> = { 16: 'T4', 24: 'L4', 40: 'A100', 48: 'L40S', 80: 'A100-80GB', 141: 'H200' };
  return `${names[size] ?? 'A100-80GB'}:1`;
}
