// Whether an adapter's training rows went through the model's chat template: recorded in the manifest the studio
// writes into the adapter folder (real training on the demo model), read back from the folder and through the store.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adapterChatTemplate, adapterManifestText, MANIFEST_FILE } from '../../main/adapter/adapterFiles.js';
import { rendersThroughChatTemplate } from '../../main/data/render.js';
import { runTraining } from '../../main/engine/jobs/trainer.js';
import { Store } from '../../main/store/store.js';
import { DEMO_MODEL, demoJob } from '../api/jobs.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-template-record-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Trains `steps` steps on `dataFile` (format detected) into a new folder; returns the folder. */
async function train(name: string, dataFile: string): Promise<string> {
  const outDir = path.join(root, name);
  const result = await runTraining({ ...demoJob(outDir, 1), dataFile }, () => undefined);
  expect(result.status).toBe('completed');
  return outDir;
}

describe('the chat-template record of an adapter', () => {
  it('says which formats go through the template', () => {
    for (const format of ['messages', 'sharegpt', 'alpaca'] as const) {
      expect(rendersThroughChatTemplate(format, true)).toBe(true);
    }
    expect(rendersThroughChatTemplate('prompt-completion', true)).toBe(true);
    expect(rendersThroughChatTemplate('prompt-completion', false)).toBe(false);
    expect(rendersThroughChatTemplate('text', true)).toBe(false);
    expect(rendersThroughChatTemplate('tokens', true)).toBe(false);
  });

  it('is written into the manifest of a trained adapter and read back through the store', async () => {
    const messages = path.join(root, 'chat.jsonl');
    const row = {
      messages: [
        { role: 'user', content: 'Can I return a bike?' },
        { role: 'assistant', content: 'Yes, within 30 days with the receipt.' },
      ],
    };
    fs.writeFileSync(messages, `${JSON.stringify(row)}\n`.repeat(8));
    // The demo data is plain "User: / Assistant:" text; the demo model has a chat template.
    const plain = await train('plain', demoJob('', 1).dataFile);
    const chat = await train('chat', messages);

    const manifest = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
    expect(manifest(plain).chatTemplate).toBe(false);
    expect(manifest(chat).chatTemplate).toBe(true);
    expect(adapterChatTemplate(plain)).toBe(false);
    expect(adapterChatTemplate(chat)).toBe(true);

    const store = Store.open(path.join(root, 'home'));
    try {
      const model = store.addModel({
        source: 'local',
        location: DEMO_MODEL,
        revision: null,
        folder: DEMO_MODEL,
        architecture: 'llama',
        parameters: 1,
        dtype: 'float32',
        sizeBytes: 1,
      });
      const record = (folder: string, manifestText: string | null) =>
        store.addAdapter(
          {
            runId: null,
            parentAdapterId: null,
            folder,
            method: 'lora',
            baseModelId: model.id,
            metrics: { finalLoss: 1, evalLoss: null, steps: 1 },
          },
          manifestText,
        );
      expect(record(plain, adapterManifestText(plain)).chatTemplate).toBe(false);
      expect(record(chat, adapterManifestText(chat)).chatTemplate).toBe(true);
      // Written before the record existed, or with no manifest at all: not known.
      expect(record('/old', '{"format":1,"run":null,"files":[]}').chatTemplate).toBeNull();
      expect(record('/none', null).chatTemplate).toBeNull();
      expect(store.adapters().map((a) => a.chatTemplate)).toEqual([false, true, null, null]);
    } finally {
      store.close();
    }
  }, 120_000);
});
