// Folders name where code may run and what they may use: shared/ is pure TypeScript, renderer/ sees only the DOM and
// shared/, only the Electron glue (main/electron/) imports electron, and main/ is a stack of layers that import
// only downward (LAYERS), with the graph compiler pure and one door to ONNX Runtime.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Packages that are themselves pure TypeScript, usable on both sides of the contract.
const PURE_PACKAGES = ['zod'];
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sources(folder: string): string[] {
  const dir = path.join(ROOT, folder);
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => /\.(ts|svelte|mjs|js)$/.test(f))
    .map((f) => path.join(dir, f));
}

function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)].map((m) => m[1]);
}

function resolvesInto(file: string, specifier: string, folder: string): boolean {
  return (
    specifier.startsWith('.') &&
    path.resolve(path.dirname(file), specifier).startsWith(path.join(ROOT, folder) + path.sep)
  );
}

/**
 * main/'s layers, bottom up: a file may import its own folder and any folder of a lower rank, never one of its rank or
 * above. The longest matching prefix names a file's folder.
 */
const LAYERS: [folder: string, rank: number][] = [
  ['shared', 0],
  ['main/util', 1],
  ['main/demo.ts', 1],
  ['main/model', 2],
  ['main/store', 2],
  ['main/data', 3],
  ['main/adapter', 4],
  ['main/hub', 5],
  ['main/engine/compile', 5], // pure: ONNX graphs as bytes, never a session
  ['main/engine/runtime', 6], // the one door to onnxruntime-node
  ['main/handoff', 6], // a run as a TRL project: the data pipeline, the memory plan
  ['main/engine/jobs', 7],
  ['main/playground', 7],
  ['main/engine/process', 8],
  ['main/studio', 9],
  ['main/server', 10], // front doors: nothing below imports them
  ['main/electron', 10],
  ['main/cli', 11],
];

function layerOf(file: string): [string, number] | null {
  const relative = path.relative(ROOT, file).split(path.sep).join('/');
  const matches = LAYERS.filter(([folder]) => relative === folder || relative.startsWith(`${folder}/`));
  return matches.sort((a, b) => b[0].length - a[0].length)[0] ?? null;
}

describe('import boundaries', () => {
  it('every file of main/ belongs to a layer', () => {
    const unplaced = sources('main').filter((file) => !file.endsWith('.mjs') && layerOf(file) === null);
    expect(unplaced).toEqual([]);
  });

  it('main/ imports only downward: its own folder or a layer below', () => {
    const upward: string[] = [];
    for (const file of sources('main')) {
      const from = layerOf(file);
      if (!from) continue;
      for (const specifier of imports(file)) {
        if (!specifier.startsWith('.')) continue;
        const to = layerOf(path.resolve(path.dirname(file), specifier));
        if (to && to[0] !== from[0] && to[1] >= from[1])
          upward.push(`${path.relative(ROOT, file)} (${from[0]}) imports ${specifier} (${to[0]})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('only main/engine/runtime/ imports onnxruntime-node, and the graph compiler never reaches it', () => {
    const ort = sources('main').filter((file) => imports(file).some((s) => s.startsWith('onnxruntime-node')));
    expect(ort.map((file) => layerOf(file)?.[0])).toEqual(ort.map(() => 'main/engine/runtime'));
    for (const file of sources('main/engine/compile')) {
      for (const specifier of imports(file)) {
        const into = specifier.startsWith('.') ? layerOf(path.resolve(path.dirname(file), specifier))?.[0] : specifier;
        expect(
          ['main/engine/runtime', 'main/engine/jobs', 'main/engine/process', 'onnxruntime-node'],
          `${file} imports ${specifier}`,
        ).not.toContain(into);
      }
    }
  });

  it('shared/ imports nothing from Node, Electron, main/ or renderer/', () => {
    const files = sources('shared');
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      for (const specifier of imports(file)) {
        if (PURE_PACKAGES.includes(specifier)) continue;
        expect(specifier.startsWith('.'), `${file} imports ${specifier}`).toBe(true);
        expect(resolvesInto(file, specifier, 'shared'), `${file} imports ${specifier}`).toBe(true);
      }
    }
  });

  it('renderer/ imports only shared/ and its own files, never Node or Electron', () => {
    for (const file of sources('renderer')) {
      for (const specifier of imports(file)) {
        expect(specifier.startsWith('node:') || specifier === 'electron', `${file} imports ${specifier}`).toBe(false);
        if (specifier.startsWith('.'))
          expect(
            resolvesInto(file, specifier, 'renderer') || resolvesInto(file, specifier, 'shared'),
            `${file} imports ${specifier}`,
          ).toBe(true);
      }
    }
  });

  it('only main/electron/ imports electron', () => {
    const offenders = sources('main')
      .filter((file) => !file.startsWith(path.join(ROOT, 'main', 'electron') + path.sep))
      .filter((file) => imports(file).some((s) => s === 'electron' || s.startsWith('electron/')));
    expect(offenders).toEqual([]);
  });
});
