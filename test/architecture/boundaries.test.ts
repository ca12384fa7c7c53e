// Folders name where code may run: shared/ is pure TypeScript, renderer/ sees only the DOM and shared/, and only the
// Electron glue (main/electron/) may import electron.
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
  return specifier.startsWith('.') && path.resolve(path.dirname(file), specifier).startsWith(path.join(ROOT, folder) + path.sep);
}

describe('import boundaries', () => {
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
        if (specifier.startsWith('.')) expect(resolvesInto(file, specifier, 'renderer') || resolvesInto(file, specifier, 'shared'), `${file} imports ${specifier}`).toBe(true);
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
