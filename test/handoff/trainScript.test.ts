// Each setting of a job reaches TRL as itself: train.py of several recipes is run up to the training (SFTTrainer.train
// stubbed, test/handoff/trl_configs.py), so transformers, PEFT and TRL check every argument, and what they resolved
// to is compared with the job. Also: every caveat a recipe calls for is said.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultTrainJob } from '../../shared/trainJob.js';
import type { TrainJob } from '../../shared/training.js';
import { writeHandoff } from '../../main/handoff/handoff.js';
import { ROOT } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { runInVenv, trlPython } from '../support/trlEnv.js';

const DEMO_MODEL = path.join(ROOT, 'resources/demo/model');

describe('handoff: train.py passes every setting to TRL', () => {
  it('LoRA with rsLoRA, SGD momentum, warmup, keep-best and early stopping; prompt tuning; packing by epochs', async () => {
    trlPython(); // fails here, with the reason, when the venv is missing
    const dir = tempDir('handoff-configs');
    const dataFile = path.join(dir, 'qa.jsonl');
    const rows = Array.from({ length: 10 }, (_, i) => ({ prompt: `Question ${i}?`, completion: ` Answer ${i}.` }));
    fs.writeFileSync(dataFile, rows.map((r) => JSON.stringify(r)).join('\n'));
    const evalFile = path.join(dir, 'held-out.jsonl');
    fs.writeFileSync(
      evalFile,
      rows
        .slice(0, 3)
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const base = defaultTrainJob('lora', { modelDir: DEMO_MODEL, dataFile, outDir: path.join(dir, 'adapter') });
    const recipes: Record<string, TrainJob> = {
      lora: {
        ...base,
        lora: { ...base.lora, rank: 8, useRslora: true },
        optimizer: { ...base.optimizer, name: 'sgd', momentum: 0.9, scheduler: 'constant', warmupSteps: 3 },
        steps: 12,
        evalSplit: 0.2,
        evalEvery: 4,
        keepBest: true,
        earlyStoppingPatience: 6,
        checkpointEvery: 5,
      },
      prompt: {
        ...defaultTrainJob('prompt-tuning', { modelDir: DEMO_MODEL, dataFile, outDir: path.join(dir, 'prompt') }),
        promptTuning: { numVirtualTokens: 5, init: 'text', initText: 'Answer the question.' },
        optimizer: { ...base.optimizer, learningRate: 3e-2, scheduler: 'cosine' },
        evalDataFile: evalFile,
        checkpointEvery: 0,
      },
      packed: { ...base, data: { ...base.data, pack: true }, epochs: 2, shuffle: false },
    };
    const projects: Record<string, string> = {};
    const caveats: Record<string, string[]> = {};
    for (const [name, job] of Object.entries(recipes)) {
      projects[name] = path.join(dir, name);
      caveats[name] = (await writeHandoff({ job, run: null }, projects[name])).caveats;
    }
    const { stdout } = await runInVenv('python', [
      path.join(ROOT, 'test/handoff/trl_configs.py'),
      ...Object.values(projects),
    ]);
    const resolved = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, Record<string, unknown>>;

    expect(resolved[projects.lora]).toMatchObject({
      peft_type: 'LORA',
      r: 8,
      use_rslora: true,
      optimizer: 'SGD',
      momentum: 0.9,
      scheduler: 'constant_with_warmup',
      warmup_steps: 3,
      max_steps: 12,
      eval_strategy: 'steps',
      save_strategy: 'steps',
      save_steps: 4, // a checkpoint at every validation, to keep the best
      load_best_model_at_end: true,
      early_stopping: [2], // 6 steps = 2 validations of 4 (rounded up)
      eval_rows: 2,
      sampling: 'random',
    });
    expect(caveats.lora.join('\n')).toMatch(/saves one at every validation \(every 4 steps\) instead of every 5/);
    expect(caveats.lora.join('\n')).toMatch(/6 steps become 2 validations of 4 steps/);

    expect(resolved[projects.prompt]).toMatchObject({
      peft_type: 'PROMPT_TUNING',
      num_virtual_tokens: 5,
      prompt_tuning_init: 'TEXT',
      optimizer: 'AdamW',
      scheduler: 'cosine',
      eval_strategy: 'no', // validated after the last step only, as the run
      save_strategy: 'no',
      eval_rows: 3,
    });
    expect(caveats.prompt.join('\n')).not.toMatch(/virtual tokens are drawn/); // text init: no randomness

    expect(resolved[projects.packed]).toMatchObject({ padding_free: true, epochs: 2, sampling: 'sequential' });
    expect(caveats.packed.join('\n')).toMatch(/builds the per-sample mask from the position ids/);
    expect(caveats.packed.join('\n')).not.toMatch(/order differs/);
  });
});
