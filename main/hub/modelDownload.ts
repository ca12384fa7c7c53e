// The studio's model downloads: the catalogue as the model picker shows it (size, license, what the cache holds), and
// a Hub model fetched into the shared cache for the GUI: a partial download resumes where it stopped (in this session
// or an earlier one, since the partial file stays in the cache), a model already cached is used when the Hub cannot be
// reached, and progress comes a few times a second rather than once per network chunk.
import fs from 'node:fs';
import path from 'node:path';
import type { CatalogueEntry } from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import { catalogueSpecs } from '../model/catalogue.js';
import type { HubAccess, HubRepo } from './access.js';
import { cachedSnapshot, repoCacheDir } from './cache.js';
import { downloadSnapshot, type DownloadProgress } from './download.js';
import { HubUnreachableError } from './errors.js';
import { countParameters, preflightModel } from './preflight.js';

/** The longest wait between two progress reports of a file still arriving. */
const PROGRESS_INTERVAL_MS = 100;

/** Bytes of the repo's unfinished downloads (blobs/*.incomplete), which the next download continues. */
function partialBytes(cacheDir: string, repo: HubRepo): number {
  const blobs = path.join(repoCacheDir(cacheDir, repo), 'blobs');
  let total = 0;
  try {
    for (const name of fs.readdirSync(blobs)) {
      if (name.endsWith('.incomplete')) total += fs.statSync(path.join(blobs, name)).size;
    }
  } catch {
    return 0; // no blobs folder: nothing started
  }
  return total;
}

/** Every catalogue model with its size and license, and whether the cache holds it whole or in part. */
export function catalogueEntries(hub: HubAccess): CatalogueEntry[] {
  return catalogueSpecs().map(({ repoId, name, license, gated, spec, weightBytesPerElement }) => {
    const repo: HubRepo = { type: 'model', name: repoId };
    const parameters = countParameters(spec);
    return {
      repoId,
      name,
      license,
      gated,
      parameters,
      downloadBytes: parameters * weightBytesPerElement,
      downloadedFolder: cachedSnapshot(hub.cacheDir, repo, 'main'),
      partialBytes: partialBytes(hub.cacheDir, repo),
    };
  });
}

/**
 * `report` called at most every PROGRESS_INTERVAL_MS while a file arrives, and always when one is complete; `flush`
 * reports the last progress held back (where a failed download stopped).
 */
export function throttledProgress(report: (progress: DownloadProgress) => void): {
  onProgress: (progress: DownloadProgress) => void;
  flush: () => void;
} {
  let last = 0;
  let held: DownloadProgress | null = null;
  return {
    onProgress: (progress) => {
      const now = Date.now();
      if (progress.fileBytes < progress.fileSize && now - last < PROGRESS_INTERVAL_MS) {
        held = progress;
        return;
      }
      last = now;
      held = null;
      report(progress);
    },
    flush: () => {
      if (held) report(held);
      held = null;
    },
  };
}

/**
 * The snapshot folder of `repoId` at `revision`, downloaded into the Hub cache (only what is missing is fetched,
 * and a partial file continues with a Range request). Offline, or with the Hub unreachable, a snapshot the cache
 * already holds is the answer; a model the studio cannot train is refused before its weights are fetched.
 */
export async function downloadModel(
  hub: HubAccess,
  repoId: string,
  revision = 'main',
  onProgress: (progress: DownloadProgress) => void = () => {},
): Promise<string> {
  const repo: HubRepo = { type: 'model', name: repoId };
  const cached = () => cachedSnapshot(hub.cacheDir, repo, revision);
  if (hub.offline) {
    const dir = cached();
    if (dir) return dir;
    throw new UserError(
      `${repoId} is not in the Hub cache ${hub.cacheDir}, and HF_HUB_OFFLINE is set: the Hub is not asked`,
    );
  }
  let plan;
  try {
    plan = await preflightModel(hub, repoId, { revision });
  } catch (err) {
    const dir = err instanceof HubUnreachableError ? cached() : null;
    if (dir) return dir;
    throw err;
  }
  if (!plan.supported) throw new UserError(`${repoId}: the studio cannot train this model: ${plan.reason}`);
  const progress = throttledProgress(onProgress);
  try {
    return (await downloadSnapshot(hub, plan, progress.onProgress)).snapshotDir;
  } catch (err) {
    progress.flush();
    throw err;
  }
}
