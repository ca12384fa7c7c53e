// The Data step's table of every row: which page is shown, asked of the main process a page at a time; an answer that
// arrives after the user moved on (or the data changed) is dropped.
import type { DatasetPage, Params, StudioApi } from '../../../shared/api.js';
import { describeError } from './wizard.js';

/** Rows on a page: enough to read through, few enough to render and tokenize at once. */
export const TABLE_PAGE_ROWS = 20;

/** What a page is read with: the file and the settings its last check used. */
export type TableQuery = Omit<Params<'datasets.rows'>, 'offset' | 'limit'>;

export class DatasetTable {
  page = $state<DatasetPage | null>(null);
  busy = $state(false);
  error = $state<string | null>(null);
  private query: TableQuery | null = null;
  private request = 0;

  constructor(private readonly api: StudioApi) {}

  /** Shows the first page of a newly checked file. */
  open(query: TableQuery): Promise<void> {
    this.query = query;
    this.page = null;
    return this.show(0);
  }

  /** Forgets the file (the data changed and is not checked yet). */
  close(): void {
    this.query = null;
    this.request++;
    this.page = null;
    this.error = null;
    this.busy = false;
  }

  get hasPrevious(): boolean {
    return (this.page?.offset ?? 0) > 0;
  }

  get hasNext(): boolean {
    return this.page?.more ?? false;
  }

  next(): Promise<void> {
    return this.page ? this.show(this.page.offset + TABLE_PAGE_ROWS) : Promise.resolve();
  }

  previous(): Promise<void> {
    return this.page ? this.show(Math.max(0, this.page.offset - TABLE_PAGE_ROWS)) : Promise.resolve();
  }

  /** "rows 21–40 of 200": the page's place in the file; the total when the check counted it. */
  rangeLabel(totalRows: number | null): string {
    if (!this.page || this.page.rows.length === 0) return 'no rows';
    const { offset, rows } = this.page;
    return `rows ${offset + 1}–${offset + rows.length}${totalRows === null ? '' : ` of ${totalRows}`}`;
  }

  private async show(offset: number): Promise<void> {
    const query = this.query;
    if (query === null) return;
    const request = ++this.request;
    this.busy = true;
    this.error = null;
    try {
      const page = await this.api.call('datasets.rows', { ...query, offset, limit: TABLE_PAGE_ROWS });
      if (request === this.request) this.page = page;
    } catch (err) {
      if (request === this.request) this.error = describeError(err);
    } finally {
      if (request === this.request) this.busy = false;
    }
  }
}
