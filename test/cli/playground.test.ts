// generate and chat as users run them: a model made by create-tiny-model, fine-tuned by train, then asked.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, lastJson, runCliAsync } from '../support/cli.js';
import { tempDir } from '../support/engine.js';

const ALL = 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj';

// Asynchronous: a test worker blocked for long misses Vitest's RPC deadline.
const cli = (args: string[], input?: string) => runCliAsync(args, { input });

// The task: whatever two words are asked about, answer "yes, <first word>". Held-out prompts use unseen words.
const TRAIN_WORDS = [
  'apple',
  'river',
  'stone',
  'cloud',
  'green',
  'table',
  'music',
  'light',
  'paper',
  'chair',
  'bread',
  'glass',
  'horse',
  'smile',
  'water',
  'plant',
];
const HELD_OUT = [
  ['tiger', 'ocean'],
  ['candle', 'mirror'],
  ['pencil', 'garden'],
  ['rocket', 'violin'],
  ['silver', 'window'],
  ['forest', 'castle'],
];
const prompt = (a: string, b: string) => `Q: ${a} or ${b}?\nA:`;

let work: string;
let model: string;
let adapter: string;

beforeAll(async () => {
  work = tempDir('playground');
  model = path.join(work, 'model');
  expect(
    (
      await cli([
        'create-tiny-model',
        model,
        '--layers',
        '2',
        '--hidden',
        '64',
        '--heads',
        '4',
        '--kv-heads',
        '2',
        '--intermediate',
        '128',
      ])
    ).code,
  ).toBe(0);
  const lines: string[] = [];
  for (let i = 0; i < TRAIN_WORDS.length; i++) {
    for (const j of [1, 3, 5]) {
      const [a, b] = [TRAIN_WORDS[i], TRAIN_WORDS[(i + j) % TRAIN_WORDS.length]];
      lines.push(JSON.stringify({ text: `${prompt(a, b)} yes, ${a}.` }));
    }
  }
  const data = path.join(work, 'task.jsonl');
  fs.writeFileSync(data, lines.join('\n'));
  adapter = path.join(work, 'adapter');
  const trained = await cli([
    'train',
    '--model',
    model,
    '--data',
    data,
    '--out',
    adapter,
    '--epochs',
    '12',
    '--batch-size',
    '8',
    '--lr',
    '1e-2',
    '--rank',
    '8',
    '--alpha',
    '16',
    '--targets',
    ALL,
    '--lora-dropout',
    '0',
    '--device',
    'cpu',
    '--json',
  ]);
  expect(trained.code, trained.stderr).toBe(0);
});

describe('generate', () => {
  it('answers held-out prompts better with the fine-tuned adapter than the base does', async () => {
    const score = async (extra: string[]) => {
      let right = 0;
      for (const [a, b] of HELD_OUT) {
        const result = await cli([
          'generate',
          '--model',
          model,
          '--adapter',
          adapter,
          ...extra,
          '--prompt',
          prompt(a, b),
          '--max-new-tokens',
          '8',
          '--device',
          'cpu',
          '--json',
        ]);
        expect(result.code, result.stderr).toBe(0);
        if (lastJson(result.stdout).text.startsWith(' yes,')) right++;
      }
      return right;
    };
    const tuned = await score([]);
    const base = await score(['--base']);
    expect(tuned).toBeGreaterThanOrEqual(5);
    expect(base).toBe(0);
  });

  it('reports text, token ids, tokens/s and time to first token as JSON', async () => {
    const result = await cli([
      'generate',
      '--model',
      model,
      '--adapter',
      adapter,
      '--prompt',
      prompt('tiger', 'ocean'),
      '--max-new-tokens',
      '6',
      '--ignore-eos',
      '--temperature',
      '0.7',
      '--top-k',
      '20',
      '--top-p',
      '0.9',
      '--seed',
      '4',
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const out = lastJson(result.stdout);
    expect(out.ids).toHaveLength(6);
    expect(typeof out.text).toBe('string');
    expect(out.tokensPerSecond).toBeGreaterThan(0);
    expect(out.timeToFirstTokenSeconds).toBeGreaterThan(0);
    expect(out.finishReason).toBe('length');
  });

  it('stops before a stop string', async () => {
    const result = await cli([
      'generate',
      '--model',
      model,
      '--adapter',
      adapter,
      '--prompt',
      prompt('tiger', 'ocean'),
      '--stop',
      ',',
      '--json',
    ]);
    const out = lastJson(result.stdout);
    expect(out.finishReason).toBe('stop');
    expect(out.text).toBe(' yes');
  });

  it('renders --messages through the model chat template', async () => {
    const messages = path.join(work, 'messages.json');
    fs.writeFileSync(
      messages,
      JSON.stringify([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello!' },
      ]),
    );
    const result = await cli(['generate', '--model', model, '--messages', messages, '--max-new-tokens', '4', '--json']);
    expect(result.code, result.stderr).toBe(0);
    // ChatML: <|im_start|>system ... <|im_end|> ... <|im_start|>assistant\n is what the prompt tokenizes to.
    expect(lastJson(result.stdout).promptTokens).toBeGreaterThan(10);
  });
});

describe('chat', () => {
  it('talks through stdin, switching between the adapter and the base model', async () => {
    const result = await cli(
      ['chat', '--model', model, '--adapter', adapter, '--max-new-tokens', '4', '--plain-chat'],
      ['hello', '/base', 'hello', '/adapter', '/exit', ''].join('\n'),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('answering as the base model');
    expect(result.stdout).toContain('answering as the fine-tuned model');
  });
});

describe('decoding commands', () => {
  /** A /proc file's text, or '' once the process is gone. */
  const readProc = (file: string) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };

  /** GLIBC_TUNABLES of the process that answers `chat` (the CLI's own, or the one it ran again), or null. */
  async function answeringTunables(tunables: string | null): Promise<string | null> {
    const env: NodeJS.ProcessEnv = { ...process.env, GLIBC_TUNABLES: tunables ?? undefined };
    if (tunables === null) delete env.GLIBC_TUNABLES;
    const child = spawn(process.execPath, [CLI, 'chat', '--model', model, '--plain-chat'], {
      env,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    // The banner comes from the process that loaded the model.
    await new Promise((resolve) => child.stdout.once('data', resolve));
    const parentOf = (pid: string) => {
      const stat = readProc(`/proc/${pid}/stat`);
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    };
    const children = fs.readdirSync('/proc').filter((pid) => /^\d+$/.test(pid) && parentOf(pid) === child.pid);
    const environ = readProc(`/proc/${children[0] ?? child.pid}/environ`).split('\0');
    child.stdin.end('/exit\n');
    expect(await new Promise((resolve) => child.on('exit', resolve))).toBe(0);
    expect(children.length).toBeLessThanOrEqual(1);
    return environ.find((v) => v.startsWith('GLIBC_TUNABLES='))?.slice('GLIBC_TUNABLES='.length) ?? null;
  }

  it.runIf(process.platform === 'linux')(
    "decode with glibc's huge pages, unless the user's environment sets GLIBC_TUNABLES",
    async () => {
      expect(await answeringTunables(null)).toBe('glibc.malloc.hugetlb=1');
      expect(await answeringTunables('glibc.malloc.hugetlb=0')).toBe('glibc.malloc.hugetlb=0');
    },
  );
});

describe('bad input', () => {
  const oneLine = (result: Awaited<ReturnType<typeof cli>>, pattern: RegExp) => {
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(pattern);
  };

  it('an adapter made for another base', async () => {
    const other = path.join(work, 'other');
    await cli(['create-tiny-model', other, '--hidden', '32', '--heads', '4', '--kv-heads', '2']);
    oneLine(
      await cli(['generate', '--model', other, '--adapter', adapter, '--prompt', 'hi']),
      /adapter_model\.safetensors: tensor ".*lora_A\.weight" has shape \[8,64\], expected \[8,32\]/,
    );
  });

  it('a prompt longer than the context', async () => {
    oneLine(
      await cli(['generate', '--model', model, '--prompt', 'word '.repeat(3000)]),
      /exceed the model's context of \d+/,
    );
  });

  it('a command line too long for ONNX Runtime (over 25 KB) is answered, not crashed', async () => {
    const result = await cli(['generate', '--model', model, '--prompt', 'word '.repeat(8000)]);
    expect(result.code).toBe(1);
    oneLine(result, /exceed the model's context of \d+|longer than .* characters/);
  });

  it('a malformed messages file', async () => {
    const bad = path.join(work, 'bad-messages.json');
    fs.writeFileSync(bad, JSON.stringify([{ role: 'robot', content: 'hi' }]));
    oneLine(
      await cli(['generate', '--model', model, '--messages', bad]),
      /bad-messages\.json: message 1: "role" must be one of system, user, assistant$/m,
    );
    fs.writeFileSync(bad, '[{"role": "user", "content": ');
    oneLine(await cli(['generate', '--model', model, '--messages', bad]), /bad-messages\.json: invalid JSON/);
  });

  it('a missing tokenizer.json', async () => {
    const bare = path.join(work, 'bare');
    fs.mkdirSync(bare);
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(model, f), path.join(bare, f));
    oneLine(
      await cli(['generate', '--model', bare, '--prompt', 'hi']),
      /bare\/tokenizer\.json: cannot read the model's tokenizer \(ENOENT\)/,
    );
  });

  it('a conversation for a model without a chat template', async () => {
    const plain = path.join(work, 'plain');
    fs.mkdirSync(plain);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
      fs.copyFileSync(path.join(model, f), path.join(plain, f));
    const messages = path.join(work, 'm.json');
    fs.writeFileSync(messages, JSON.stringify([{ role: 'user', content: 'hi' }]));
    // The engine's UserError names the field; the CLI says it as the flag that would allow plain text.
    oneLine(
      await cli(['generate', '--model', plain, '--messages', messages]),
      /^peft-studio generate: error: --plain-chat: .*plain: the model has no chat template; allow plain "User: \.\.\. \/ Assistant:" text instead$/m,
    );
  });
});
