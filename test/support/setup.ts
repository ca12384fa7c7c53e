// Dawn (ONNX Runtime's WebGPU) needs XDG_RUNTIME_DIR to reach a Vulkan driver; CI shells do not always set it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

if (!process.env.XDG_RUNTIME_DIR) {
  const dir = path.join(os.tmpdir(), `peft-studio-xdg-${process.getuid?.() ?? 0}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}
