// The built-in demo: a small model and dataset shipped in resources/, the default when no other input is given.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const RESOURCES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../resources');
export const DEMO_MODEL_DIR = path.join(RESOURCES, 'demo', 'model');
export const DEMO_DATA_FILE = path.join(RESOURCES, 'demo', 'data.jsonl');
/** The demo's validation rows, never trained on: new phrasings of questions whose answers the data teaches. */
export const DEMO_HELD_OUT_FILE = path.join(RESOURCES, 'demo', 'held-out.jsonl');
