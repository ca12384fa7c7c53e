#!/usr/bin/env node
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { HUGE_PAGE_MALLOC_ENV } from '../engine/compile/mallocEnv.js';

// onnxruntime-node 1.30 crashes (SIGSEGV) at its first session when the process's command line is over about 25 KB
// (20 KB measured fine, 30 KB not), whatever the arguments hold: a long --prompt or --messages. Such a command runs
// again with its arguments in the environment, where any length is safe.
const MAX_COMMAND_LINE = 16 * 1024;
const ARGS_VARIABLE = 'PEFT_STUDIO_ARGS';
// Commands that decode in this process run again with glibc's huge pages (HUGE_PAGE_MALLOC_ENV), which glibc reads
// only at start; the user's own GLIBC_TUNABLES wins. `serve` does not: a second process would outlive a SIGKILL.
const DECODING_COMMANDS = new Set(['generate', 'chat', 'demo']);

const handedOver = process.env[ARGS_VARIABLE];
const args = handedOver === undefined ? process.argv.slice(2) : (JSON.parse(handedOver) as string[]);
const tooLong = args.reduce((bytes, arg) => bytes + Buffer.byteLength(arg) + 1, 0) > MAX_COMMAND_LINE;
const hugePages =
  process.platform === 'linux' && DECODING_COMMANDS.has(args[0]) && process.env.GLIBC_TUNABLES === undefined;
if (handedOver === undefined && (tooLong || hugePages)) {
  const rerun = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: { ...(hugePages ? HUGE_PAGE_MALLOC_ENV : {}), ...process.env, [ARGS_VARIABLE]: JSON.stringify(args) },
  });
  // What would stop this process stops the command.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => rerun.kill(signal));
  rerun.on('exit', (code, signal) => {
    process.exitCode = code ?? 128 + (os.constants.signals[signal!] ?? 0);
  });
} else {
  delete process.env[ARGS_VARIABLE];
  // Loaded only here: the process that runs a command again does not load the CLI and ONNX Runtime for nothing.
  const { main } = await import('./index.js');
  process.exitCode = await main(args);
}
