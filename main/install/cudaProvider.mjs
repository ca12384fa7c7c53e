// onnxruntime-node fetches its CUDA provider from its own feed at install and fails the whole install when the feed is
// unreachable. package.json's allowScripts denies that script; this one runs it instead and only warns on failure:
// users who reach the feed get CUDA, offline machines still install.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

if (process.platform !== 'linux' || process.arch !== 'x64' || process.env.ONNXRUNTIME_NODE_INSTALL === 'skip')
  process.exit(0);
let ortInstall;
try {
  ortInstall = path.join(
    path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')),
    'script',
    'install.js',
  );
} catch {
  process.exit(0);
}
const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'cuda12' };
delete env.npm_config_onnxruntime_node_install;
const result = spawnSync(process.execPath, [ortInstall], { env, stdio: 'pipe', timeout: 600_000 });
if (result.status !== 0) {
  console.warn(
    'peft-studio: CUDA provider for onnxruntime-node not installed (feed unreachable); CPU and WebGPU remain available.',
  );
}
