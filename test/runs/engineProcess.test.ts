// The engine process its host forks: how its one error reaches the host (as a WireError, rebuilt by fromWire: a
// UserError stays a UserError, one line; an engine that ends without answering is an EngineExitError), and the
// allocator settings it runs with, read back from its environment (mallocEnv.ts).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type * as Errors from '../../shared/errors.js';
import type { BenchJob, QuantizeChoice } from '../../shared/training.js';
import type * as Host from '../../main/engine/process/host.js';
import { engineMallocEnv } from '../../main/engine/compile/mallocEnv.js';
import { ROOT } from '../support/cli.js';

// The built modules: the host forks dist/main/engine/process/worker.js, and its errors are dist's classes.
const { runEngine, EngineExitError } = (await import(
  path.join(ROOT, 'dist/main/engine/process/host.js')
)) as typeof Host;
const { UserError } = (await import(path.join(ROOT, 'dist/shared/errors.js'))) as typeof Errors;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-errors-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const bench = (modelDir: unknown): BenchJob => ({
  modelDir: modelDir as string,
  seqLen: 8,
  batchSize: 1,
  steps: 1,
  rank: 2,
  gradientCheckpointing: true,
  device: 'cpu',
});

describe('engine errors', () => {
  it('a UserError thrown in the engine arrives as a UserError with its message on one line', async () => {
    const missing = path.join(root, 'no such\nmodel');
    const error = await runEngine({ kind: 'bench', job: bench(missing) }, () => {}).result.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toBe(`${path.join(root, 'no such model')}: model folder not found`);
  });

  it('any other error arrives as an Error with its name, never as a UserError', async () => {
    // path.resolve refuses a number: a TypeError, as a bug in the engine would throw.
    const error = await runEngine({ kind: 'bench', job: bench(42) }, () => {}).result.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(UserError);
    expect(error).toMatchObject({ name: 'TypeError', message: expect.stringContaining('must be of type string') });
  });

  it('an engine killed before it answers is an EngineExitError with its signal', async () => {
    const run = runEngine({ kind: 'bench', job: bench(path.join(root, 'never read')) }, () => {});
    run.cancel();
    const error = await run.result.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(EngineExitError);
    expect(error).toMatchObject({ signal: 'SIGKILL', message: 'the engine process was killed (SIGKILL)' });
  });
});

/** The allocator variables of an engine process for a bench job on a missing folder (it ends in a one-line error). */
async function allocatorEnvironment(quantize: QuantizeChoice, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const run = runEngine({ kind: 'bench', job: { ...bench(path.join(root, 'missing')), quantize } }, () => {});
    // The spawn has exec'd by the time it returns; Node takes far longer to reach the job. Once the dynamic loader has
    // read GLIBC_TUNABLES, it has split the value in place (each ':' a NUL): the parts are joined again.
    const environ = fs
      .readFileSync(`/proc/${run.pid}/environ`, 'utf8')
      .replace(/\0(?=glibc\.)/g, ':')
      .split('\0');
    await expect(run.result).rejects.toThrow(/model folder not found/);
    return environ.filter((v) => /^(MALLOC_|GLIBC_TUNABLES=)/.test(v)).sort();
  } finally {
    for (const key of Object.keys(env)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

describe.runIf(process.platform === 'linux')('the engine process', () => {
  it('runs with one malloc arena, and for a 4-bit base with the 4 MiB mmap threshold and huge pages', async () => {
    expect(await allocatorEnvironment('none')).toEqual([
      `GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=${32 * 2 ** 20}:glibc.malloc.trim_threshold=${128 * 2 ** 20}`,
      'MALLOC_ARENA_MAX=1',
    ]);
    expect(await allocatorEnvironment('nf4')).toEqual([
      'GLIBC_TUNABLES=glibc.malloc.hugetlb=1',
      'MALLOC_ARENA_MAX=1',
      `MALLOC_MMAP_THRESHOLD_=${4 * 2 ** 20}`,
    ]);
  });

  it('hands glibc tunables it takes: the dynamic loader reads them back', () => {
    const loader = ['/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1'].find((f) => fs.existsSync(f))!;
    const tunables = (quantize: QuantizeChoice) =>
      execFileSync(loader, ['--list-tunables'], { env: engineMallocEnv(quantize), encoding: 'utf8' });
    const plain = tunables('none');
    expect(plain).toMatch(/^glibc\.malloc\.tcache_count: 0x0 /m);
    expect(plain).toMatch(/^glibc\.malloc\.mmap_threshold: 0x2000000 /m);
    expect(plain).toMatch(/^glibc\.malloc\.trim_threshold: 0x8000000 /m);
    expect(tunables('nf4')).toMatch(/^glibc\.malloc\.hugetlb: 0x1 /m);
  });

  it("keeps the user's own settings", async () => {
    expect(await allocatorEnvironment('none', { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=7' })).toEqual([
      'GLIBC_TUNABLES=glibc.malloc.tcache_count=7',
      'MALLOC_ARENA_MAX=1',
    ]);
    expect(
      await allocatorEnvironment('nf4', { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0', MALLOC_ARENA_MAX: '4' }),
    ).toEqual(['GLIBC_TUNABLES=glibc.malloc.hugetlb=0', 'MALLOC_ARENA_MAX=4', `MALLOC_MMAP_THRESHOLD_=${4 * 2 ** 20}`]);
  });
});
