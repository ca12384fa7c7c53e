// Before any test file: the Python venv the handoff tests run generated TRL projects in, made once from pip's
// configured package sources (a few minutes the first time, a quick import check after). When it cannot be made,
// the suite goes on and the handoff tests fail with the reason.
import { makeTrlVenv } from './makeTrlEnv.mjs';

export default function setup(): void {
  const problem = makeTrlVenv((line: string) => process.stderr.write(`${line}\n`));
  if (problem) process.stderr.write(`TRL venv not available: ${problem}\n`);
}
