// How the engine process's one error reaches its host: as a WireError, rebuilt by fromWire (a UserError stays a
// UserError, one line), and an engine that ends without answering as an EngineExitError.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type * as Errors from '../../shared/errors.js';
import type { BenchJob } from '../../shared/training.js';
import type * as Host from '../../main/engine/process/host.js';
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
