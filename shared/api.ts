// The one typed contract between the UI and the main process: every method's params (a zod schema, checked on arrival)
// and result, the events the main process pushes, and the error shape replies carry. The Electron preload and the
// browser mode's HTTP + WebSocket client both implement StudioApi; the main process answers through parseCall.
//
// Over HTTP (`peft-studio serve`): POST /api/<method> with the params as JSON; 200 answers the result as JSON, any
// other status `{ "error": ApiErrorShape }`. Events arrive as JSON StudioEvents on the WebSocket /api/events.
// Pure TypeScript plus zod (itself pure TypeScript): no Node, no DOM.
import type { CutRow, DatasetStats, DatasetTableRow, DuplicateRow, TokenPreview } from './data.js';
import { z } from 'zod';
import { ApiError, oneLine, toWire, type WireError } from './errors.js';
import type {
  AdapterRecord,
  ChartPoint,
  CheckpointRecord,
  DatasetRecord,
  ExportRecord,
  MetricPoint,
  ModelRecord,
  RunEvent,
  RunRecord,
} from './runs.js';
import { GGUF_MODEL_QUANTS, runNameProblem } from './runs.js';
import { chatMessagesSchema, MAX_PROMPT_CHARS, samplingSchema, SAMPLING_DEFAULTS } from './generation.js';
import type { DataFormat, DeviceChoice, ExecutionDevice, MemoryParts } from './training.js';
import {
  ADAPTER_METHODS,
  dataSettingsSchema,
  DEVICE_CHOICES,
  JOB_BOUNDS,
  loraTargetsSchema,
  numberSchema,
  OPTIMIZERS,
  pathSchema as path,
  QUANTIZE_CHOICES,
  seqLenSchema as seqLen,
  trainJobSchema,
} from './trainJob.js';

// ---------------------------------------------------------------------------------------------------------------
// Schemas of the shared job types: the job's in trainJob.ts, a generation request's in generation.ts.

export { dataSettingsSchema, trainJobSchema } from './trainJob.js';
export { MAX_PROMPT_CHARS, samplingSchema, type ChatMessage, type SamplingSettings } from './generation.js';

const positiveInt = z.number().int().positive();
const runId = z.strictObject({ id: positiveInt });
const noParams = z.strictObject({});
const runName = z.string().superRefine((name, context) => {
  const problem = runNameProblem(name);
  if (problem) context.addIssue({ code: 'custom', message: problem });
});

/**
 * What the memory plan reads of a training configuration. A whole TrainJob is accepted too (other fields are
 * ignored), so the wizard can send its draft as it is.
 */
export const fitConfigSchema = z.object({
  modelDir: path,
  method: z.enum(ADAPTER_METHODS),
  lora: z.object({ rank: numberSchema(JOB_BOUNDS['lora.rank']), targets: loraTargetsSchema }),
  promptTuning: z.object({ numVirtualTokens: numberSchema(JOB_BOUNDS['promptTuning.numVirtualTokens']) }),
  optimizer: z.object({ name: z.enum(OPTIMIZERS) }),
  batchSize: numberSchema(JOB_BOUNDS.batchSize),
  maxSeqLen: seqLen,
  gradientCheckpointing: z.boolean(),
  device: z.enum(DEVICE_CHOICES),
  /** Drafts saved before 4-bit bases existed have none. */
  quantize: z.enum(QUANTIZE_CHOICES).default('none'),
});
export type FitConfig = z.output<typeof fitConfigSchema>;

/** The memory plan's settings without a model folder: what the catalogue of known models is planned with. */
export const catalogueFitConfigSchema = fitConfigSchema.omit({ modelDir: true });
export type CatalogueFitConfig = z.output<typeof catalogueFitConfigSchema>;
/** The memory budgets the catalogue is planned against, in GiB: common laptop, desktop and GPU sizes. */
export const CATALOGUE_BUDGETS_GIB = [4, 6, 8, 12, 16, 24] as const;

const themeSchema = z.enum(['system', 'light', 'dark']);
export type Theme = z.output<typeof themeSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Every method's params schema. Adding a method: a schema here, a result type in StudioResults, a case in
// main/studio/studioApi.ts.

// As main/hub/access.ts's HUB_REPO_ID: parts start and end with a letter, digit or _; no `..` or `--` anywhere.
const hubRepoId = z.string().regex(/^(?!.*(\.\.|--))[A-Za-z0-9]([\w.-]*\w)?\/\w([\w.-]*\w)?$/, 'expected org/name');
/** org/name, or a bare name in the token owner's namespace. */
const hubRepoName = z
  .string()
  .regex(/^(?!.*(\.\.|--))([A-Za-z0-9]([\w.-]*\w)?\/)?\w([\w.-]*\w)?$/, 'expected org/name or name');

export const PARAMS = {
  'app.info': noParams,
  'devices.list': noParams,
  'demo.paths': noParams,
  'models.list': noParams,
  /** A local model folder, or a Hub repo id (org/name) looked up without downloading weights. */
  'models.inspect': z.strictObject({ source: z.string().min(1), revision: z.string().min(1).optional() }),
  /** Downloads a Hub model into the shared Hugging Face cache; progress comes as download events. */
  'models.download': z.strictObject({
    repoId: hubRepoId,
    revision: z.string().min(1).optional(),
    requestId: z.string().min(1),
  }),
  'models.fit': z.strictObject({ config: fitConfigSchema }),
  /** Every catalogue model (main/model/catalogue.ts) planned with these settings, against each budget. */
  'models.catalogueFit': z.strictObject({ config: catalogueFitConfigSchema }),
  /** The catalogue's models with their size and license, and what the Hub cache already holds of each. */
  'models.catalogue': noParams,
  'datasets.list': noParams,
  'datasets.inspect': z.strictObject({
    file: path,
    modelDir: path,
    data: dataSettingsSchema,
    maxSeqLen: seqLen.default(512),
    /** Rows to show token by token. */
    previewRows: positiveInt.max(50).default(3),
  }),
  /** A page of the dataset table: rows offset+1.. in file order (bad ones too), each as the model sees it. */
  'datasets.rows': z.strictObject({
    file: path,
    modelDir: path,
    data: dataSettingsSchema,
    maxSeqLen: seqLen.default(512),
    offset: z.number().int().nonnegative().default(0),
    limit: positiveInt.max(50).default(20),
  }),
  'runs.list': noParams,
  'runs.get': z.strictObject({ id: positiveInt, logLines: positiveInt.max(10_000).default(200) }),
  'runs.chart': z.strictObject({ id: positiveInt, maxPoints: positiveInt.max(10_000).default(200) }),
  /** name: what the run is called (default: its model, data and date). */
  'runs.start': z.strictObject({ job: trainJobSchema, name: runName.optional() }),
  'runs.rename': z.strictObject({ id: positiveInt, name: runName }),
  /**
   * A saved checkpoint of the run as an adapter in the library (linked to the run, its step in the folder's name), to
   * open in the playground or export; the same checkpoint again answers the adapter made before.
   */
  'runs.checkpointAdapter': z.strictObject({ id: positiveInt, step: positiveInt }),
  'runs.pause': runId,
  /** Stop and save: the adapter as the weights are now (after the current step, or from a paused run's checkpoint). */
  'runs.stop': runId,
  'runs.resume': runId,
  'runs.cancel': runId,
  /** Deletes a finished run's record and folder (its adapter folder stays). */
  'runs.delete': runId,
  /** "Run elsewhere": the run written as a Hugging Face TRL + accelerate project into a new or empty folder. */
  'runs.handoff': z.strictObject({ id: positiveInt, outDir: path }),
  /** "Run elsewhere" for the wizard's recipe: the job written as that project without training it here. */
  'recipes.handoff': z.strictObject({ job: trainJobSchema, outDir: path }),
  /**
   * The run's first `count` validation rows answered as the base model and with its adapter (greedy, one line),
   * beside the expected answer; kept in the run's folder until the adapter changes. keptOnly: answer only with what
   * is kept (null when nothing is), without generating.
   */
  'runs.heldOut': z.strictObject({
    id: positiveInt,
    count: positiveInt.max(20).default(3),
    keptOnly: z.boolean().default(false),
  }),
  'adapters.list': noParams,
  /** Streams `playground.token` events with this requestId, then resolves with the whole answer. */
  'playground.generate': z.strictObject({
    requestId: z.string().min(1),
    modelDir: path,
    /** null: the base model alone. */
    adapterDir: path.nullable(),
    input: z.discriminatedUnion('type', [
      z.strictObject({ type: z.literal('prompt'), text: z.string().min(1).max(MAX_PROMPT_CHARS) }),
      /** Rendered with the model's chat template, ready for the assistant's reply. */
      z.strictObject({ type: z.literal('messages'), messages: chatMessagesSchema }),
    ]),
    sampling: samplingSchema.default(() => ({ ...SAMPLING_DEFAULTS, stop: [...SAMPLING_DEFAULTS.stop] })),
    /** Defaults to the device chosen in settings. */
    device: z.enum(DEVICE_CHOICES).optional(),
    /** The base weights: as stored, or a 4-bit copy made once and cached (int4 decodes fastest). */
    quantize: z.enum(QUANTIZE_CHOICES).default('none'),
  }),
  'playground.stop': z.strictObject({ requestId: z.string().min(1) }),
  /** Forgets a model or dataset record (files stay); refused while runs or adapters refer to it. */
  'models.delete': z.strictObject({ id: positiveInt }),
  'datasets.delete': z.strictObject({ id: positiveInt }),
  /** Forgets an adapter; with deleteFiles also the files the studio wrote into its folder, then the folder if empty. */
  'adapters.delete': z.strictObject({ id: positiveInt, deleteFiles: z.boolean().default(false) }),
  /**
   * A PEFT adapter trained elsewhere into the library: a folder (its full path) or a Hub repo id (org/name, optionally
   * @revision), copied into the studio's adapters/ folder (`name` names that copy); with runId, as the adapter of that
   * run (the one handed over). A Hub download reports progress as download events with requestId.
   */
  'adapters.import': z.strictObject({
    source: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(4096)
      .refine((s) => !s.includes('\0'), 'cannot contain a NUL byte'),
    runId: positiveInt.nullable().optional(),
    name: z.string().min(1).max(100).optional(),
    requestId: z.string().min(1).optional(),
  }),
  'export.run': z.strictObject({
    adapterId: positiveInt,
    /**
     * peft: a copy of the adapter folder; merged: a full model folder; gguf: a llama.cpp LoRA GGUF + Ollama Modelfile;
     * gguf-model: the adapter merged into one model GGUF of `quant`'s tensor types + Ollama Modelfile.
     */
    format: z.enum(['peft', 'merged', 'gguf', 'gguf-model']),
    quant: z.enum(GGUF_MODEL_QUANTS).default('q8_0'),
    /** A folder that does not exist yet or is empty (the GGUF file and Modelfile go inside it). */
    destination: path,
  }),
  /** The model card a push would write, for a preview. */
  'export.modelCard': z.strictObject({ adapterId: positiveInt, repoId: hubRepoName, baseModel: hubRepoId.optional() }),
  /**
   * Pushes the adapter, its card and loss chart to a Hub repo (created private unless said otherwise); progress comes
   * as push events.
   */
  'export.hub': z.strictObject({
    adapterId: positiveInt,
    repoId: hubRepoName,
    private: z.boolean().default(true),
    /** The base model's Hub id, when the adapter's base is not a model downloaded from the Hub. */
    baseModel: hubRepoId.optional(),
    requestId: z.string().min(1),
  }),
  'settings.get': noParams,
  'settings.set': z.strictObject({
    device: z.enum(DEVICE_CHOICES).optional(),
    /** CPU threads of the engine; null: every core. */
    threads: numberSchema(JOB_BOUNDS.threads).nullable().optional(),
    theme: themeSchema.optional(),
    /** Kept by the main process only; null forgets it. Never sent back: settings say only hasToken. */
    hfToken: z.string().trim().min(1).nullable().optional(),
    /**
     * The storage folder from the next start on (its own database, runs and adapters); null: the platform's default.
     */
    storageFolder: path.nullable().optional(),
  }),
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Result types.

export interface AppInfo {
  version: string;
  /** The studio folder: database, runs, checkpoints. */
  home: string;
  platform: string;
  arch: string;
}

export interface DeviceInfo {
  device: ExecutionDevice;
  name: string;
  /** Memory training may use: the machine's RAM for the CPU; null when the device does not say. */
  memoryBytes: number | null;
  /** The device `auto` picks. */
  preferred: boolean;
}

export interface ModelInspection {
  source: string;
  kind: 'local' | 'hub';
  architecture: string | null;
  parameters: number | null;
  /** Stored weight types (f32, bf16...), null when unknown before download. */
  dtype: string | null;
  /** Bytes on disk (local) or to download (Hub). */
  sizeBytes: number | null;
  supported: boolean;
  /** Why the studio cannot train it, when it cannot. */
  reason: string | null;
  /** Hub repos only: gated behind an access request. */
  gated: false | 'auto' | 'manual';
  /**
   * Hub repos only, before download: the peak memory of training with the default settings on this computer's CPU
   * memory, and whether it fits (a local model gets the full plan in the Settings step).
   */
  trainingBytes: number | null;
  fits: boolean | null;
}

export interface MemoryFit {
  device: ExecutionDevice;
  /** The planned peak, and its parts. */
  totalBytes: number;
  parts: MemoryParts;
  /** What the device has; null when unknown (then fits is null too). */
  availableBytes: number | null;
  fits: boolean | null;
  /** The single change that makes it fit, in words; null when it fits or nothing simple does. */
  suggestion: string | null;
  /** The planned peak after that change. */
  suggestedBytes: number | null;
}

/** One budget of one catalogue model: fits as chosen, fits with one change, or does not fit. */
export interface CatalogueFitCell {
  budgetBytes: number;
  verdict: 'fits' | 'change' | 'none';
  /** The change in a word or two ("nf4", "batch 2", "seq 256", "rank 8", "checkpointing"); null unless a change. */
  change: string | null;
  /** The change as the memory plan says it; null unless verdict is change. */
  changeDetail: string | null;
  /** The planned peak: after the change when there is one, else as chosen. */
  plannedBytes: number;
}

export interface CatalogueFitRow {
  /** The Hugging Face repository, org/name. */
  repoId: string;
  /** A short name ("Qwen2.5 7B"). */
  name: string;
  /** The planned peak with the settings as chosen. */
  totalBytes: number;
  /** One per CATALOGUE_BUDGETS_GIB, in that order. */
  cells: CatalogueFitCell[];
}

export interface CatalogueFit {
  /** The device the plans are for (the chosen one, or the one "auto" picks). */
  device: ExecutionDevice;
  /** What that device has; null when unknown. */
  availableBytes: number | null;
  models: CatalogueFitRow[];
}

/** A catalogue model as the model picker shows it, before anything is asked of the Hub. */
export interface CatalogueEntry {
  /** The Hugging Face repository, org/name. */
  repoId: string;
  /** A short name ("Qwen2.5 7B"). */
  name: string;
  /** The license id on its card (apache-2.0, llama3.2...). */
  license: string;
  /** The Hub grants access on request: a token of an account it was granted to is needed. */
  gated: boolean;
  parameters: number;
  /** What its weights weigh as stored (parameters times bytes per weight): about what a download fetches. */
  downloadBytes: number;
  /** Its snapshot folder when the Hub cache holds the whole model; null otherwise. */
  downloadedFolder: string | null;
  /** Bytes of unfinished downloads in the cache, where the next download resumes. */
  partialBytes: number;
}

export interface DatasetInspection {
  file: string;
  /** null with stats null: nothing in the file can be trained on (see badRows). */
  format: DataFormat | null;
  stats: DatasetStats | null;
  /** 1-based row numbers; the first 1000 (stats.badRows counts them all). */
  badRows: { row: number; reason: string }[];
  /** Rows truncation left with nothing to train on; the first 1000. */
  untrainedRows: number[];
  /** Rows left out of training or cut short, with why, in row order; the first 1000. */
  cutRows: CutRow[];
  /** Rows equal to an earlier row once rendered; the first 1000 (stats.duplicateRows counts them all). */
  duplicates: DuplicateRow[];
  sourceSha256: string | null;
  previews: TokenPreview[];
}

export interface DatasetPage {
  /** Rows of the file skipped before this page. */
  offset: number;
  rows: DatasetTableRow[];
  /** Whether the file has rows after this page. */
  more: boolean;
}

export interface RunDetails {
  run: RunRecord;
  model: ModelRecord | null;
  dataset: DatasetRecord | null;
  /** The newest metric point: tokens/s, memory, learning rate. */
  latest: MetricPoint | null;
  log: string[];
  checkpoints: CheckpointRecord[];
  adapters: AdapterRecord[];
}

export interface RunChart {
  loss: ChartPoint[];
  eval: { step: number; loss: number }[];
}

export interface GenerationSummary {
  requestId: string;
  text: string;
  finishReason: 'eos' | 'stop' | 'length' | 'cancelled';
  promptTokens: number;
  newTokens: number;
  timeToFirstTokenSeconds: number;
  tokensPerSecond: number;
  device: ExecutionDevice;
  /** CPU threads of the session that answered (fewer beside a training run). */
  threads: number;
}

export interface ExportResult {
  /** The folder or file written. */
  path: string;
  files: string[];
  /** A GGUF export: the `ollama create` command that makes an Ollama model of it. */
  ollamaCommand?: string;
  record: ExportRecord;
}

/** A held-out row: its prompt, the answer it holds, and the base model's and the adapter's answers to the prompt. */
export interface HeldOutAnswer {
  prompt: string;
  expected: string;
  base: string;
  adapter: string;
}

export interface HeldOutAnswers {
  rows: HeldOutAnswer[];
  /** What the user should know about the rows shown (some left out, fewer than asked); null when nothing. */
  note: string | null;
}

/** A run handed off to TRL (main/handoff/): the project folder and what it does differently from the studio's run. */
export interface HandoffResult {
  folder: string;
  caveats: string[];
  /** The files written, relative to the folder. */
  files: string[];
}

export interface HubExportResult {
  repoId: string;
  repoUrl: string;
  commit: string;
  /** False when the repo existed (the push added a commit). */
  created: boolean;
  files: string[];
  record: ExportRecord;
}

export interface StudioSettings {
  device: DeviceChoice;
  /** CPU threads for training and generation (a job's own count wins); null: every core. */
  threads: number | null;
  /** What null means on this machine. */
  defaultThreads: number;
  theme: Theme;
  hasToken: boolean;
  /** The folder this session keeps its database, runs and adapters in. */
  storageFolder: string;
  /**
   * The folder the app opens from its next start: the one chosen in Settings, else the platform's default
   * (PEFT_STUDIO_HOME and `serve --home` still win).
   */
  chosenStorageFolder: string | null;
  defaultStorageFolder: string;
}

interface StudioResults {
  'app.info': AppInfo;
  'devices.list': DeviceInfo[];
  /** heldOutFile: the demo data's validation rows, which a run on the demo data holds out. */
  'demo.paths': { modelDir: string; dataFile: string; heldOutFile: string };
  'models.list': ModelRecord[];
  'models.inspect': ModelInspection;
  'models.download': ModelRecord;
  'models.fit': MemoryFit;
  'models.catalogueFit': CatalogueFit;
  'models.catalogue': CatalogueEntry[];
  'datasets.list': DatasetRecord[];
  'datasets.inspect': DatasetInspection;
  'datasets.rows': DatasetPage;
  'runs.list': RunRecord[];
  'runs.get': RunDetails;
  'runs.chart': RunChart;
  'runs.start': RunRecord;
  'runs.rename': RunRecord;
  'runs.checkpointAdapter': AdapterRecord;
  'runs.pause': RunRecord;
  'runs.stop': RunRecord;
  'runs.resume': RunRecord;
  'runs.cancel': RunRecord;
  'runs.delete': { deleted: number };
  /** The project folder, and what TRL does differently from the studio's run, one sentence each. */
  'runs.handoff': HandoffResult;
  'recipes.handoff': HandoffResult;
  'runs.heldOut': HeldOutAnswers | null;
  'adapters.list': AdapterRecord[];
  'playground.generate': GenerationSummary;
  'playground.stop': { stopped: boolean };
  'models.delete': { deleted: number };
  'datasets.delete': { deleted: number };
  /** kept: files the studio wrote there but left, as they changed since (anything else in the folder stays too). */
  'adapters.delete': { deleted: number; kept: string[] };
  'adapters.import': AdapterRecord;
  'export.run': ExportResult;
  'export.modelCard': { markdown: string };
  'export.hub': HubExportResult;
  'settings.get': StudioSettings;
  'settings.set': StudioSettings;
}

type ParamSchemas = typeof PARAMS;

/** Every method: params, what a caller sends (defaults may be left out); result, what it gets back. */
export type StudioMethods = {
  [M in keyof ParamSchemas & keyof StudioResults]: { params: z.input<ParamSchemas[M]>; result: StudioResults[M] };
};
export type MethodName = keyof StudioMethods;
export type Params<M extends MethodName> = StudioMethods[M]['params'];
/** Params after validation, defaults filled in: what the main process works with. */
export type CheckedParams<M extends MethodName> = z.output<ParamSchemas[M]>;
export type Result<M extends MethodName> = StudioMethods[M]['result'];

export const METHOD_NAMES = Object.keys(PARAMS) as MethodName[];

// ---------------------------------------------------------------------------------------------------------------
// Events.

export type StudioEvent =
  /** A run's status change or engine event (RunManager.subscribe), carrying its runId. */
  | { kind: 'run'; event: RunEvent }
  /** Text one generated token completes ('' while a character is incomplete). */
  | { kind: 'playground.token'; requestId: string; tokenId: number; text: string }
  /** A push to the Hub: its phases, then per-file hashing and upload progress (0..1). */
  | { kind: 'push.progress'; requestId: string; phase: string; file: string | null; progress: number | null }
  /**
   * doneBytes/totalBytes: the whole download; fileBytes/fileSize: the current file, the index-th (1-based) of count.
   */
  | {
      kind: 'download.progress';
      requestId: string;
      file: string;
      fileBytes: number;
      fileSize: number;
      doneBytes: number;
      totalBytes: number;
      index: number;
      count: number;
    };

export interface StudioApi {
  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>>;
  /** Returns the unsubscribe function. */
  subscribe(listener: (event: StudioEvent) => void): () => void;
  /**
   * Follows the connection to `peft-studio serve` (browser mode): false when it is lost, true when it is back (events
   * sent meanwhile are gone: read again). Returns the unsubscribe function. The desktop bridge has none to lose.
   */
  connection?(listener: (connected: boolean) => void): () => void;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors and validation.

/** What a failed call answers with: `name` is ApiError (bad call), UserError (bad input) or Error (a bug). */
export type ApiErrorShape = WireError;
export { ApiError };
export const errorShape = toWire;

/** The call as the main process handles it: the method and its params, checked, defaults filled in. */
export type CheckedCall = { [M in MethodName]: { method: M; params: CheckedParams<M> } }[MethodName];

/** Checks a message against the contract; throws ApiError naming the method and the first bad field. */
export function parseCall(method: unknown, params: unknown): CheckedCall {
  if (typeof method !== 'string' || !Object.hasOwn(PARAMS, method))
    throw new ApiError(`unknown method ${oneLine(JSON.stringify(method) ?? String(method), 100)}`);
  const name = method as MethodName;
  const checked = PARAMS[name].safeParse(params ?? {});
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const where = issue.path.length ? `params.${issue.path.join('.')}` : 'params';
    throw new ApiError(`${name}: ${where}: ${oneLine(issue.message, 300)}`);
  }
  return { method: name, params: checked.data } as CheckedCall;
}
