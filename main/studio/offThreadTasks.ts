// What runOffThread may run: each entry takes structured-cloneable arguments and returns a cloneable result.
import { inspectDataset } from '../data/inspect.js';
import { datasetPage } from '../data/table.js';
import { writeHandoff } from '../handoff/handoff.js';
import { writeCheckpointAdapter } from './services/checkpointAdapter.js';
import { exportAdapter } from './services/exportAdapter.js';
import { computeHeldOutAnswers } from './services/heldOutAnswers.js';
import { planCatalogueFit, planFit } from './services/memoryFit.js';

export const OFF_THREAD_TASKS = {
  inspectDataset,
  /** Loading a tokenizer takes a second for a large vocabulary. */
  datasetPage,
  planFit,
  /** Sixteen models' plans, each up to a dozen graph compiles: seconds of CPU. */
  planCatalogueFit,
  /** Merging and GGUF writing are synchronous, and long for a large model. */
  exportAdapter,
  /** Reads a checkpoint's state (the optimizer's moments too) and writes an adapter: a large model's take seconds. */
  writeCheckpointAdapter,
  /** Reads, renders and tokenizes the run's whole dataset: seconds to minutes for a large one. */
  writeHandoff,
  /** Reads the run's dataset and answers its held-out prompts twice with the model: seconds of CPU. */
  computeHeldOutAnswers,
};
