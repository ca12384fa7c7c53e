// glibc's allocator settings for the processes that run ONNX Runtime sessions: the engine process of a run
// (process/host.ts) and the CLI's decoding commands (cli/bin.ts). glibc reads them from the environment at start, and
// the user's own environment wins over them. Pure, so that the CLI reads them without loading the engine.
import type { QuantizeChoice } from '../../../shared/training.js';

/**
 * glibc's mmap threshold for the engine process of a run (process/host.ts): buffers at or above it are mapped when
 * allocated and go back to the system when freed. A 4-bit base (QLoRA: the large models) fixes it at 4 MiB: an 8B
 * step peaked at 5.40 GiB so, 5.77 without. Other runs fix it at 32 MiB, where glibc's own rises to after the first
 * large free, so that tensors come from a heap that reuses them (HEAP_REUSE_MALLOC_ENV): mapping and faulting them in
 * at every call halved the speed of a 135M step (90-110 against 183-223 tokens/s on 2 cores, docs/benchmarks.md).
 */
function engineMmapThreshold(quantize: QuantizeChoice): number {
  return quantize === 'none' ? 32 * 2 ** 20 : 4 * 2 ** 20;
}

/**
 * glibc's tunable that backs malloc's heaps and large blocks with transparent huge pages (2 MiB), where the kernel
 * grants them on request (its default, `madvise`, on most distributions; glibc before 2.35 ignores it). Weights that
 * ONNX Runtime copies or packs into the heap are then read through 512 times fewer pages, and a block mapped fresh
 * faults in 2 MiB at a time: a 135M model decoded 50-53 tokens/s with it against 34-38 without, and a 4-bit 135M
 * step ran 106-125 against 74-78 tokens/s, for 0.02-0.07 GiB more peak RSS. An fp32 step gained within the noise.
 */
export const HUGE_PAGE_MALLOC_ENV: Readonly<Record<string, string>> = { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' };

/**
 * glibc's tunables for the engine process of a run whose base is not 4-bit: freed blocks merge and stay for reuse.
 * - `tcache_count=0`: no per-thread cache of small freed chunks. A cached chunk is never merged with its free
 *   neighbours, so a few hundred bytes left between two freed tensors kept them apart, and the next larger tensor
 *   grew the heap: a 135M step's heap reached 280-390 MiB around 100-180 MiB in use.
 * - `mmap_threshold` at engineMmapThreshold's 32 MiB, where glibc's own ends up: set here because fixing the trim
 *   threshold stops glibc from moving it.
 * - `trim_threshold` 128 MiB: merged free space at the top of the heap stays for the next call. With glibc's own
 *   (twice the mmap threshold) it went back to the system and was faulted in again at every call.
 * A 135M step at 4 x 256 (30 layers, checkpointing on, 2 cores) peaked at 0.86 GiB (0.855-0.860) against 0.95-0.99
 * with glibc's defaults, at 207-233 tokens/s against 167-200, alternated.
 */
const HEAP_REUSE_MALLOC_ENV: Readonly<Record<string, string>> = {
  GLIBC_TUNABLES: [
    'glibc.malloc.tcache_count=0',
    `glibc.malloc.mmap_threshold=${engineMmapThreshold('none')}`,
    `glibc.malloc.trim_threshold=${128 * 2 ** 20}`,
  ].join(':'),
};

/**
 * The engine process's environment (glibc reads it at start): one malloc arena; for a 4-bit base the 4 MiB mmap
 * threshold and huge pages, for any other the heap kept for reuse. By default glibc gives each thread that allocates
 * an arena of its own, and frees go back to the arena that served them: a bf16 step's peak moved between 447 and
 * 646 MiB across identical runs with the heaps backed by huge pages, as where transparent huge pages are always on
 * (planned 398). With one arena it stayed at 391-400, and a 135M step ran no slower.
 */
export function engineMallocEnv(quantize: QuantizeChoice): Record<string, string> {
  if (quantize === 'none') return { MALLOC_ARENA_MAX: '1', ...HEAP_REUSE_MALLOC_ENV };
  return {
    MALLOC_ARENA_MAX: '1',
    MALLOC_MMAP_THRESHOLD_: String(engineMmapThreshold(quantize)),
    ...HUGE_PAGE_MALLOC_ENV,
  };
}
