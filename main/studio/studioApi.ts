// The studio's API in the main process: every StudioApi method dispatched to the module that does the work (store,
// run manager, engine, hub, playground, adapter, data), and every event those modules emit fanned out to subscribers.
// Both the Electron IPC handler and `peft-studio serve` sit on top of this; each call is checked by parseCall first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseCall,
  type CheckedCall,
  type MethodName,
  type Params,
  type Result,
  type StudioApi,
  type StudioEvent,
} from '../../shared/api.js';
import { UserError } from '../../shared/errors.js';
import type { RunRecord } from '../../shared/runs.js';
import type { DataFormat } from '../../shared/training.js';
import { deleteAdapterFiles, studioPlaces } from '../adapter/adapterFiles.js';
import { DEMO_DATA_FILE, DEMO_HELD_OUT_FILE, DEMO_MODEL_DIR } from '../demo.js';
import { hubAccessFromEnv, tokenFromEnv, type HubAccess } from '../hub/access.js';
import { catalogueEntries, downloadModel } from '../hub/modelDownload.js';
import { previewModelCard, pushAdapter } from '../hub/push.js';
import type { DownloadProgress } from '../hub/download.js';
import { describeModelFolder } from './runs/modelRecord.js';
import { heldOutAnswersOf } from './services/heldOutAnswers.js';
import { importAdapter } from './services/importAdapter.js';
import { checkpointFolder, RunManager, removeRunFolder } from './runs/runManager.js';
import { Store } from '../store/store.js';
import { listDevices } from './services/devices.js';
import { inspectModel } from './services/modelInspection.js';
import { PlaygroundHost } from './services/playgroundHost.js';
import type { GenerationEngine } from './services/playgroundSessions.js';
import { engineThreads, generationThreads } from '../engine/runtime/threads.js';
import { runOffThread } from './offThread.js';
import { recipeHandoffSource, runHandoffSource } from '../handoff/handoff.js';
import { lockHome } from '../store/homeLock.js';
import { quantizedCacheIn, type HomeEnvironment } from '../store/home.js';
import { SettingsFile } from './services/settingsFile.js';
import { memoryTokenVault, type TokenVault } from './services/tokenVault.js';

const PACKAGE_JSON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../package.json');

export interface StudioApiOptions {
  /** The studio folder: database, runs, settings. */
  home: string;
  /** Start queued runs by themselves (default true); tests of the queue itself may turn it off. */
  autoStart?: boolean;
  /**
   * Hub access for the given token (the one set in settings, else the environment's); default: the environment's Hub.
   */
  hub?: (token: string | undefined) => HubAccess;
  /** Where a token entered in the studio is kept; default: memory (browser mode). */
  tokenVault?: TokenVault;
  /** Where the chosen storage folder is recorded; default: this process's environment and platform. */
  homeEnvironment?: HomeEnvironment;
}

export interface StudioService extends StudioApi {
  /** call() for messages from outside the process: method and params not yet checked. */
  dispatch(method: unknown, params: unknown): Promise<unknown>;
  /** Pauses running runs (they keep their checkpoints), stops generation, closes the store. */
  close(): Promise<void>;
}

type Handlers = {
  [M in MethodName]: (params: Extract<CheckedCall, { method: M }>['params']) => Result<M> | Promise<Result<M>>;
};

export function createStudioApi(options: StudioApiOptions): StudioService {
  const store = Store.open(options.home);
  const lock = (() => {
    try {
      return lockHome(store.home);
    } catch (err) {
      store.close();
      throw err;
    }
  })();
  const manager = new RunManager(store, { autoStart: options.autoStart ?? true });
  const settings = new SettingsFile(
    store.home,
    options.tokenVault ?? memoryTokenVault(),
    options.homeEnvironment ?? { env: process.env, platform: process.platform },
  );
  const hubFor = options.hub ?? ((token: string | undefined) => hubAccessFromEnv(process.env, token));
  // Errors from the Hub reach the GUI: their advice names Settings and Retry, not HF_TOKEN and commands.
  const hub = (): HubAccess => ({ ...hubFor(settings.hfToken() ?? tokenFromEnv()), audience: 'gui' });
  const listeners = new Set<(event: StudioEvent) => void>();
  const emit = (event: StudioEvent) => {
    for (const listener of listeners) listener(event);
  };
  const unsubscribeRuns = manager.subscribe((event) => emit({ kind: 'run', event }));
  const playground = new PlaygroundHost(
    (requestId, token) => emit({ kind: 'playground.token', requestId, tokenId: token.id, text: token.text }),
    quantizedCacheIn(store.home),
  );

  /**
   * An adapter to push, its base's Hub id (given, or the one it was downloaded from; else push.ts asks for it), and the
   * name of the run that trained it, for the card.
   */
  const pushSource = (adapterId: number, given: string | undefined) => {
    const adapter = store.adapter(adapterId);
    if (!adapter) throw new UserError(`adapter ${adapterId}: no such adapter`);
    const base = store.model(adapter.baseModelId);
    const runName = adapter.runId === null ? undefined : store.run(adapter.runId)?.name;
    return { adapter, baseModel: given ?? (base?.source === 'hub' ? base.location : undefined), runName };
  };

  /** The settings' device and threads, less the threads of any training run going on now. */
  const generationEngine = (): GenerationEngine => {
    const { device, threads } = settings.get();
    const training = manager
      .runs()
      .filter((run) => run.status === 'running')
      .reduce((sum, run) => sum + (run.threads ?? engineThreads(run.job.threads ?? null)), 0);
    return { device, ...generationThreads(threads, training) };
  };

  const requireRun = (id: number): RunRecord => {
    const run = manager.run(id);
    if (!run) throw new UserError(`run ${id}: no such run`);
    return run;
  };

  const handlers: Handlers = {
    'app.info': () => ({
      version: (JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version,
      home: store.home,
      platform: process.platform,
      arch: os.arch(),
    }),
    'devices.list': () => listDevices(),
    'demo.paths': () => ({ modelDir: DEMO_MODEL_DIR, dataFile: DEMO_DATA_FILE, heldOutFile: DEMO_HELD_OUT_FILE }),
    'models.list': () => store.models(),
    'models.inspect': (p) => inspectModel(p.source, p.revision, hub),
    'models.download': async (p) => {
      const folder = await downloadModel(hub(), p.repoId, p.revision, (progress) =>
        emit({ kind: 'download.progress', requestId: p.requestId, ...progress }),
      );
      return store.addModel(describeModelFolder(folder));
    },
    'models.catalogue': () => catalogueEntries(hub()),
    'models.fit': (p) => runOffThread('planFit', p.config),
    'models.catalogueFit': (p) => runOffThread('planCatalogueFit', p.config),
    'datasets.list': () => store.datasets(),
    'datasets.inspect': (p) => runOffThread('inspectDataset', p),
    'datasets.rows': (p) => runOffThread('datasetPage', p),
    'runs.list': () => manager.runs(),
    'runs.get': (p) => {
      const run = requireRun(p.id);
      return {
        run,
        model: store.model(run.modelId),
        dataset: run.datasetId === null ? null : store.dataset(run.datasetId),
        latest: store.metrics(run.id, run.step).at(-1) ?? null,
        log: store.log(run.id, p.logLines),
        checkpoints: store.checkpoints(run.id),
        adapters: store.adaptersOfRun(run.id),
      };
    },
    'runs.chart': (p) => {
      requireRun(p.id);
      return { loss: store.lossChart(p.id, p.maxPoints), eval: store.evalCurve(p.id) };
    },
    // A job that leaves the threads to the machine gets the studio's setting, recorded with the run.
    'runs.start': (p) => manager.enqueue({ ...p.job, threads: p.job.threads ?? settings.get().threads }, p.name),
    'runs.rename': (p) => {
      requireRun(p.id);
      store.renameRun(p.id, p.name);
      return requireRun(p.id);
    },
    'runs.checkpointAdapter': async (p) => {
      const run = requireRun(p.id);
      const checkpoints = store.checkpoints(run.id);
      const checkpoint = checkpoints.find((c) => c.step === p.step);
      if (!checkpoint) {
        const kept = checkpoints.map((c) => c.step).join(', ');
        throw new UserError(
          `run ${run.id} has no saved checkpoint at step ${p.step}; ${kept ? `it keeps steps ${kept}` : 'it keeps none'}`,
        );
      }
      const dataset = run.datasetId === null ? null : store.dataset(run.datasetId);
      const outDir = path.join(store.home, 'adapters', `run-${run.id}-step-${p.step}`);
      const written = await runOffThread('writeCheckpointAdapter', {
        runId: run.id,
        job: run.job,
        checkpointDir: checkpointFolder(run),
        stepFolder: checkpoint.folder,
        outDir,
        places: studioPlaces(store, run.job),
        dataFormat: (dataset?.format as DataFormat | undefined) ?? null,
        dataSha256: dataset?.sha256 ?? null,
      });
      const parent = run.job.initAdapterDir ? store.adapterByFolder(run.job.initAdapterDir) : null;
      return store.addAdapter(
        {
          runId: run.id,
          parentAdapterId: parent?.id ?? null,
          folder: outDir,
          method: run.method,
          baseModelId: run.modelId,
          metrics: { finalLoss: written.finalLoss, evalLoss: written.evalLoss, steps: written.step },
        },
        written.manifest,
      );
    },
    'runs.pause': (p) => {
      manager.pause(p.id);
      return requireRun(p.id);
    },
    'runs.stop': (p) => {
      manager.stop(p.id);
      return requireRun(p.id);
    },
    'runs.resume': (p) => manager.resume(p.id),
    'runs.cancel': (p) => {
      manager.cancel(p.id);
      return requireRun(p.id);
    },
    'runs.delete': (p) => {
      const run = requireRun(p.id);
      if (run.status === 'queued' || run.status === 'running')
        throw new UserError(`run ${p.id} is ${run.status}: cancel it before deleting it`);
      removeRunFolder(store, run);
      store.deleteRun(p.id);
      return { deleted: p.id };
    },
    'runs.handoff': (p) => runOffThread('writeHandoff', runHandoffSource(store, p.id), p.outDir),
    'recipes.handoff': (p) => runOffThread('writeHandoff', recipeHandoffSource(p.job), p.outDir),
    'runs.heldOut': (p) =>
      heldOutAnswersOf(requireRun(p.id), p.count, (job, count) =>
        p.keptOnly ? Promise.resolve(null) : runOffThread('computeHeldOutAnswers', job, count),
      ),
    'adapters.list': () => store.adapters(),
    'adapters.delete': (p) => {
      const adapter = store.adapter(p.id);
      if (!adapter) throw new UserError(`adapter ${p.id}: no such adapter`);
      const manifest = store.adapterManifest(p.id);
      const kept = p.deleteFiles ? deleteAdapterFiles(adapter.folder, manifest, studioPlaces(store)) : [];
      store.deleteAdapter(p.id);
      return { deleted: p.id, kept };
    },
    'adapters.import': async (p) => {
      const { requestId } = p;
      const onProgress = (step: DownloadProgress) => {
        if (requestId) emit({ kind: 'download.progress', requestId, ...step });
      };
      return (await importAdapter(store, hub, p, onProgress)).adapter;
    },
    'models.delete': (p) => {
      store.deleteModel(p.id);
      return { deleted: p.id };
    },
    'datasets.delete': (p) => {
      store.deleteDataset(p.id);
      return { deleted: p.id };
    },
    'playground.generate': (p) => playground.generate(p, generationEngine()),
    'playground.stop': (p) => ({ stopped: playground.stop(p.requestId) }),
    'export.run': async (p) => {
      const adapter = store.adapter(p.adapterId);
      if (!adapter) throw new UserError(`adapter ${p.adapterId}: no such adapter`);
      const base = store.model(adapter.baseModelId);
      if (!base) throw new UserError(`adapter ${p.adapterId}: its base model (record ${adapter.baseModelId}) is gone`);
      const written = await runOffThread('exportAdapter', {
        adapter,
        baseModelDir: base.folder,
        format: p.format,
        quant: p.quant,
        destination: p.destination,
      });
      return { ...written, record: store.addExport(adapter.id, p.format, written.path) };
    },
    'export.modelCard': (p) => {
      const { adapter, baseModel, runName } = pushSource(p.adapterId, p.baseModel);
      const options = { adapterDir: adapter.folder, repoId: p.repoId, baseModel, runName };
      return { markdown: previewModelCard(options, hub().hubUrl) };
    },
    'export.hub': async (p) => {
      const { adapter, baseModel, runName } = pushSource(p.adapterId, p.baseModel);
      const pushed = await pushAdapter(
        hub(),
        { adapterDir: adapter.folder, repoId: p.repoId, private: p.private, baseModel, runName },
        (progress) =>
          emit({
            kind: 'push.progress',
            requestId: p.requestId,
            phase: progress.phase,
            file: 'file' in progress ? progress.file : null,
            progress: 'progress' in progress ? progress.progress : null,
          }),
      );
      const { repoId, repoUrl, commit, created, files } = pushed;
      return { repoId, repoUrl, commit, created, files, record: store.addExport(adapter.id, 'hub', repoId, repoUrl) };
    },
    'settings.get': () => settings.get(),
    'settings.set': (p) => settings.set(p),
  };

  const dispatch = async (method: unknown, params: unknown): Promise<unknown> => {
    const call = parseCall(method, params);
    return (handlers[call.method] as (params: unknown) => unknown)(call.params);
  };

  return {
    dispatch,
    call: <M extends MethodName>(method: M, params: Params<M>) => dispatch(method, params) as Promise<Result<M>>,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      await Promise.all([manager.close(), playground.close()]);
      unsubscribeRuns();
      listeners.clear();
      store.close();
      lock.release();
    },
  };
}
