// Where compiled graphs go. ONNX Runtime reads external data only from the .onnx file's own folder (links are
// resolved and refused), so each .onnx is written beside the checkpoint, loaded, then deleted at once; a read-only
// model folder, or one whose weights are symbolic links (a Hugging Face cache snapshot), gets hard links (or, across
// file systems, copies) of its weight files in a temp folder instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionDevice } from '../../../shared/training.js';
import type { ModelFolder } from '../../model/modelFolder.js';
import type { TensorEntry } from '../../model/safetensors.js';
import { isProcessAlive } from '../../util/process.js';
import { createSession, type DeviceResidentOutputs, type Session, type SessionTuning } from './runtime.js';

export interface GraphPlacement {
  /** Path of a weights file relative to the graphs' folder, for external-data initializers. */
  location: (entry: TensorEntry) => string;
  /** Writes `model`, opens a session on it and deletes the file. */
  open(
    name: string,
    model: Uint8Array,
    device: ExecutionDevice,
    tuning: SessionTuning,
    resident?: DeviceResidentOutputs,
  ): Promise<Session>;
  /** Removes the temp folder, if one was made. */
  cleanup(): void;
}

function writable(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const linksElsewhere = (folder: ModelFolder) =>
  [...new Set([...folder.tensors.values()].map((e) => e.file))].some((file) => fs.lstatSync(file).isSymbolicLink());

const GRAPH_FILE = /^\.peft-studio-(\d+)-.*\.onnx$/;

/** Graph files an engine process left when it was killed between writing and deleting them. */
function removeOrphanedGraphs(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const owner = GRAPH_FILE.exec(name);
    if (owner && !isProcessAlive(Number(owner[1]))) fs.rmSync(path.join(dir, name), { force: true });
  }
}

export function placeGraphs(folder: ModelFolder, placement: 'auto' | 'temp'): GraphPlacement {
  // The prefix keeps concurrent runs on the same model folder apart.
  const prefix = `.peft-studio-${process.pid}-${Date.now().toString(36)}-`;
  let dir = folder.dir;
  let location = (entry: TensorEntry) => path.relative(folder.dir, entry.file);
  let cleanup = () => {};
  if (placement === 'temp' || !writable(folder.dir) || linksElsewhere(folder)) {
    const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-studio-weights-'));
    const placed = new Map<string, string>();
    dir = temp;
    location = (entry) => {
      let name = placed.get(entry.file);
      if (!name) {
        name = `weights_${placed.size}.safetensors`;
        // A hard link to the file itself, not to a symbolic link pointing at it.
        const real = fs.realpathSync(entry.file);
        try {
          fs.linkSync(real, path.join(temp, name));
        } catch {
          fs.copyFileSync(real, path.join(temp, name));
        }
        placed.set(entry.file, name);
      }
      return name;
    };
    cleanup = () => fs.rmSync(temp, { recursive: true, force: true });
  }
  if (dir === folder.dir) removeOrphanedGraphs(dir);
  return {
    location,
    cleanup,
    async open(name, model, device, tuning, resident) {
      const file = path.join(dir, `${prefix}${name}.onnx`);
      fs.writeFileSync(file, model);
      try {
        return await createSession(file, device, tuning, resident);
      } finally {
        fs.rmSync(file, { force: true });
      }
    },
  };
}
