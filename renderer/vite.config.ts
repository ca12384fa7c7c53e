// Builds the Svelte renderer into dist/renderer/. A relative base lets the same files load from file:// in Electron
// and from `peft-studio serve` over HTTP.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: '../dist/renderer',
    emptyOutDir: true,
    // The server's CSP forbids inline scripts; never inline the module preload polyfill either.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
