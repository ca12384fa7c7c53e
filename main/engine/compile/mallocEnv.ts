// glibc's allocator settings for the processes that run ONNX Runtime sessions: the engine process of a run
// (process/host.ts) and the CLI's decoding commands (cli/bin.ts). glibc reads them from the environment at start, and
// the user's own environment wins over them. Pure, so that the CLI reads them without loading the engine.
import type { QuantizeChoice } from '../../../shared/training.js';

/**
 * glibc's mmap threshold for the engine process of a run (process/host.ts), or null for glibc's own. A 4-bit
 * base (QLoRA: the large models) fixes it at 4 MiB, so that each call's large buffers go back to the system when
 * freed: an 8B step peaked at 5.40 GiB so, 5.77 without. Other runs keep glibc's own, which after the first large free
 * serves buffers up to 32 MiB from a heap that reuses them: mapping and faulting them in at every call halved the
 * speed of a 135M step (90-110 against 183-223 tokens/s on 2 cores, docs/benchmarks.md).
 */
export function engineMmapThreshold(quantize: QuantizeChoice): number | null {
  return quantize === 'none' ? null : 4 * 2 ** 20;
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
 * The engine process's environment (glibc reads it at start): one malloc arena, and for a 4-bit base the fixed mmap
 * threshold and huge pages. By default glibc gives each thread that allocates an arena of its own, and frees go back
 * to the arena that served them: a bf16 step's peak moved between 447 and 646 MiB across identical runs with the
 * heaps backed by huge pages, as where transparent huge pages are always on (planned 398). With one arena it stayed at
 * 391-400, and a 135M step ran no slower.
 */
export function engineMallocEnv(quantize: QuantizeChoice): Record<string, string> {
  const threshold = engineMmapThreshold(quantize);
  return {
    MALLOC_ARENA_MAX: '1',
    ...(threshold === null ? {} : { MALLOC_MMAP_THRESHOLD_: String(threshold), ...HUGE_PAGE_MALLOC_ENV }),
  };
}
