// What runOffThread may run: each entry takes structured-cloneable arguments and returns a cloneable result.
import { inspectDataset } from '../data/inspect.js';
import { planFit } from './memoryFit.js';

export const OFF_THREAD_TASKS = {
  inspectDataset,
  planFit,
};
