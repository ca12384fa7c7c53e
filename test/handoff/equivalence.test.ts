// The handed-off TRL run and our engine train the same: from one initial adapter (B non-zero, so the first step's
// gradients reach A), in file order, dropout 0, SGD, the first step's loss agrees within 1e-4 and every step of 10
// within 1e-3. Real engine, real TRL in the venv of test/support/trlEnv.ts.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultTrainJob } from '../../shared/trainJob.js';
import type { TrainJob } from '../../shared/training.js';
import { saveLoraAdapter } from '../../main/adapter/loraAdapter.js';
import { runTraining } from '../../main/engine/jobs/trainer.js';
import { writeHandoff } from '../../main/handoff/handoff.js';
import { openModelFolder } from '../../main/model/modelFolder.js';
import { ROOT } from '../support/cli.js';
import { randomLora, tempDir } from '../support/engine.js';
import { runInVenv, trlPython } from '../support/trlEnv.js';

const DEMO_MODEL = path.join(ROOT, 'resources/demo/model');

function chatRows(count: number): string {
  return Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `What is ${i} plus ${i}?` },
        { role: 'assistant', content: `${2 * i}, of course.` },
        { role: 'user', content: 'Thanks!' },
        { role: 'assistant', content: i % 2 ? "You're welcome." : 'Any time.' },
      ],
    }),
  ).join('\n');
}

describe('handoff: the same losses in TRL and in our engine', () => {
  it('first step within 1e-4, 10 steps within 1e-3, from one initial adapter', async () => {
    const python = trlPython(); // fails here, with the reason, when the venv is missing
    expect(python).toBeTruthy();
    const dir = tempDir('handoff-equivalence');
    const dataFile = path.join(dir, 'chat.jsonl');
    fs.writeFileSync(dataFile, chatRows(12));
    const initDir = path.join(dir, 'init');
    const lora = {
      rank: 4,
      alpha: 8,
      dropout: 0,
      targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
      useRslora: false,
    };
    saveLoraAdapter(initDir, randomLora(openModelFolder(DEMO_MODEL), lora, 7), DEMO_MODEL);
    const base = defaultTrainJob('lora', { modelDir: DEMO_MODEL, dataFile, outDir: path.join(dir, 'ours') });
    const job: TrainJob = {
      ...base,
      lora,
      optimizer: { ...base.optimizer, name: 'sgd', learningRate: 0.05, scheduler: 'linear', maxGradNorm: 1 },
      steps: 10,
      batchSize: 2,
      shuffle: false,
      gradientCheckpointing: false,
      device: 'cpu',
      threads: 1,
      initAdapterDir: initDir,
      checkpointEvery: 0,
    };

    const ours: number[] = [];
    await runTraining(job, (event) => {
      if (event.type === 'step') ours.push(event.loss);
    });

    const project = path.join(dir, 'project');
    const handoff = await writeHandoff({ job, run: null }, project);
    expect(handoff.caveats.join('\n')).not.toMatch(/order differs|dropout/);
    const output = path.join(dir, 'trl-output');
    await runInVenv('python', ['train.py'], { cwd: project, env: { OUTPUT_DIR: output } });
    const trl = (
      JSON.parse(fs.readFileSync(path.join(output, 'losses.json'), 'utf8')) as { losses: { loss: number }[] }
    ).losses.map((l) => l.loss);

    expect(trl).toHaveLength(10);
    expect(ours).toHaveLength(10);
    const differences = ours.map((loss, i) => Math.abs(loss - trl[i]));
    const worst = Math.max(...differences);
    console.log(
      `handoff equivalence: first-step |ours - TRL| = ${differences[0].toExponential(2)}, max over 10 steps = ${worst.toExponential(2)}\n` +
        `  ours ${ours.map((l) => l.toFixed(5)).join(' ')}\n  TRL  ${trl.map((l) => l.toFixed(5)).join(' ')}`,
    );
    expect(differences[0]).toBeLessThan(1e-4);
    expect(worst).toBeLessThan(1e-3);
    // The run learned: equal flat curves would prove little.
    expect(ours[9]).toBeLessThan(ours[0] - 0.1);
  });
});
