// Before any weights are fetched: size, parameter count, architecture support and the memory fit, from the Hub's
// listing and config.json alone.
import path from 'node:path';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec } from '../../main/model/architecture.js';
import { countParameters, preflightModel, type CheckpointFacts } from '../../main/hub/preflight.js';
import { readSafetensorsHeader } from '../../main/model/safetensors.js';
import { tempDir } from '../support/engine.js';
import { startHubServer, type HubServer } from '../support/hubServer.js';
import { byteRequests, hubFor, tinyModelFiles, UNNEEDED_MODEL_FILES } from './helpers.js';

let server: HubServer;
let model: Record<string, Buffer>;

beforeAll(async () => {
  server = await startHubServer();
  model = tinyModelFiles({ layers: 3, hidden: 64 });
  server.addRepo('model', 'TestOrg/tiny', { ...model, ...UNNEEDED_MODEL_FILES });
});

afterAll(() => server.close());

const hub = () => hubFor(server, tempDir('hub-preflight'));

describe('preflight', () => {
  it('reports files, size, parameters, architecture and the memory fit, fetching only config.json', async () => {
    const seen: [ModelSpec, CheckpointFacts][] = [];
    const estimate = (spec: ModelSpec, checkpoint: CheckpointFacts) => {
      seen.push([spec, checkpoint]);
      return spec.numLayers * 1_000_000;
    };
    const before = byteRequests(server).length;
    const report = await preflightModel(hub(), 'TestOrg/tiny', {
      estimateTrainingBytes: estimate,
      availableBytes: 2_000_000,
    });
    expect(
      byteRequests(server)
        .slice(before)
        .map((r) => r.path),
    ).toEqual([expect.stringMatching(/\/resolve\/[0-9a-f]{40}\/config\.json$/)]);

    expect(report).toMatchObject({
      repoId: 'TestOrg/tiny',
      revision: 'main',
      architecture: 'llama',
      supported: true,
      gated: false,
      estimateBytes: 3_000_000,
      fits: false,
    });
    expect(report.reason).toBeUndefined();
    expect(report.files.map((f) => f.path)).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(report.totalBytes).toBe(report.files.reduce((sum, f) => sum + model[f.path].length, 0));
    expect(seen.map(([s, c]) => [s.numLayers, s.hiddenSize, c.weightBytesPerElement])).toEqual([[3, 64, 4]]);

    // The count from config.json matches the tensors actually in the checkpoint.
    const weights = path.join(tempDir('hub-preflight-weights'), 'model.safetensors');
    fs.writeFileSync(weights, model['model.safetensors']);
    const inFile = [...readSafetensorsHeader(weights).values()].reduce(
      (sum, t) => sum + t.shape.reduce((a, b) => a * b, 1),
      0,
    );
    expect(report.parameterCount).toBe(inFile);
    expect(countParameters(report.spec!)).toBe(inFile);

    const roomy = await preflightModel(hub(), 'TestOrg/tiny', {
      estimateTrainingBytes: estimate,
      availableBytes: 4_000_000,
    });
    expect(roomy.fits).toBe(true);
    const unknown = await preflightModel(hub(), 'TestOrg/tiny');
    expect(unknown.estimateBytes).toBeUndefined();
    expect(unknown.fits).toBeUndefined();
  });

  it('tells the planner the stored weight width: config.json dtype, else size over count', async () => {
    const bf16 = tinyModelFiles({ dtype: 'bf16' });
    const config = JSON.parse(bf16['config.json'].toString());
    server.addRepo('model', 'TestOrg/bf16', bf16);
    server.addRepo('model', 'TestOrg/bf16-undeclared', {
      ...bf16,
      'config.json': JSON.stringify({ ...config, torch_dtype: undefined }),
    });
    for (const id of ['TestOrg/bf16', 'TestOrg/bf16-undeclared']) {
      let width = 0;
      await preflightModel(hub(), id, { estimateTrainingBytes: (_, c) => (width = c.weightBytesPerElement) });
      expect(width, id).toBe(2);
    }
  });

  it("prefers the Hub's own parameter count from its safetensors metadata", async () => {
    server.addRepo('model', 'TestOrg/counted', model, { safetensorsTotal: 134_515_008 });
    expect((await preflightModel(hub(), 'TestOrg/counted')).parameterCount).toBe(134_515_008);
  });

  it('says why an architecture is not supported, without fetching its weights or estimating', async () => {
    const config = {
      ...JSON.parse(model['config.json'].toString()),
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
    };
    server.addRepo('model', 'TestOrg/gpt2-like', { ...model, 'config.json': JSON.stringify(config) });
    let estimated = false;
    const before = byteRequests(server).length;
    const report = await preflightModel(hub(), 'TestOrg/gpt2-like', {
      estimateTrainingBytes: () => ((estimated = true), 1),
      availableBytes: 10,
    });
    expect(report).toMatchObject({ architecture: 'gpt2', supported: false, spec: null, parameterCount: null });
    expect(report.reason).toBe('config.json: field "model_type" is "gpt2"; supported: llama, mistral, qwen2, qwen3');
    expect(estimated).toBe(false);
    expect(report.fits).toBeUndefined();
    expect(
      byteRequests(server)
        .slice(before)
        .every((r) => r.path.endsWith('config.json')),
    ).toBe(true);
  });

  it('refuses a repo with only pickled weights', async () => {
    server.addRepo('model', 'TestOrg/bin-only', {
      'config.json': model['config.json'],
      'pytorch_model.bin': Buffer.alloc(1000, 1),
    });
    const report = await preflightModel(hub(), 'TestOrg/bin-only');
    expect(report.supported).toBe(false);
    expect(report.reason).toMatch(/no model\.safetensors weights/);
  });

  it('--include replaces the default choice of files', async () => {
    const report = await preflightModel(hub(), 'TestOrg/tiny', { include: ['*.json', 'original/'] });
    expect(report.files.map((f) => f.path)).toEqual([
      'config.json',
      'generation_config.json',
      'original/consolidated.00.pth',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    await expect(preflightModel(hub(), 'TestOrg/tiny', { include: ['*.gguf'] })).rejects.toThrow(
      'TestOrg/tiny: no files to download match *.gguf',
    );
  });
});
