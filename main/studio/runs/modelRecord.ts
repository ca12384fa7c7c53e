// What the store records about a model folder: where it came from (the Hugging Face cache layout names the Hub repo
// and revision), its architecture, parameter count, dtype and size, all read from config.json and safetensors headers.
import fs from 'node:fs';
import path from 'node:path';
import type { ModelRecord } from '../../../shared/runs.js';
import { openModelFolder } from '../../model/modelFolder.js';

const HUB_SNAPSHOT = /models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]([^/\\]+)$/;

export function describeModelFolder(
  dir: string,
  builtinDirs: readonly string[] = [],
): Omit<ModelRecord, 'id' | 'addedAt'> {
  const folder = openModelFolder(dir);
  const entries = [...folder.tensors.values()];
  const parameters = entries.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  const dtypes = [...new Set(entries.map((t) => t.dtype))];
  const files = [...new Set(entries.map((t) => t.file))];
  const sizeBytes = files.reduce((sum, f) => sum + fs.statSync(f).size, 0);
  const hub = HUB_SNAPSHOT.exec(path.resolve(dir));
  const common = {
    folder: path.resolve(dir),
    architecture: folder.spec.modelType,
    parameters,
    dtype: dtypes.join('+'),
    sizeBytes,
  };
  if (hub) return { ...common, source: 'hub', location: `${hub[1]}/${hub[2]}`, revision: hub[3] };
  return {
    ...common,
    source: builtinDirs.includes(path.resolve(dir)) ? 'builtin' : 'local',
    location: path.resolve(dir),
    revision: null,
  };
}
