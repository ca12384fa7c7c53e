#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { main } from './index.js';

// onnxruntime-node 1.30 crashes (SIGSEGV) at its first session when the process's command line is over about 25 KB
// (20 KB measured fine, 30 KB not), whatever the arguments hold: a long --prompt or --messages. Such a command runs
// again with its arguments in the environment, where any length is safe.
const MAX_COMMAND_LINE = 16 * 1024;
const ARGS_VARIABLE = 'PEFT_STUDIO_ARGS';

const handedOver = process.env[ARGS_VARIABLE];
const args = handedOver === undefined ? process.argv.slice(2) : (JSON.parse(handedOver) as string[]);
if (handedOver === undefined && args.reduce((bytes, arg) => bytes + Buffer.byteLength(arg) + 1, 0) > MAX_COMMAND_LINE) {
  const rerun = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: { ...process.env, [ARGS_VARIABLE]: JSON.stringify(args) },
  });
  process.exitCode = rerun.status ?? 128 + (os.constants.signals[rerun.signal!] ?? 0);
} else {
  delete process.env[ARGS_VARIABLE];
  process.exitCode = await main(args);
}
