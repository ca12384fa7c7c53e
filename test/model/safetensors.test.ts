import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { UserError } from '../../shared/errors.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../main/model/safetensors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-test-safetensors-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function expectUserError(run: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(UserError);
  for (const fragment of fragments) expect((caught as Error).message).toContain(fragment);
}

describe('writeSafetensors / readSafetensorsHeader', () => {
  test('F32 tensors round-trip bit for bit, with the data section 8-byte aligned', () => {
    const file = path.join(dir, 'f32.safetensors');
    const weight = Float32Array.from({ length: 12 }, (_, i) => (i - 5.5) / 3);
    const bias = Float32Array.from([1e-30, -0, 3.4e38]);
    writeSafetensors(
      file,
      {
        'layer.weight': { dtype: 'F32', shape: [3, 4], data: weight },
        'layer.bias': { dtype: 'F32', shape: [3], data: bias },
      },
      { format: 'pt' },
    );

    const header = readSafetensorsHeader(file);
    expect([...header.keys()].sort()).toEqual(['layer.bias', 'layer.weight']);
    expect(header.get('layer.weight')).toMatchObject({ dtype: 'F32', shape: [3, 4], byteLength: 48 });
    expect(readTensorF32(header.get('layer.weight')!)).toEqual(weight);
    expect(readTensorF32(header.get('layer.bias')!)).toEqual(bias);
    expect(Math.min(...[...header.values()].map((e) => e.byteOffset)) % 8).toBe(0);
  });

  test('a non-ASCII tensor name still leaves the data 8-byte aligned', () => {
    const file = path.join(dir, 'unicode.safetensors');
    writeSafetensors(file, { 'poids.é': { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) } });
    const entry = readSafetensorsHeader(file).get('poids.é')!;
    expect(entry.byteOffset % 8).toBe(0);
    expect(readTensorF32(entry)).toEqual(Float32Array.from([1, 2]));
  });

  test('BF16 rounds to nearest even and widens back exactly', () => {
    const file = path.join(dir, 'bf16.safetensors');
    // value -> its bf16 (8 significant bits), worked out by hand: ties go to the even mantissa.
    const cases: [number, number][] = [
      [1, 1],
      [-2.5, -2.5],
      [1 + 2 ** -8, 1], // halfway between 1 and 1 + 2^-7: the even one is 1
      [1 + 3 * 2 ** -8, 1 + 2 ** -6], // halfway between 1 + 2^-7 and 1 + 2^-6: the even one is 1 + 2^-6
      [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7], // just above halfway rounds up
      [0.1, 0.10009765625],
      [0, 0],
    ];
    const values = Float32Array.from(cases.map(([v]) => v));
    writeSafetensors(file, { t: { dtype: 'BF16', shape: [cases.length], data: values } });
    const entry = readSafetensorsHeader(file).get('t')!;
    expect(entry).toMatchObject({ dtype: 'BF16', byteLength: 2 * cases.length });
    expect(Array.from(readTensorF32(entry))).toEqual(cases.map(([, bf16]) => bf16));
  });

  test('BF16 of random values is within half a bf16 step (relative 2^-8)', () => {
    const file = path.join(dir, 'bf16-random.safetensors');
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin((i + 1) * 12.9898) * 10 ** ((i % 7) - 3));
    writeSafetensors(file, { t: { dtype: 'BF16', shape: [values.length], data: values } });
    const back = readTensorF32(readSafetensorsHeader(file).get('t')!);
    let worst = 0;
    for (let i = 0; i < values.length; i++)
      worst = Math.max(worst, Math.abs(back[i] - values[i]) / Math.abs(values[i]));
    expect(worst, `worst relative error ${worst}`).toBeLessThanOrEqual(2 ** -8);
  });

  test('a truncated file names the file and the tensor', () => {
    const file = path.join(dir, 'truncated.safetensors');
    writeSafetensors(file, { t: { dtype: 'F32', shape: [64], data: new Float32Array(64) } });
    fs.truncateSync(file, fs.statSync(file).size - 10);
    expectUserError(() => readSafetensorsHeader(file), file, 'truncated', '"t"');
  });

  test('a text file is not a safetensors file', () => {
    const file = path.join(dir, 'notes.safetensors');
    fs.writeFileSync(file, 'These are my notes, not a model.\n');
    expectUserError(() => readSafetensorsHeader(file), file, 'not a safetensors file');
  });

  test('a file shorter than the header length', () => {
    const file = path.join(dir, 'tiny.safetensors');
    fs.writeFileSync(file, 'abc');
    expectUserError(() => readSafetensorsHeader(file), file, 'not a safetensors file');
  });

  test('a missing file and a folder', () => {
    const missing = path.join(dir, 'missing.safetensors');
    expectUserError(() => readSafetensorsHeader(missing), missing, 'ENOENT');
    expectUserError(() => readSafetensorsHeader(dir), dir, 'not a regular file');
  });
});
