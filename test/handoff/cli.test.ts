// `peft-studio handoff`: a recorded run and a recipe written out as a TRL project, and the bad input it refuses, one
// line each (a data file changed since the run, an output folder that is not empty, an unknown run, a bad recipe).
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { lastJson, ROOT, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

const DEMO_MODEL = path.join(ROOT, 'resources/demo/model');
const TEMPLATE =
  "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

describe('peft-studio handoff', () => {
  let work: string;
  let home: string;
  let data: string;
  let runId: number;
  const cli = (...args: string[]) => runCliAsync(args);

  beforeAll(async () => {
    work = tempDir('handoff-cli');
    home = path.join(work, 'home');
    data = path.join(work, 'support.csv');
    // CSV with columns of its own: the handoff writes the rows after the mapping, without the bad row.
    fs.writeFileSync(
      data,
      'question,answer\nWhere is my order?,It ships tomorrow.\nHi,Hello!\n"",\nCan I return it?,Yes within 30 days.\n',
    );
    const template = path.join(work, 'template.jinja');
    fs.writeFileSync(template, TEMPLATE);
    const trained = await cli(
      'train',
      '--home',
      home,
      '--model',
      DEMO_MODEL,
      '--data',
      data,
      '--columns',
      'prompt=question,completion=answer',
      '--format',
      'prompt-completion',
      '--skip-bad-rows',
      '--chat-template',
      template,
      '--out',
      path.join(work, 'adapter'),
      '--steps',
      '2',
      '--batch-size',
      '2',
      '--eval-split',
      '0.34',
      '--json',
    );
    expect(trained.code, trained.stderr).toBe(0);
    runId = lastJson(trained.stdout).id;
  });

  it("writes a run's project: train.py with its settings, its rows, hashes, template, launch files, the import line", async () => {
    const out = path.join(work, 'project');
    const r = await cli('handoff', String(runId), '--home', home, '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const result = lastJson(r.stdout);
    expect(result.folder).toBe(out);
    expect(result.caveats.join('\n')).toMatch(/order differs/); // the run shuffled
    for (const file of [
      'train.py',
      'requirements.txt',
      'README.md',
      'slurm.sbatch',
      'sky.yaml',
      'chat_template.jinja',
      'accelerate/single_gpu.yaml',
      'accelerate/ddp.yaml',
      'accelerate/fsdp.yaml',
      'accelerate/zero3.yaml',
      'data/train.jsonl',
      'data/eval.jsonl',
      'data/rows.jsonl',
      'data/SHA256SUMS',
    ])
      expect(fs.existsSync(path.join(out, file)), file).toBe(true);
    const script = fs.readFileSync(path.join(out, 'train.py'), 'utf8');
    expect(script).toMatch(/SFTTrainer/);
    expect(script).toMatch(/LoraConfig\(/);
    expect(script).toMatch(/r=16,\n\s+lora_alpha=32,/);
    expect(script).toMatch(/max_steps=2,/);
    expect(script).toMatch(/data\/eval\.jsonl/);
    expect(script).toMatch(/chat_template\.jinja/);
    expect(fs.readFileSync(path.join(out, 'chat_template.jinja'), 'utf8')).toBe(TEMPLATE);
    const rows = fs
      .readFileSync(path.join(out, 'data/rows.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows).toEqual([
      { row: 2, prompt: 'Where is my order?', completion: 'It ships tomorrow.' },
      { row: 3, prompt: 'Hi', completion: 'Hello!' },
      { row: 5, prompt: 'Can I return it?', completion: 'Yes within 30 days.' },
    ]);
    const sums = fs.readFileSync(path.join(out, 'data/SHA256SUMS'), 'utf8');
    const trainHash = /^([0-9a-f]{64}) {2}data\/train\.jsonl$/m.exec(sums)![1];
    const { createHash } = await import('node:crypto');
    expect(
      createHash('sha256')
        .update(fs.readFileSync(path.join(out, 'data/train.jsonl')))
        .digest('hex'),
    ).toBe(trainHash);
    // Pinned to what the tests install and run.
    // @ts-expect-error: a plain .mjs module without type declarations
    const { TRL_PACKAGES } = await import('../support/makeTrlEnv.mjs');
    expect(fs.readFileSync(path.join(out, 'requirements.txt'), 'utf8')).toBe(`${TRL_PACKAGES.join('\n')}\n`);
    const readme = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(readme).toMatch(/accelerate launch --config_file accelerate\/fsdp\.yaml/);
    expect(readme).toMatch(/estimate/i);
    expect(readme.trim().split('\n').slice(-2)[0]).toBe(`peft-studio import output --run ${runId}`);
  });

  it('writes a recipe (a TrainJob JSON file) and says what TRL does differently', async () => {
    const show = await cli('runs', 'show', String(runId), '--home', home, '--json');
    const recipe = path.join(work, 'recipe.json');
    fs.writeFileSync(recipe, JSON.stringify({ ...lastJson(show.stdout).job, method: 'prompt-tuning' }));
    const r = await cli('handoff', '--recipe', recipe, '--out', path.join(work, 'recipe-project'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*recipe-project/);
    expect(r.stdout).toMatch(/note: the random virtual tokens are drawn by PEFT/);
    expect(fs.readFileSync(path.join(work, 'recipe-project/train.py'), 'utf8')).toMatch(/PromptTuningConfig\(/);
  });

  it('refuses bad input in one line each', async () => {
    const full = path.join(work, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'notes.txt'), 'mine');
    const cases: [string[], RegExp][] = [
      [[String(runId), '--out', full], /full: the output folder is not empty/],
      [['999', '--out', path.join(work, 'x')], /run 999: no such run/],
      [
        ['--recipe', path.join(work, 'missing.json'), '--out', path.join(work, 'y')],
        /missing\.json: cannot read \(ENOENT\)/,
      ],
    ];
    const badRecipe = path.join(work, 'bad-recipe.json');
    fs.writeFileSync(badRecipe, JSON.stringify({ method: 'lora' }));
    cases.push([['--recipe', badRecipe, '--out', path.join(work, 'z')], /bad-recipe\.json: modelDir/]);
    for (const [args, message] of cases) {
      const r = await cli('handoff', ...args, '--home', home);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    expect(fs.readdirSync(full)).toEqual(['notes.txt']);

    fs.appendFileSync(data, 'One more?,Sure.\n');
    const changed = await cli('handoff', String(runId), '--home', home, '--out', path.join(work, 'after-change'));
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(
      new RegExp(
        `support\\.csv: changed since run ${runId} trained on it \\(sha256 now [0-9a-f]{12}, then [0-9a-f]{12}\\)`,
      ),
    );
    expect(fs.existsSync(path.join(work, 'after-change'))).toBe(false);
  });
});
