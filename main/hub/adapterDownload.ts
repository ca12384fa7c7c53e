// A PEFT adapter repo on the Hub (what a run elsewhere pushed) fetched into the shared cache for import: only the
// adapter's own files at the top of the repo, resumable and verified like model downloads; offline, or with the Hub
// unreachable, the snapshot the cache already holds.
import { modelInfo } from '@huggingface/hub';
import { UserError } from '../../shared/errors.js';
import { IMPORTED_FILES } from '../adapter/importAdapter.js';
import { credentials, HUB_REPO_ID, type HubAccess, type HubRepo } from './access.js';
import { cachedSnapshot, checkHash, checkRevision } from './cache.js';
import { downloadSnapshot, errorContext, listRepoFiles, type DownloadProgress } from './download.js';
import { explainHubError, HubUnreachableError } from './errors.js';
import { throttledProgress } from './modelDownload.js';

/** org/name, optionally @revision (a branch, tag or commit). */
const HUB_SOURCE = /^([^@\s]+)(?:@([^@\s]+))?$/;

/** The repo and revision `source` names when it is a Hub adapter id (org/name[@revision]); else null. */
export function parseHubSource(source: string): { repoId: string; revision: string } | null {
  const match = HUB_SOURCE.exec(source.trim());
  if (!match || !HUB_REPO_ID.test(match[1])) return null;
  return { repoId: match[1], revision: match[2] ?? 'main' };
}

export interface AdapterSnapshot {
  dir: string;
  /** The commit the revision resolved to (the snapshot folder's name). */
  commit: string;
}

/** The adapter repo's snapshot folder, with its adapter files in the cache (only what is missing is fetched). */
export async function downloadAdapterRepo(
  hub: HubAccess,
  repoId: string,
  revision = 'main',
  onProgress: (progress: DownloadProgress) => void = () => {},
): Promise<AdapterSnapshot> {
  const repo: HubRepo = { type: 'model', name: repoId };
  checkRevision(hub.cacheDir, repo, revision); // the repo id and revision name folders in the cache
  const cached = (): AdapterSnapshot | null => {
    const dir = cachedSnapshot(hub.cacheDir, repo, revision);
    return dir ? { dir, commit: dir.split(/[\\/]/).at(-1)! } : null;
  };
  if (hub.offline) {
    const snapshot = cached();
    if (snapshot) return snapshot;
    throw new UserError(
      `${repoId} is not in the Hub cache ${hub.cacheDir}, and HF_HUB_OFFLINE is set: the Hub is not asked`,
    );
  }
  let sha: unknown;
  try {
    ({ sha } = await modelInfo({
      name: repoId,
      revision,
      additionalFields: ['sha'],
      hubUrl: hub.hubUrl,
      fetch: hub.fetch,
      ...credentials(hub),
    }));
  } catch (err) {
    const retry = hub.audience === 'gui' ? 'import it again' : 'run the same command again';
    const explained = explainHubError(err, `look up adapter ${repoId}`, errorContext(hub, repo, retry));
    const snapshot = explained instanceof HubUnreachableError ? cached() : null;
    if (snapshot) return snapshot;
    throw explained;
  }
  checkHash(repo, sha, `the commit sha of ${revision}`, 'commit');
  const wanted = new Set<string>(IMPORTED_FILES);
  const files = await listRepoFiles(hub, repo, sha, (file) => wanted.has(file));
  if (!files.some((f) => f.path === 'adapter_config.json'))
    throw new UserError(`${repoId}: not a PEFT adapter repo: no adapter_config.json at its top (revision ${revision})`);
  if (!files.some((f) => f.path === 'adapter_model.safetensors'))
    throw new UserError(
      `${repoId}: not a PEFT adapter repo the studio can read: no adapter_model.safetensors at its top (revision ${revision})`,
    );
  const plan = { repo, revision, commit: sha, files, totalBytes: files.reduce((sum, f) => sum + f.size, 0) };
  const progress = throttledProgress(onProgress);
  try {
    return { dir: (await downloadSnapshot(hub, plan, progress.onProgress)).snapshotDir, commit: sha };
  } catch (err) {
    progress.flush();
    throw err;
  }
}
