// The wizard's live state: the form, what the main process answered about it, and the calls that ask. Screens bind
// to it; the rules it applies live in wizard.ts.
import type { AppInfo, CatalogueFit, CatalogueFitConfig, Result, StudioApi, StudioEvent } from '../../../shared/api.js';
import type { DataSuggestion } from '../../../shared/errors.js';
import type { RunRecord } from '../../../shared/runs.js';
import type { DataFormat, TrainJob } from '../../../shared/training.js';
import {
  adapterOutDir,
  applyPreset,
  catalogueFitConfig,
  dataSettings,
  describeError,
  fitConfig,
  initialForm,
  settingsProblems,
  stepProblems,
  toTrainJob,
  WIZARD_STEPS,
  type PresetName,
  type WizardFacts,
  type WizardForm,
  type WizardStep,
} from './wizard.js';
import { DatasetTable } from './dataTable.svelte.js';

/** Wait this long after the last keystroke before asking for a new memory plan. */
const FIT_DEBOUNCE_MS = 250;

export class WizardState {
  form = $state<WizardForm>(initialForm());
  facts = $state<WizardFacts>({ modelDir: null, model: null, dataFile: null, dataset: null, fit: null });
  step = $state<WizardStep>('model');
  /** Which question is being asked of the main process, for the busy indicators. */
  busy = $state<'model' | 'download' | 'data' | 'fit' | 'start' | null>(null);
  download = $state<{ file: string; doneBytes: number; totalBytes: number; index: number; count: number } | null>(null);
  /** Why the last download stopped, in one line; the Model step offers Retry (which resumes it). */
  downloadError = $state<string | null>(null);
  error = $state<string | null>(null);
  fitError = $state<string | null>(null);
  /** Every catalogue model planned with the current settings (the Settings step's "Which models fit"). */
  catalogue = $state<CatalogueFit | null>(null);
  catalogueError = $state<string | null>(null);
  catalogueBusy = $state(false);
  /** The format and columns the main process guessed when it could not tell the data's layout. */
  dataSuggestion = $state<DataSuggestion | null>(null);
  /** The checked file's rows, a page at a time (the Data step's table). */
  readonly table: DatasetTable;
  private dataRequest = 0;
  /** Unsubscribes from the progress of the last download, kept after a failure for its last event. */
  private stopDownloadEvents: (() => void) | null = null;

  private fitRequest = 0;
  private fitTimer: ReturnType<typeof setTimeout> | null = null;
  /** The settings of the last catalogue asked for: the same settings are not planned again (seconds of CPU). */
  private catalogueAsked: string | null = null;
  /** Settings to plan once the catalogue in flight answers: one at a time, so edits do not pile up plans. */
  private cataloguePending: CatalogueFitConfig | null = null;
  private catalogueInFlight = false;

  constructor(
    private readonly api: StudioApi,
    private readonly demo: () => Result<'demo.paths'> | null,
  ) {
    this.table = new DatasetTable(api);
  }

  problems(step: WizardStep): string[] {
    return stepProblems(step, this.form, this.facts);
  }

  /** Steps before the first unfinished one (and it) can be visited. */
  reachable(step: WizardStep): boolean {
    const index = WIZARD_STEPS.indexOf(step);
    return WIZARD_STEPS.slice(0, index).every((earlier) => this.problems(earlier).length === 0);
  }

  goTo(step: WizardStep): void {
    if (!this.reachable(step)) return;
    this.step = step;
    this.error = null;
    if (step === 'data' && this.facts.dataset === null && this.form.dataSource === 'demo') void this.checkData();
    if (step === 'settings' || step === 'review') this.scheduleFit();
  }

  next(): void {
    const index = WIZARD_STEPS.indexOf(this.step);
    if (index < WIZARD_STEPS.length - 1) this.goTo(WIZARD_STEPS[index + 1]);
  }

  back(): void {
    const index = WIZARD_STEPS.indexOf(this.step);
    if (index > 0) this.goTo(WIZARD_STEPS[index - 1]);
  }

  /** A different model invalidates everything learned from the old one (the token preview uses its tokenizer). */
  modelChanged(): void {
    this.facts = { modelDir: null, model: null, dataFile: this.facts.dataFile, dataset: null, fit: null };
    this.stopDownloadEvents?.();
    this.stopDownloadEvents = null;
    this.download = null;
    this.downloadError = null;
    // The Quick preset differs on the demo model (its own recipe).
    if (this.form.preset !== 'custom') this.choosePreset(this.form.preset);
    if (this.form.modelSource === 'demo') void this.checkModel();
  }

  dataChanged(): void {
    this.dataRequest++;
    this.facts = { ...this.facts, dataFile: null, dataset: null };
    this.dataSuggestion = null;
    this.table.close();
    if (this.form.dataSource === 'demo') void this.checkData();
  }

  methodChanged(): void {
    if (this.form.preset !== 'custom') this.choosePreset(this.form.preset);
  }

  choosePreset(preset: PresetName): void {
    this.form = applyPreset(this.form, preset);
  }

  async checkModel(): Promise<void> {
    const source = this.modelSource();
    if (source === null) return;
    await this.ask('model', async () => {
      const model = await this.api.call('models.inspect', { source });
      // A Hub model must be downloaded before training; a folder is ready as it is.
      this.facts = { ...this.facts, model, modelDir: model.kind === 'local' && model.supported ? source : null };
    });
  }

  async downloadModel(): Promise<void> {
    const repoId = this.form.hubRepo.trim();
    const requestId = `download-${Date.now()}`;
    this.stopDownloadEvents?.();
    this.stopDownloadEvents = this.api.subscribe((event: StudioEvent) => {
      if (event.kind === 'download.progress' && event.requestId === requestId) this.download = event;
    });
    this.busy = 'download';
    this.error = null;
    this.downloadError = null;
    try {
      const record = await this.api.call('models.download', { repoId, requestId });
      // Read as any folder is (offline too): what it is, and that it can be trained.
      const model = await this.api.call('models.inspect', { source: record.folder });
      if (this.form.hubRepo.trim() === repoId) this.facts = { ...this.facts, model, modelDir: record.folder };
      this.stopDownloadEvents?.();
      this.stopDownloadEvents = null;
      this.download = null;
    } catch (err) {
      // The bar stays where the download stopped (its last event may come after the answer): Retry continues there.
      this.downloadError = describeError(err);
    } finally {
      this.busy = null;
    }
  }

  async checkData(): Promise<void> {
    const file = this.form.dataSource === 'demo' ? this.demo()?.dataFile : this.form.dataFile.trim();
    const modelDir = this.facts.modelDir;
    if (!file || !modelDir) return;
    // A new check replaces the last one's answer; one that arrives after the data changed again is dropped.
    const request = ++this.dataRequest;
    this.facts = { ...this.facts, dataFile: null, dataset: null };
    this.table.close();
    await this.ask('data', async () => {
      this.dataSuggestion = null;
      const query = { file, modelDir, data: dataSettings(this.form), maxSeqLen: this.form.maxSeqLen };
      const inspection = this.api.call('datasets.inspect', { ...query, previewRows: 3 }).catch((err: unknown) => {
        if (request === this.dataRequest)
          this.dataSuggestion = (err as { suggestion?: DataSuggestion }).suggestion ?? null;
        throw err;
      });
      // The table's first page is read meanwhile, so the facts and the rows show together.
      const firstPage = this.table.open(query);
      const dataset = await inspection;
      await firstPage;
      if (request === this.dataRequest) this.facts = { ...this.facts, dataFile: file, dataset };
    });
  }

  /** Trains on each distinct row once, or on every row again; checks the data again to show what that leaves. */
  dropDuplicates(drop: boolean): Promise<void> {
    this.form.dropDuplicates = drop;
    return this.checkData();
  }

  /** Reads the file again with the format and columns its headers suggested. */
  applyDataSuggestion(): Promise<void> {
    const suggestion = this.dataSuggestion;
    if (suggestion === null) return Promise.resolve();
    this.form.dataFormat = suggestion.format as DataFormat;
    this.form.dataColumns = { ...suggestion.columns };
    return this.checkData();
  }

  /**
   * Asks for the memory plan of the current settings once typing pauses, and on the Settings step for the catalogue's
   * too; stale answers are dropped.
   */
  scheduleFit(): void {
    if (this.fitTimer !== null) clearTimeout(this.fitTimer);
    const modelDir = this.facts.modelDir;
    if (modelDir === null || settingsProblems(this.form).length > 0) return;
    const config = fitConfig(this.form, modelDir);
    const catalogue = this.step === 'settings' ? catalogueFitConfig(this.form) : null;
    const request = ++this.fitRequest;
    this.fitTimer = setTimeout(() => {
      this.fitTimer = null;
      if (catalogue !== null) this.askCatalogueFit(catalogue);
      this.busy = 'fit';
      this.api.call('models.fit', { config }).then(
        (fit) => {
          if (request !== this.fitRequest) return;
          this.facts = { ...this.facts, fit };
          this.fitError = null;
          this.busy = null;
        },
        (err) => {
          if (request !== this.fitRequest) return;
          this.fitError = describeError(err);
          this.busy = null;
        },
      );
    }, FIT_DEBOUNCE_MS);
  }

  /**
   * The catalogue planned with `config`, unless these very settings were asked for last. The plans take seconds and
   * cannot be stopped, so while one is in flight only the newest settings wait to be asked next.
   */
  private askCatalogueFit(config: CatalogueFitConfig): void {
    const asked = JSON.stringify(config);
    if (this.catalogueInFlight) {
      this.cataloguePending = asked === this.catalogueAsked ? null : config;
      return;
    }
    if (asked === this.catalogueAsked) return;
    this.catalogueAsked = asked;
    this.catalogueInFlight = true;
    this.catalogueBusy = true;
    this.api
      .call('models.catalogueFit', { config })
      .then(
        (catalogue) => {
          this.catalogue = catalogue;
          this.catalogueError = null;
        },
        (err) => {
          // A failed answer is asked again with the next edit, even of the same settings.
          this.catalogueAsked = null;
          this.catalogueError = describeError(err);
        },
      )
      .finally(() => {
        this.catalogueInFlight = false;
        const next = this.cataloguePending;
        this.cataloguePending = null;
        if (next === null) this.catalogueBusy = false;
        else this.askCatalogueFit(next);
      });
  }

  /**
   * The job the form makes, as a run would train it (or "Run elsewhere" hand it off); null until the steps before the
   * review are done. The run name is not part of it.
   */
  recipe(info: AppInfo): TrainJob | null {
    const { modelDir, dataFile } = this.facts;
    const unfinished = WIZARD_STEPS.some((step) => step !== 'review' && this.problems(step).length > 0);
    if (unfinished || modelDir === null || dataFile === null) return null;
    return toTrainJob(
      this.form,
      {
        modelDir,
        dataFile,
        // The moment the job is made names its folder; nothing reacts to it.
        // eslint-disable-next-line svelte/prefer-svelte-reactivity
        outDir: adapterOutDir(info.home, info.platform, new Date()),
      },
      // The demo's held-out rows are new phrasings of questions it trains on: what its held-out answers compare on.
      this.form.dataSource === 'demo' ? (this.demo()?.heldOutFile ?? null) : null,
    );
  }

  async start(info: AppInfo): Promise<RunRecord | null> {
    const job = this.problems('review').length > 0 ? null : this.recipe(info);
    if (job === null) return null;
    let run: RunRecord | null = null;
    await this.ask('start', async () => {
      const name = this.form.runName.trim();
      run = await this.api.call('runs.start', { job, ...(name && { name }) });
    });
    return run;
  }

  private modelSource(): string | null {
    switch (this.form.modelSource) {
      case 'demo':
        return this.demo()?.modelDir ?? null;
      case 'local':
        return this.form.modelFolder.trim() || null;
      case 'hub':
        return this.form.hubRepo.trim() || null;
    }
  }

  private async ask(what: NonNullable<WizardState['busy']>, work: () => Promise<void>): Promise<void> {
    this.busy = what;
    this.error = null;
    try {
      await work();
    } catch (err) {
      this.error = describeError(err);
    } finally {
      this.busy = null;
    }
  }
}
