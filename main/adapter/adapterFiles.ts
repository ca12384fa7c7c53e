// The files the studio writes into an adapter folder, and only those: where a run may write its adapter (never into
// a user's files, a model folder, a dataset or the studio's own folders), the manifest of what it wrote (written last,
// atomically: names, sizes, sha256), and deleting exactly those files again, never one changed since.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import type { TrainJob } from '../../shared/training.js';
import { ADAPTER_TEMPLATE_FILE, readChatTemplateFile } from '../model/chatTemplate.js';
import { defaultStudioHome } from '../store/home.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import { explainFileError } from '../util/fileErrors.js';

export const MANIFEST_FILE = 'peft-studio-manifest.json';
/** The files a training run writes into its output folder, besides the manifest. */
export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors', 'training.json'];

export interface ManifestEntry {
  /** A plain file name inside the adapter folder. */
  path: string;
  size: number;
  sha256: string;
}

/** The run that wrote an adapter folder. */
export interface AdapterOwner {
  /** Its checkpoint folder: one per run, as run ids are never reused. */
  checkpoints: string;
  /** Its job fingerprint (a database started afresh reuses run ids); null before the data is read: any matches. */
  fingerprint: string | null;
}

export interface AdapterManifest {
  format: 1;
  /** null: written by a run without checkpoints (the CLI without a studio folder), which no later run continues. */
  run: AdapterOwner | null;
  /**
   * Whether the training rows went through the model's chat template, so the playground and `chat` talk to the adapter
   * the same way; null, or absent in a manifest written before it was recorded: not known.
   */
  chatTemplate?: boolean | null;
  files: ManifestEntry[];
}

/** What an adapter must keep out of, and what no delete touches. */
export interface ProtectedPlaces {
  /** Studio folders: their database and settings (the folder itself) and their runs/ folder, whole. */
  homes: string[];
  /** Model folders: an adapter folder may be neither one of them, nor inside one, nor hold one. */
  models: string[];
  /** A run's own folder (its checkpoints), likewise. */
  runs: string[];
  /** Dataset files: an adapter folder may not hold one. */
  files: string[];
}

/** The store's lists, as far as they are read here. */
interface Library {
  home: string;
  models(): { folder: string }[];
  datasets(): { location: string }[];
}

/** Where a path really is: links in its existing part resolved, also for a folder not made yet. */
export function realPath(p: string): string {
  const resolved = path.resolve(p);
  try {
    return fs.realpathSync(resolved);
  } catch {
    const parent = path.dirname(resolved);
    return parent === resolved ? resolved : path.join(realPath(parent), path.basename(resolved));
  }
}

// Windows and macOS file systems ignore case by default.
const comparable = (p: string) => (process.platform === 'win32' || process.platform === 'darwin' ? p.toLowerCase() : p);
const samePath = (a: string, b: string) => comparable(a) === comparable(b);

/** Whether `inner` lies strictly inside `outer`, by their real paths. */
export function isInside(inner: string, outer: string): boolean {
  const rel = path.relative(comparable(realPath(outer)), comparable(realPath(inner)));
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** How `dir` and `other` overlap (the same folder, one inside the other), or null. */
export function overlap(dir: string, other: string): 'is' | 'is inside' | 'holds' | null {
  if (samePath(realPath(dir), realPath(other))) return 'is';
  if (isInside(dir, other)) return 'is inside';
  return isInside(other, dir) ? 'holds' : null;
}

/** Why `dir` may not hold an adapter nor have files deleted by the studio, or null. */
function placeConflict(dir: string, places: ProtectedPlaces): string | null {
  for (const home of places.homes) {
    if (samePath(realPath(dir), realPath(home))) return 'is the studio folder (its database and settings)';
    if (isInside(home, dir)) return `holds the studio folder ${home}`;
    const runs = path.join(home, 'runs');
    const how = overlap(dir, runs);
    if (how) return `${how} the studio's run folders ${runs}`;
  }
  for (const [what, folders] of [
    ['model folder', places.models],
    ['run folder', places.runs],
  ] as const) {
    for (const folder of folders) {
      const how = overlap(dir, folder);
      if (how) return `${how} the ${what} ${folder}`;
    }
  }
  const file = places.files.find((f) => isInside(f, dir));
  return file ? `holds the dataset ${file}` : null;
}

/** What a job's adapter keeps out of: its model folder and data, the default studio folder, its run's folder. */
export function jobPlaces(job: TrainJob, checkpointDir: string | null): ProtectedPlaces {
  const files = job.evalDataFile ? [job.dataFile, job.evalDataFile] : [job.dataFile];
  const runs = checkpointDir ? [path.dirname(checkpointDir)] : [];
  return { homes: [defaultStudioHome()], models: [job.modelDir], runs, files };
}

/** What a job's adapter keeps out of in a studio: its own places, the studio's folder, models and datasets. */
export function studioPlaces(library: Library, job?: TrainJob): ProtectedPlaces {
  const own = job ? jobPlaces(job, null) : { homes: [], models: [], runs: [], files: [] };
  return {
    homes: [library.home, ...own.homes],
    models: [...library.models().map((m) => m.folder), ...own.models],
    runs: [],
    files: [
      ...library
        .datasets()
        .map((d) => d.location)
        .filter((l) => path.isAbsolute(l)),
      ...own.files,
    ],
  };
}

function sha256File(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(1 << 20);
    for (let n = fs.readSync(fd, buffer); n > 0; n = fs.readSync(fd, buffer)) hash.update(buffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The manifest `text` holds, or null when it is not one of ours. */
function parseManifest(text: string | null): AdapterManifest | null {
  try {
    const manifest = JSON.parse(text ?? '') as AdapterManifest;
    const isObject = (value: unknown) => typeof value === 'object' && value !== null;
    const valid = manifest?.format === 1 && Array.isArray(manifest.files) && manifest.files.every(isObject);
    return valid && (manifest.run === null || typeof manifest.run?.checkpoints === 'string') ? manifest : null;
  } catch {
    return null;
  }
}

/** The manifest in an adapter folder as written, for the store; null when there is none. */
export const adapterManifestText = (dir: string) => readText(path.join(dir, MANIFEST_FILE));

/** Whether the adapter in `dir` was trained through the chat template, as its manifest says; null when not known. */
export function adapterChatTemplate(dir: string): boolean | null {
  const recorded = parseManifest(adapterManifestText(dir))?.chatTemplate;
  return typeof recorded === 'boolean' ? recorded : null;
}

// A manifest names files inside its folder only: `../x` or `sub/x` is nothing the studio wrote.
const plainName = (name: unknown): name is string =>
  typeof name === 'string' &&
  name === path.basename(name) &&
  !['', '.', '..', MANIFEST_FILE].includes(name) &&
  !name.includes('\0');

/** The manifest's files as they are now: unchanged (the same plain file, size, sha256) or changed; gone: neither. */
function compareFiles(dir: string, manifest: AdapterManifest): { unchanged: string[]; changed: string[] } {
  const unchanged: string[] = [];
  const changed: string[] = [];
  for (const entry of manifest.files) {
    if (!plainName(entry.path)) continue;
    const file = path.join(dir, entry.path);
    const stat = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!stat) continue;
    const same = stat.isFile() && stat.size === entry.size && sha256File(file) === entry.sha256;
    (same ? unchanged : changed).push(entry.path);
  }
  return { unchanged, changed };
}

const NEW_FOLDER = 'choose a new or empty folder for the adapter';
type OutputChoice = Pick<TrainJob, 'outDir' | 'overwriteOutput'>;

/**
 * Refuses, before any training, an output folder the adapter may not go into: one that overlaps a protected place,
 * or one holding files, unless they are a studio-written adapter (adapter_config.json and our manifest, unchanged)
 * of this same run, or one the job asks to overwrite. Other files in such a folder are never touched.
 */
export function checkOutputFolder(job: OutputChoice, places: ProtectedPlaces, owner: AdapterOwner | null): void {
  if (job.outDir.includes('\0')) throw new UserError(`output folder ${JSON.stringify(job.outDir)}: has a NUL byte`);
  try {
    checkFolder(job, places, owner);
  } catch (err) {
    throw explainFileError(err, path.resolve(job.outDir)) ?? err;
  }
}

function checkFolder(job: OutputChoice, places: ProtectedPlaces, owner: AdapterOwner | null): void {
  const dir = path.resolve(job.outDir);
  const conflict = placeConflict(dir, places);
  if (conflict) throw new UserError(`${dir}: the output folder ${conflict}; ${NEW_FOLDER}`);
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat) return;
  if (!stat.isDirectory()) throw new UserError(`${dir}: the output folder is a file; ${NEW_FOLDER}`);
  const entries = fs.readdirSync(dir).sort();
  if (!entries.length) return;
  const manifest = parseManifest(adapterManifestText(dir));
  const listed = new Set(manifest?.files.map((f) => f.path));
  if (!manifest || !listed.has('adapter_config.json') || !entries.includes('adapter_config.json')) {
    const shown = `${entries.slice(0, 3).join(', ')}${entries.length > 3 ? `, and ${entries.length - 3} more` : ''}`;
    throw new UserError(`${dir}: the output folder holds other files (${shown}); ${NEW_FOLDER}`);
  }
  const { run } = manifest;
  // A fingerprint not known yet (before the data is read) matches any.
  const sameFingerprint = owner !== null && run !== null && (owner.fingerprint ?? run.fingerprint) === run.fingerprint;
  const sameRun = sameFingerprint && run.checkpoints === owner.checkpoints;
  if (!sameRun && job.overwriteOutput !== true) {
    const overwrite = 'or overwrite that adapter (train --overwrite)';
    throw new UserError(`${dir}: holds an adapter PEFT Studio wrote for another run; ${NEW_FOLDER}, ${overwrite}`);
  }
  const { changed } = compareFiles(dir, manifest);
  const foreign = ADAPTER_FILES.filter((name) => entries.includes(name) && !listed.has(name));
  const kept = [...changed, ...foreign][0];
  if (kept) {
    const file = path.join(dir, kept);
    const what = 'not as PEFT Studio wrote it; move it out of the folder to overwrite the adapter';
    throw new UserError(`${file}: ${what}, or ${NEW_FOLDER}`);
  }
}

/**
 * Writes an adapter through `write` (which returns the names of the files it wrote into the folder), then its
 * manifest (the run that made it, whether its rows went through the chat template, the files), atomically and last.
 * The folder is checked again first: it may have changed while the run trained.
 */
export function writeAdapterFolder(
  job: OutputChoice,
  places: ProtectedPlaces,
  made: { run: AdapterOwner | null; chatTemplate: boolean },
  write: (dir: string) => string[],
): void {
  checkOutputFolder(job, places, made.run);
  const dir = path.resolve(job.outDir);
  const files = write(dir).map((name) => {
    const file = path.join(dir, name);
    return { path: name, size: fs.statSync(file).size, sha256: sha256File(file) };
  });
  const manifest: AdapterManifest = {
    format: 1,
    run: made.run,
    chatTemplate: made.chatTemplate,
    files,
  };
  writeFileAtomic(path.join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
}

/**
 * Deletes what the studio wrote into an adapter folder, as `manifestText` (recorded when it was written) lists it,
 * then the folder if that leaves it empty. A file changed since (size or sha256), or no longer a plain file, stays and
 * is returned; everything the manifest does not list stays too. Nothing goes in or around a protected place.
 */
export function deleteAdapterFiles(folder: string, manifestText: string | null, places: ProtectedPlaces): string[] {
  const dir = path.resolve(folder);
  const manifest = parseManifest(manifestText);
  const keep = 'none are deleted; forget the adapter without its files';
  if (!manifest) throw new UserError(`${dir}: recorded before PEFT Studio listed the files it writes, so ${keep}`);
  const conflict = placeConflict(dir, places);
  if (conflict) throw new UserError(`${dir}: the adapter folder ${conflict}, so ${keep}`);
  try {
    const { unchanged, changed } = compareFiles(dir, manifest);
    for (const name of unchanged) fs.unlinkSync(path.join(dir, name));
    const onDisk = adapterManifestText(dir);
    if (onDisk === manifestText) fs.unlinkSync(path.join(dir, MANIFEST_FILE));
    else if (onDisk !== null) changed.push(MANIFEST_FILE);
    removeIfEmpty(dir);
    return changed.map((name) => path.join(dir, name));
  } catch (err) {
    throw explainFileError(err, dir) ?? err;
  }
}

/** Removes `dir` when it is an empty folder; leaves it (and anything else) as it is otherwise. */
export function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    if (!['ENOTEMPTY', 'EEXIST', 'ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
}

/**
 * Copies the chat template file a run rendered its rows with (a job's `data.chatTemplate`) into its adapter folder as
 * `chat_template.jinja`, where the playground and the exports take it from; returns the names written.
 */
export function writeAdapterChatTemplate(dir: string, templateFile: string | null | undefined): string[] {
  if (!templateFile) return []; // the model's own template (a job from before the field has none)
  writeFileAtomic(path.join(dir, ADAPTER_TEMPLATE_FILE), readChatTemplateFile(templateFile).text);
  return [ADAPTER_TEMPLATE_FILE];
}
