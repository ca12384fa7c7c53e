// How many CPU threads the engine's ONNX Runtime pools get: chosen on purpose for every session, never left to ORT
// (whose own default measured one busy core on a 2-core VM), and split when generation runs beside training.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Physical cores on Linux (sibling hyperthreads counted once), where sysfs tells; null elsewhere. MLAS's matrix
 * kernels saturate a core's vector units, so a second hyperthread on it adds switching, not throughput.
 */
function physicalCores(): number | null {
  const root = '/sys/devices/system/cpu';
  try {
    const cores = new Set<string>();
    for (const name of fs.readdirSync(root)) {
      if (!/^cpu\d+$/.test(name)) continue;
      const siblings = path.join(root, name, 'topology', 'thread_siblings_list');
      if (fs.existsSync(siblings)) cores.add(fs.readFileSync(siblings, 'utf8').trim());
    }
    return cores.size || null;
  } catch {
    return null;
  }
}

/**
 * Intra-op threads for the engine: the job's or setting's own number, else the cores this process may use
 * (`os.availableParallelism()` honours CPU affinity and quotas), physical ones where the system tells them apart.
 * ORT's own default measured one busy core on a 2-core VM, so the count is always set.
 */
export function engineThreads(requested: number | null | undefined): number {
  if (requested) return requested;
  const available = os.availableParallelism();
  return Math.max(1, Math.min(available, physicalCores() ?? available));
}

/**
 * Threads for a generation session while training engines use `busy` threads: with none, the engine's own count;
 * beside training, what the cores leave (at least one) and no spinning, so the two pools do not take turns burning
 * each other's cores.
 */
export function generationThreads(
  requested: number | null | undefined,
  busy: number,
): { threads: number; spinning: boolean } {
  const own = engineThreads(requested);
  if (busy === 0) return { threads: own, spinning: true };
  return { threads: Math.max(1, Math.min(own, engineThreads(null) - busy)), spinning: false };
}
