// The engine process's allocator settings, read back from the environment of a real forked engine process: one malloc
// arena for every run, and for a 4-bit base glibc's fixed mmap threshold and huge pages (memoryPlan.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type * as Host from '../../main/engine/process/host.js';
import type { QuantizeChoice } from '../../shared/training.js';
import { ROOT } from '../support/cli.js';

const { runEngine } = (await import(path.join(ROOT, 'dist/main/engine/process/host.js'))) as typeof Host;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-environment-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The allocator variables of an engine process for a bench job on a missing folder (it ends in a one-line error). */
async function allocatorEnvironment(quantize: QuantizeChoice, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const job = {
      modelDir: path.join(root, 'missing'),
      seqLen: 8,
      batchSize: 1,
      steps: 1,
      rank: 2,
      gradientCheckpointing: true,
      device: 'cpu',
      quantize,
    } as const;
    const run = runEngine({ kind: 'bench', job }, () => {});
    // The spawn has exec'd by the time it returns; Node takes far longer to reach the job.
    const environ = fs.readFileSync(`/proc/${run.pid}/environ`, 'utf8').split('\0');
    await expect(run.result).rejects.toThrow(/model folder not found/);
    return environ.filter((v) => /^(MALLOC_|GLIBC_TUNABLES=)/.test(v)).sort();
  } finally {
    for (const key of Object.keys(env)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

describe.runIf(process.platform === 'linux')('the engine process', () => {
  it('runs with one malloc arena, and for a 4-bit base with the 4 MiB mmap threshold and huge pages', async () => {
    expect(await allocatorEnvironment('none')).toEqual(['MALLOC_ARENA_MAX=1']);
    expect(await allocatorEnvironment('nf4')).toEqual([
      'GLIBC_TUNABLES=glibc.malloc.hugetlb=1',
      'MALLOC_ARENA_MAX=1',
      `MALLOC_MMAP_THRESHOLD_=${4 * 2 ** 20}`,
    ]);
  });

  it("keeps the user's own settings", async () => {
    expect(
      await allocatorEnvironment('nf4', { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0', MALLOC_ARENA_MAX: '4' }),
    ).toEqual(['GLIBC_TUNABLES=glibc.malloc.hugetlb=0', 'MALLOC_ARENA_MAX=4', `MALLOC_MMAP_THRESHOLD_=${4 * 2 ** 20}`]);
  });
});
