// The model card pushed with an adapter (metadata the Hub reads, training facts, usage) and its loss chart PNG.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { CHART_HEIGHT, CHART_WIDTH, LINE_COLOR, renderLossChart } from '../../main/hub/lossChart.js';
import { readTrainingFacts, renderModelCard, type ModelCardInput } from '../../main/hub/modelCard.js';
import { tempDir } from '../support/engine.js';

const LORA: ModelCardInput = {
  repoId: 'alice/smol-support',
  baseModel: 'HuggingFaceTB/SmolLM2-135M-Instruct',
  hubUrl: 'https://huggingface.co',
  method: 'lora',
  adapterConfig: { peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ['q_proj', 'v_proj'], use_rslora: false },
  license: { license: 'apache-2.0' },
  training: {
    settings: {
      optimizer: { name: 'adamw', learningRate: 0.0002 },
      steps: 100,
      dataFile: '/home/alice/private/support.jsonl',
    },
    dataset: { name: '/home/alice/private/support.jsonl', sha256: 'c0ffee'.padEnd(64, '0') },
    finalLoss: 1.23456,
    evalLoss: 1.5,
    losses: [
      { step: 1, loss: 2.5 },
      { step: 50, loss: 1.8 },
      { step: 100, loss: 1.23456 },
    ],
  },
  chart: 'loss.png',
  hasTokenizer: false,
};

/** The YAML block between the first two --- lines. */
const frontMatter = (card: string) => card.split('\n---\n')[0].replace(/^---\n/, '');

describe('model card', () => {
  it('carries the metadata the Hub expects for a PEFT adapter', () => {
    expect(frontMatter(renderModelCard(LORA))).toBe(
      [
        'library_name: peft',
        'base_model: HuggingFaceTB/SmolLM2-135M-Instruct',
        'base_model_relation: adapter',
        'license: apache-2.0',
        'pipeline_tag: text-generation',
        'tags:',
        '- peft',
        '- lora',
        '- base_model:adapter:HuggingFaceTB/SmolLM2-135M-Instruct',
        '- transformers',
        '- peft-studio',
      ].join('\n'),
    );
  });

  it('copies a custom license with its name and a link into the base repo', () => {
    const card = renderModelCard({
      ...LORA,
      baseModel: 'meta-llama/Llama-3.2-1B-Instruct',
      license: { license: 'other', license_name: 'llama3.2', license_link: 'LICENSE' },
    });
    expect(frontMatter(card)).toContain(
      'license: other\nlicense_name: llama3.2\nlicense_link: https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct/blob/main/LICENSE\n',
    );
    expect(frontMatter(renderModelCard({ ...LORA, license: undefined }))).not.toContain('license');
  });

  it('says how it was trained, on what, to which loss, and how to load it', () => {
    const card = renderModelCard(LORA);
    expect(card).toContain('| adapter | LoRA, r=16, alpha=32, targets q_proj, v_proj |');
    expect(card).toContain('| optimizer.name | adamw |\n| optimizer.learningRate | 0.0002 |\n| steps | 100 |');
    expect(card).toContain(`Dataset: \`support.jsonl\` (sha256 \`${'c0ffee'.padEnd(64, '0')}\`).`);
    expect(card).toContain('Final training loss: 1.2346. Validation loss: 1.5000.');
    expect(card).toContain('![Training loss by step](loss.png)');
    expect(card).toContain('base = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")');
    expect(card).toContain('tokenizer = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")');
    expect(card).toContain('model = PeftModel.from_pretrained(base, "alice/smol-support")');
    // Local folders are the user's business: only file names reach a public card.
    expect(card).not.toContain('/home/alice');
  });

  // training.json records the whole job (trainer.ts writeTrainingRecord); the card lists only what shaped the adapter.
  const JOB_SETTINGS = {
    method: 'lora',
    lora: { rank: 16, alpha: 32, dropout: 0.05, targets: ['q_proj', 'v_proj'], useRslora: false },
    promptTuning: { numVirtualTokens: 20, init: 'random', initText: null },
    optimizer: { name: 'adamw', learningRate: 0.0002, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0 },
    steps: 1500,
    epochs: 1,
    batchSize: 4,
  };
  const rows = (card: string) =>
    card.split('\n').filter((line) => /^\| [\w.]+ \| /.test(line) && !/^\| (setting|adapter) /.test(line));

  it('lists only the settings a LoRA run of set steps used: no prompt tuning, steps rather than epochs', () => {
    const card = renderModelCard({ ...LORA, training: { ...LORA.training, settings: JOB_SETTINGS } });
    expect(rows(card)).toEqual([
      '| method | lora |',
      '| lora.rank | 16 |',
      '| lora.alpha | 32 |',
      '| lora.dropout | 0.05 |',
      '| lora.targets | q_proj, v_proj |',
      '| lora.useRslora | false |',
      '| optimizer.name | adamw |',
      '| optimizer.learningRate | 0.0002 |',
      '| optimizer.beta1 | 0.9 |',
      '| optimizer.beta2 | 0.999 |',
      '| optimizer.eps | 1e-8 |',
      '| steps | 1500 |',
      '| batchSize | 4 |',
    ]);
    expect(card).not.toMatch(/promptTuning|epochs|momentum/);
  });

  it('lists only the settings a prompt-tuning run measured in epochs used: no LoRA, epochs rather than steps', () => {
    const card = renderModelCard({
      ...LORA,
      method: 'prompt-tuning',
      adapterConfig: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 20 },
      training: {
        settings: {
          ...JOB_SETTINGS,
          method: 'prompt-tuning',
          optimizer: { name: 'sgd', learningRate: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, momentum: 0.9 },
          steps: null,
          epochs: 3,
        },
      },
    });
    expect(rows(card)).toEqual([
      '| method | prompt-tuning |',
      '| promptTuning.numVirtualTokens | 20 |',
      '| promptTuning.init | random |',
      '| optimizer.name | sgd |',
      '| optimizer.learningRate | 0.01 |',
      '| optimizer.momentum | 0.9 |',
      '| epochs | 3 |',
      '| batchSize | 4 |',
    ]);
    expect(card).not.toMatch(/lora\.|\| steps |beta|initText/);
  });

  it('describes a prompt-tuning adapter and the extra files pushed with it', () => {
    const card = renderModelCard({
      ...LORA,
      method: 'prompt-tuning',
      adapterConfig: { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 20 },
      training: undefined,
      chart: undefined,
      merged: 'merged',
      gguf: 'adapter.gguf',
      hasTokenizer: true,
    });
    expect(frontMatter(card)).toContain('- peft\n- prompt-tuning\n');
    expect(card).toContain('| adapter | prompt tuning, 20 virtual tokens |');
    expect(card).toContain('subfolder="merged"');
    expect(card).toContain('`adapter.gguf` is the GGUF export');
    expect(card).toContain('AutoTokenizer.from_pretrained("alice/smol-support")');
    expect(card).not.toContain('loss.png');
  });
});

describe('training.json', () => {
  it('is optional, and a malformed one is refused naming the file and field', () => {
    const dir = tempDir('hub-facts');
    const file = path.join(dir, 'training.json');
    expect(readTrainingFacts(file)).toBeUndefined();
    fs.writeFileSync(file, JSON.stringify(LORA.training));
    expect(readTrainingFacts(file)).toEqual(LORA.training);
    fs.writeFileSync(file, JSON.stringify({ losses: [{ step: 1, loss: 'high' }] }));
    expect(() => readTrainingFacts(file)).toThrow(
      new UserError(`${file}: field "losses" must be a list of {"step": number, "loss": number}`),
    );
    fs.writeFileSync(file, '{"finalLoss": ');
    expect(() => readTrainingFacts(file)).toThrow(/training\.json: invalid JSON/);
  });
});

/** Decodes the PNG this module writes (8-bit RGBA, filter 0), checking the signature and every chunk's CRC. */
function decodePng(png: Buffer): { width: number; height: number; pixel: (x: number, y: number) => number[] } {
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  const chunks = new Map<string, Buffer>();
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at);
    const type = png.toString('ascii', at + 4, at + 8);
    expect(png.readUInt32BE(at + 8 + length)).toBe(zlib.crc32(png.subarray(at + 4, at + 8 + length)));
    chunks.set(type, png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  expect([...chunks.keys()]).toEqual(['IHDR', 'IDAT', 'IEND']);
  const header = chunks.get('IHDR')!;
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  expect([...header.subarray(8)]).toEqual([8, 6, 0, 0, 0]);
  const raw = zlib.inflateSync(chunks.get('IDAT')!);
  expect(raw.length).toBe(height * (width * 4 + 1));
  return {
    width,
    height,
    pixel: (x, y) => [...raw.subarray(y * (width * 4 + 1) + 1 + x * 4, y * (width * 4 + 1) + 1 + x * 4 + 4)],
  };
}

describe('loss chart', () => {
  it('is a valid PNG whose line falls as the loss does', () => {
    const losses = Array.from({ length: 100 }, (_, i) => ({ step: i + 1, loss: 3 * Math.exp(-i / 30) + 0.5 }));
    const { width, height, pixel } = decodePng(renderLossChart(losses));
    expect([width, height]).toEqual([CHART_WIDTH, CHART_HEIGHT]);
    const isLine = (x: number, y: number) => pixel(x, y).join() === [...LINE_COLOR, 255].join();
    const lineRows = (x: number) => Array.from({ length: height }, (_, y) => y).filter((y) => isLine(x, y));
    const left = lineRows(70);
    const right = lineRows(width - 20);
    expect(left.length).toBeGreaterThan(0);
    expect(right.length).toBeGreaterThan(0);
    expect(Math.min(...left)).toBeLessThan(Math.min(...right)); // high loss at the start is drawn higher up
    expect(pixel(2, 2)).toEqual([255, 255, 255, 255]);
  });

  it('draws an empty frame for no losses and skips non-finite ones', () => {
    expect(decodePng(renderLossChart([])).width).toBe(CHART_WIDTH);
    const { pixel, height } = decodePng(
      renderLossChart([
        { step: 1, loss: 2 },
        { step: 2, loss: Number.NaN },
        { step: 3, loss: 1 },
      ]),
    );
    const anyLine = Array.from({ length: height }, (_, y) => pixel(CHART_WIDTH / 2, y).join()).includes(
      [...LINE_COLOR, 255].join(),
    );
    expect(anyLine).toBe(true);
  });
});
