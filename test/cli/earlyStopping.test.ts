// Early stopping and the best validated step, on the demo model through the real CLI and a studio folder: the run
// ends once validation stops improving for the patience asked for, and the adapter written is the best step's.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

// The demo's own recipe at a rate that overfits its 189 rows within a hundred steps.
const RECIPE = [
  ...['--rank', '8', '--alpha', '16', '--lora-dropout', '0', '--targets', 'q_proj,k_proj,v_proj,o_proj,gate_proj'],
  ...['--lr', '0.006', '--scheduler', 'constant', '--batch-size', '8', '--max-seq-len', '128', '--device', 'cpu'],
  ...['--eval-split', '0.1', '--eval-every', '10', '--checkpoint-every', '0'],
];
const STEPS = 400;

describe('early stopping', () => {
  it('ends the run when validation stops improving, and keeps the best validated step as the adapter', async () => {
    const home = tempDir('early-stopping');
    const out = path.join(home, 'adapter');
    const env = { ...process.env, PEFT_STUDIO_HOME: '' };
    const run = await runCliAsync(
      ['train', ...RECIPE, '--steps', String(STEPS), '--early-stopping-patience', '30', '--keep-best'].concat([
        '--home',
        home,
        '--out',
        out,
        '--json',
      ]),
      { env },
    );
    expect(run.code, run.stderr).toBe(0);
    const shown = lastJson((await runCliAsync(['runs', 'show', '1', '--home', home, '--json'], { env })).stdout);
    const curve: { step: number; loss: number }[] = shown.evalCurve;
    const best = curve.reduce((a, b) => (b.loss < a.loss ? b : a));
    const last = curve.at(-1)!;
    // Stopped at the first validation 30 steps past the best, well before the steps asked for.
    expect(shown.status).toBe('completed');
    expect(last.step).toBe(best.step + 30);
    expect(shown.step).toBe(last.step);
    expect(shown.step).toBeLessThan(STEPS);
    const log = shown.log.join('\n');
    expect(log).toContain(`stopping early: no lower validation loss in the 30 steps since step ${best.step}`);
    expect(log).toContain(`the adapter is step ${best.step}'s, the lowest validation loss`);
    // The adapter and its record are the best step's.
    expect(shown.adapters[0].metrics.evalLoss).toBeCloseTo(best.loss, 6);
    const record = JSON.parse(fs.readFileSync(path.join(out, 'training.json'), 'utf8'));
    expect(record.evalLoss).toBeCloseTo(best.loss, 6);
    // ...its very weights: a run of exactly that many steps (training is deterministic) writes the same tensors.
    const shorter = path.join(home, 'adapter-at-best');
    const again = await runCliAsync(['train', ...RECIPE, '--steps', String(best.step), '--out', shorter, '--json'], {
      env,
    });
    expect(again.code, again.stderr).toBe(0);
    const weights = (dir: string) => fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
    expect(weights(out).equals(weights(shorter))).toBe(true);
  }, 300_000);
});
