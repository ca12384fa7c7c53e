// What runOffThread may run: each entry takes structured-cloneable arguments and returns a cloneable result.
import { inspectDataset } from '../data/inspect.js';
import { exportAdapter } from './services/exportAdapter.js';
import { planCatalogueFit, planFit } from './services/memoryFit.js';

export const OFF_THREAD_TASKS = {
  inspectDataset,
  planFit,
  /** Sixteen models' plans, each up to a dozen graph compiles: seconds of CPU. */
  planCatalogueFit,
  /** Merging and GGUF writing are synchronous, and long for a large model. */
  exportAdapter,
};
