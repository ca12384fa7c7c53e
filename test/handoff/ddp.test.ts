// The generated project runs for real: a recorded run handed off, trained by `accelerate launch` with 2 processes on
// the CPU (DDP over gloo), its adapter imported back as the run's, and chatted with through the playground CLI.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lastJson, ROOT, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';
import { runInVenv, trlPython } from '../support/trlEnv.js';

const DEMO_MODEL = path.join(ROOT, 'resources/demo/model');

describe('handoff: the generated project under accelerate with 2 processes', () => {
  it('trains over DDP on the CPU, writes a PEFT adapter, which comes back into the studio and chats', async () => {
    trlPython(); // fails here, with the reason, when the venv is missing
    const work = tempDir('handoff-ddp');
    const home = path.join(work, 'home');
    const data = path.join(work, 'chat.jsonl');
    const rows = Array.from({ length: 8 }, (_, i) => ({
      messages: [
        { role: 'user', content: `Is bike ${i} in stock?` },
        { role: 'assistant', content: `Yes, bike ${i} ships today.` },
      ],
    }));
    fs.writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
    const trained = await runCliAsync([
      'train',
      '--home',
      home,
      '--model',
      DEMO_MODEL,
      '--data',
      data,
      '--out',
      path.join(work, 'local-adapter'),
      '--steps',
      '2',
      '--batch-size',
      '2',
      '--grad-accum',
      '2',
      '--targets',
      'q_proj,v_proj',
      '--rank',
      '4',
      '--no-shuffle',
      '--lora-dropout',
      '0',
      '--json',
    ]);
    expect(trained.code, trained.stderr).toBe(0);
    const runId: number = lastJson(trained.stdout).id;

    const project = path.join(work, 'project');
    const handoff = await runCliAsync(['handoff', String(runId), '--home', home, '--out', project, '--json']);
    expect(handoff.code, handoff.stderr).toBe(0);

    const output = path.join(work, 'remote-output');
    const launched = await runInVenv(
      'accelerate',
      [
        'launch',
        // accelerate's --cpu starts one process; torchrun's launcher (--multi_gpu) starts both, and train.py's
        // use_cpu makes them a gloo group.
        '--multi_gpu',
        '--num_processes',
        '2',
        '--num_machines',
        '1',
        '--mixed_precision',
        'no',
        '--dynamo_backend',
        'no',
        'train.py',
      ],
      { cwd: project, env: { OUTPUT_DIR: output } },
    );
    // Both ranks ran (gloo) and split the run's 4 rows per step: 2 per process, 1 accumulation step each.
    expect(`${launched.stdout}\n${launched.stderr}`).toMatch(/adapter written to .* after 2 steps on 2 process\(es\)/);
    const config = JSON.parse(fs.readFileSync(path.join(output, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 32 });
    expect(new Set(config.target_modules)).toEqual(new Set(['q_proj', 'v_proj']));
    expect(fs.existsSync(path.join(output, 'adapter_model.safetensors'))).toBe(true);
    const { losses } = JSON.parse(fs.readFileSync(path.join(output, 'losses.json'), 'utf8'));
    expect(losses).toHaveLength(2);
    // A fresh adapter's B is zero on both sides, so the first step's loss is the base model's on the same 4 rows:
    // split over two ranks by DDP here, one micro-batch of 2 twice in the studio.
    const shown = await runCliAsync(['runs', 'show', String(runId), '--home', home, '--json']);
    const ours: { step: number; loss: number }[] = lastJson(shown.stdout).chart;
    const firstStepDifference = Math.abs(ours.find((p) => p.step === 1)!.loss - losses[0].loss);
    console.log(`handoff ddp: first-step |ours - TRL over DDP| = ${firstStepDifference.toExponential(2)}`);
    expect(firstStepDifference).toBeLessThan(1e-4);

    const imported = await runCliAsync(['import', output, '--run', String(runId), '--home', home, '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    const adapter = lastJson(imported.stdout);
    expect(adapter.runId).toBe(runId);

    const messages = path.join(work, 'messages.json');
    fs.writeFileSync(messages, JSON.stringify([{ role: 'user', content: 'Is bike 3 in stock?' }]));
    const chat = await runCliAsync([
      'generate',
      '--model',
      DEMO_MODEL,
      '--adapter',
      adapter.folder,
      '--messages',
      messages,
      '--max-new-tokens',
      '8',
      '--temperature',
      '0',
      '--json',
    ]);
    expect(chat.code, chat.stderr).toBe(0);
    const reply = lastJson(chat.stdout);
    console.log(
      `handoff ddp: losses ${losses.map((l: { loss: number }) => l.loss.toFixed(4)).join(', ')}; imported as adapter ${adapter.id}; reply ${JSON.stringify(reply.text)}`,
    );
    expect(reply.text.length).toBeGreaterThan(0);
  });
});
