// The Python interpreters behind the benchmark's reference contenders.
//  - Debian's /usr/bin/python3 with its torch 1.13 (OpenBLAS): the plain PyTorch reference (torch_bench.py,
//    torch_generate_bench.py), as the issues first measured.
//  - A virtual environment with PyTorch 2, transformers, PEFT and gguf from pip: what users would really run, and the
//    GGUF writer for llama.cpp. Created on first use; when that fails its contenders are skipped, with the reason.
//    PEFT_BENCH_VENV=DIR puts it elsewhere.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const VENV_DIR = process.env.PEFT_BENCH_VENV ?? path.join(os.homedir(), '.cache/peft-studio/bench-venv');
export const VENV_PACKAGES = ['torch', 'transformers', 'peft', 'gguf', 'safetensors', 'numpy', 'accelerate'];
const VENV_PYTHON = path.join(VENV_DIR, 'bin/python');

const tail = (text, lines = 6) => (text ?? '').trim().split('\n').slice(-lines).join('\n');

function probe(python, code) {
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 120_000 });
  if (r.status === 0) {
    try {
      return { ok: true, value: JSON.parse(r.stdout.trim().split('\n').pop()) };
    } catch {
      // fall through: not JSON
    }
  }
  return { ok: false, reason: tail(r.stderr || r.error?.message || `exit ${r.status}`, 1) };
}

/** Debian's python3 with its torch: { python, torchVersion } or { skipped }. */
export function debianTorch() {
  const python = '/usr/bin/python3';
  if (!fs.existsSync(python)) return { skipped: `${python} not found` };
  const r = probe(python, 'import json, torch; print(json.dumps(torch.__version__))');
  return r.ok ? { python, torchVersion: r.value } : { skipped: `${python} cannot import torch: ${r.reason}` };
}

const VERSIONS_PY = `
import json, torch, transformers, peft, gguf, safetensors, numpy
from importlib.metadata import version
print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                  "gguf": version("gguf"), "safetensors": safetensors.__version__, "numpy": numpy.__version__}))
`;

/**
 * pip's package sources, as `pip config list` reports them (index-url, extra-index-url, find-links from any scope or
 * PIP_* variable), passed on explicitly so that the venv's pip uses them whatever scope they came from. Without any,
 * the offline mirror of this project's build machines when it exists, else pip's default (PyPI).
 */
export function pipSourceArgs(python = 'python3') {
  const r = spawnSync(python, ['-m', 'pip', 'config', 'list'], { encoding: 'utf8', timeout: 60_000 });
  const values = { 'index-url': [], 'extra-index-url': [], 'find-links': [] };
  for (const line of r.status === 0 ? r.stdout.split('\n') : []) {
    const m = /^[^=]*?\.([a-z-]+)='(.*)'$/.exec(line.trim());
    if (m && m[1] in values) values[m[1]].push(...m[2].split(/\s+/).filter(Boolean));
  }
  const unique = (list) => [...new Set(list)];
  const args = [];
  let [index, ...moreIndexes] = unique(values['index-url']);
  let extra = unique(values['extra-index-url']);
  // Only local (file://) extra indexes: an offline mirror, so the first becomes the index and pip never waits on
  // PyPI, which such a machine cannot reach.
  if (!index && extra.length && extra.every((url) => url.startsWith('file:'))) [index, ...extra] = extra;
  if (index) args.push('--index-url', index);
  for (const url of unique([...moreIndexes, ...extra])) args.push('--extra-index-url', url);
  for (const link of unique(values['find-links'])) args.push('--find-links', link);
  if (args.length === 0) {
    if (fs.existsSync('/opt/pypi/simple')) args.push('--index-url', 'file:///opt/pypi/simple');
    if (fs.existsSync('/opt/wheels')) args.push('--find-links', '/opt/wheels');
  }
  return args;
}

/**
 * The PyTorch 2 venv: { python, versions } when it imports everything, else creates or completes it (python3 -m venv,
 * pip install) and checks again; { skipped: reason } when that fails. `log` gets progress lines.
 */
export function benchVenv(log = () => {}) {
  if (fs.existsSync(VENV_PYTHON)) {
    const r = probe(VENV_PYTHON, VERSIONS_PY);
    if (r.ok) return { python: VENV_PYTHON, versions: r.value };
    log(`bench venv ${VENV_DIR} is incomplete (${r.reason.split('\n').pop()}); installing into it...`);
  } else {
    log(`creating the bench venv ${VENV_DIR} (PyTorch 2, transformers, PEFT, gguf; several minutes)...`);
    try {
      fs.mkdirSync(path.dirname(VENV_DIR), { recursive: true });
    } catch (e) {
      return { skipped: `cannot create ${path.dirname(VENV_DIR)}: ${e.message}` };
    }
    const made = spawnSync('python3', ['-m', 'venv', VENV_DIR], { encoding: 'utf8', timeout: 300_000 });
    if (made.status !== 0)
      return { skipped: `python3 -m venv ${VENV_DIR} failed: ${tail(made.stderr || made.error?.message, 3)}` };
  }
  const pipArgs = ['-m', 'pip', 'install', ...pipSourceArgs(), ...VENV_PACKAGES];
  log(`${VENV_PYTHON} ${pipArgs.join(' ')}`);
  const installed = spawnSync(VENV_PYTHON, pipArgs, {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: 3_600_000,
  });
  if (installed.status !== 0)
    return { skipped: `pip install into ${VENV_DIR} failed: ${tail(installed.stderr || installed.error?.message, 3)}` };
  const r = probe(VENV_PYTHON, VERSIONS_PY);
  return r.ok ? { python: VENV_PYTHON, versions: r.value } : { skipped: `bench venv still cannot import: ${r.reason}` };
}
