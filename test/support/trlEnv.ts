// The Python venv with torch, transformers, peft, trl, accelerate and datasets that the handoff tests run generated
// TRL projects in. `.ci/run` creates it (test/support/makeTrlEnv.mjs); a test that needs it fails with the reason
// when it is not there, never skips.
import { spawn } from 'node:child_process';
import path from 'node:path';
// @ts-expect-error: a plain .mjs module shared with .ci/run, without type declarations
import { TRL_VENV_DIR, TRL_VENV_PYTHON, trlVenvProblem } from './makeTrlEnv.mjs';

let checked: string | null | undefined;

/** The venv's python, or throws one line saying why there is none. */
export function trlPython(): string {
  if (checked === undefined) checked = trlVenvProblem() as string | null;
  if (checked !== null)
    throw new Error(`the TRL venv is not usable (${checked}); create it with: node test/support/makeTrlEnv.mjs`);
  return TRL_VENV_PYTHON as string;
}

/** The venv's bin folder (accelerate lives there). */
export const trlBin = (): string => path.dirname(trlPython());

export const trlVenvDir = TRL_VENV_DIR as string;

/**
 * Runs a program of the venv (`python` or a script of its bin folder, e.g. `accelerate`) without blocking this
 * process (a blocked test worker misses Vitest's RPC deadlines); rejects with the tail of its output when it fails.
 */
export function runInVenv(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  const command = program === 'python' ? trlPython() : path.join(trlBin(), program);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      // One thread per process: CI has two cores, and two DDP ranks share them.
      env: {
        ...process.env,
        OMP_NUM_THREADS: '1',
        TOKENIZERS_PARALLELISM: 'false',
        HF_HUB_OFFLINE: '1',
        ...options.env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ stdout, stderr });
      const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-25).join('\n');
      reject(new Error(`${program} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${tail}`));
    });
  });
}
