// The UI <-> main contract: parseCall accepts what the renderer sends (defaults filled in) and refuses unknown methods
// and bad fields with one line naming the method and the field.
import { describe, expect, it } from 'vitest';
import { ApiError, errorShape, METHOD_NAMES, parseCall } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import { demoJob } from './jobs.js';

function refusal(method: unknown, params: unknown): string {
  try {
    parseCall(method, params);
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error(`${String(method)} was accepted`);
}

describe('parseCall', () => {
  it('accepts good params and fills in defaults', () => {
    expect(parseCall('runs.get', { id: 3 })).toEqual({ method: 'runs.get', params: { id: 3, logLines: 200 } });
    expect(parseCall('app.info', undefined)).toEqual({ method: 'app.info', params: {} });
    expect(parseCall('runs.start', { job: demoJob('/tmp/out') }).params).toEqual({ job: demoJob('/tmp/out') });
    const generate = parseCall('playground.generate', {
      requestId: 'r1',
      modelDir: '/m',
      adapterDir: null,
      input: { type: 'messages', messages: [{ role: 'user', content: 'hi' }] },
    });
    expect(generate.params).toMatchObject({
      sampling: { maxNewTokens: 128, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, stop: [] },
    });
    expect(parseCall('settings.set', { hfToken: null, theme: 'dark' }).params).toEqual({
      hfToken: null,
      theme: 'dark',
    });
    // models.fit takes the wizard's whole draft job and keeps only what the plan reads.
    const fit = parseCall('models.fit', { config: demoJob('/tmp/out') });
    expect(Object.keys(fit.params.config as object).sort()).toEqual([
      'batchSize',
      'device',
      'gradientCheckpointing',
      'lora',
      'maxSeqLen',
      'method',
      'modelDir',
      'optimizer',
      'promptTuning',
      'quantize',
    ]);
    // A draft saved before 4-bit bases existed plans the checkpoint's own precision.
    const { quantize, ...older } = fit.params.config as Record<string, unknown>;
    expect(quantize).toBe('none');
    expect((parseCall('models.fit', { config: older }).params.config as { quantize: string }).quantize).toBe('none');
    expect(
      (parseCall('models.fit', { config: { ...older, quantize: 'nf4' } }).params.config as { quantize: string })
        .quantize,
    ).toBe('nf4');
    expect(parseCall('export.run', { adapterId: 1, format: 'gguf', destination: '/tmp/x' }).method).toBe('export.run');
  });

  it('lists the methods the renderer codes against', () => {
    for (const name of [
      'app.info',
      'devices.list',
      'demo.paths',
      'models.list',
      'models.inspect',
      'models.fit',
      'datasets.inspect',
      'runs.list',
      'runs.get',
      'runs.chart',
      'runs.start',
      'runs.pause',
      'runs.resume',
      'runs.cancel',
      'runs.delete',
      'adapters.list',
      'playground.generate',
      'playground.stop',
      'export.run',
      'settings.get',
      'settings.set',
    ]) {
      expect(METHOD_NAMES).toContain(name);
    }
  });

  it('refuses unknown methods and bad fields in one line naming them', () => {
    expect(refusal('runs.explode', {})).toBe('unknown method "runs.explode"');
    expect(refusal(42, {})).toBe('unknown method 42');
    expect(refusal('__proto__', {})).toBe('unknown method "__proto__"');
    expect(refusal('runs.get', { id: 'seven' })).toMatch(/^runs\.get: params\.id: .*expected number/);
    expect(refusal('runs.get', { id: -1 })).toMatch(/^runs\.get: params\.id: /);
    expect(refusal('runs.get', { id: 1, sql: 'DROP TABLE runs' })).toMatch(/^runs\.get: params: .*"sql"/);
    expect(refusal('runs.get', 'id=1')).toMatch(/^runs\.get: params: /);
    const job = demoJob('/tmp/out');
    expect(refusal('runs.start', { job: { ...job, lora: { ...job.lora, rank: 0 } } })).toMatch(
      /^runs\.start: params\.job\.lora\.rank: /,
    );
    expect(refusal('runs.start', { job: { ...job, device: 'tpu' } })).toMatch(/^runs\.start: params\.job\.device: /);
    expect(refusal('export.run', { adapterId: 1, format: 'zip', destination: '/x' })).toMatch(
      /^export\.run: params\.format: /,
    );
    expect(
      refusal('playground.generate', {
        requestId: 'r',
        modelDir: '/m',
        adapterDir: null,
        input: { type: 'prompt', text: '' },
      }),
    ).toMatch(/^playground\.generate: params\.input\.text: /);
    expect(refusal('settings.set', { hasToken: true })).toMatch(/^settings\.set: params: .*"hasToken"/);
  });

  it('turns errors into the serialisable reply shape', () => {
    expect(errorShape(new UserError('data.jsonl:3: bad row'))).toEqual({
      name: 'UserError',
      message: 'data.jsonl:3: bad row',
    });
    expect(errorShape(new ApiError('unknown method "x"'))).toEqual({ name: 'ApiError', message: 'unknown method "x"' });
    expect(errorShape('plain')).toEqual({ name: 'Error', message: 'plain' });
  });
});
