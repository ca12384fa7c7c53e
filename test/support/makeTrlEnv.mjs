// The Python environment the handoff tests run the generated TRL project in: a venv with torch, transformers, peft,
// trl, accelerate and datasets at the versions the handoff's requirements.txt pins, installed from pip's configured
// package sources (offline folders on the build machines). The test run calls this first (test/support/globalSetup.ts);
// it never fails the run itself: a venv that cannot be made leaves the handoff tests to fail with the reason
// (test/support/trlEnv.ts).
//   node test/support/makeTrlEnv.mjs        creates or completes $PEFT_TRL_VENV (default ~/.cache/peft-studio/trl-venv)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipSourceArgs } from '../bench/pythonEnv.mjs';

export const TRL_VENV_DIR = process.env.PEFT_TRL_VENV ?? path.join(os.homedir(), '.cache/peft-studio/trl-venv');
export const TRL_VENV_PYTHON = path.join(TRL_VENV_DIR, 'bin/python');

/** The versions the handoff is tested with: main/handoff/requirements.ts pins the same ones. */
export const TRL_PACKAGES = [
  'torch==2.13.0',
  'transformers==5.18.0',
  'peft==0.21.0',
  'trl==1.13.0',
  'accelerate==1.15.0',
  'datasets==5.0.1',
];

const IMPORT_CHECK = 'import torch, transformers, peft, trl, accelerate, datasets; print("ok")';

const lastLine = (text) => (text ?? '').trim().split('\n').pop() ?? '';

/** null when the venv imports every package, else why not (one line). */
export function trlVenvProblem() {
  if (!fs.existsSync(TRL_VENV_PYTHON)) return `no Python venv at ${TRL_VENV_DIR}`;
  const r = spawnSync(TRL_VENV_PYTHON, ['-c', IMPORT_CHECK], { encoding: 'utf8', timeout: 180_000 });
  return r.status === 0 ? null : `${TRL_VENV_PYTHON} cannot import them: ${lastLine(r.stderr || r.error?.message)}`;
}

/** Creates or completes the venv; null on success, else why it failed (one line). */
export function makeTrlVenv(log = () => {}) {
  if (trlVenvProblem() === null) return null;
  if (!fs.existsSync(TRL_VENV_PYTHON)) {
    log(`creating ${TRL_VENV_DIR} (torch, transformers, peft, trl, accelerate, datasets)...`);
    fs.mkdirSync(path.dirname(TRL_VENV_DIR), { recursive: true });
    const made = spawnSync('python3', ['-m', 'venv', TRL_VENV_DIR], { encoding: 'utf8', timeout: 300_000 });
    if (made.status !== 0)
      return `python3 -m venv ${TRL_VENV_DIR} failed: ${lastLine(made.stderr || made.error?.message)}`;
  }
  const args = ['-m', 'pip', 'install', '--quiet', ...pipSourceArgs(), ...TRL_PACKAGES];
  log(`${TRL_VENV_PYTHON} ${args.join(' ')}`);
  const installed = spawnSync(TRL_VENV_PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 28, timeout: 3_600_000 });
  if (installed.status !== 0)
    return `pip install into ${TRL_VENV_DIR} failed: ${lastLine(installed.stderr || installed.error?.message)}`;
  return trlVenvProblem();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const problem = makeTrlVenv((line) => console.log(line));
  // Never fails here: the handoff tests report the reason as their failure.
  console.log(problem === null ? `TRL venv ready: ${TRL_VENV_DIR}` : `TRL venv not available: ${problem}`);
}
