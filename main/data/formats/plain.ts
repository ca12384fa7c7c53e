// Rows that are not chats: prompt/completion pairs, plain text, and pre-tokenized ids.
import { describeValue } from '../jsonValues.js';
import type { Sample } from '../samples.js';
import { columnName, listField, reject, requiredText, type RowFields } from './fields.js';

/** Label value of a token that is not trained, as in PyTorch's cross-entropy. */
const IGNORED_LABEL = -100;

export function completionSample(fields: RowFields): Sample {
  return { kind: 'completion', prompt: requiredText(fields, 'prompt'), completion: requiredText(fields, 'completion') };
}

export function textSample(fields: RowFields): Sample {
  return { kind: 'text', text: requiredText(fields, 'text') };
}

/** input_ids, and labels (default: none, meaning input_ids) of the same length, -100 where not trained. */
export function tokensSample(fields: RowFields): Sample {
  const idsName = columnName('input_ids', fields.mapping);
  const inputIds = tokenIds(listField(fields, 'input_ids', true) ?? [], idsName, false);
  if (inputIds.length === 0) reject(`"${idsName}" is an empty list`);
  const labelValues = listField(fields, 'labels', false);
  if (labelValues === null) return { kind: 'tokens', inputIds, labels: null };
  const labelsName = columnName('labels', fields.mapping);
  const labels = tokenIds(labelValues, labelsName, true);
  if (labels.length !== inputIds.length)
    reject(`"${labelsName}" has ${labels.length} entries and "${idsName}" has ${inputIds.length}; they must match`);
  if (labels.every((label) => label === IGNORED_LABEL))
    reject(`every entry of "${labelsName}" is ${IGNORED_LABEL}, so nothing to train on`);
  return { kind: 'tokens', inputIds, labels };
}

function tokenIds(values: unknown[], name: string, areLabels: boolean): number[] {
  values.forEach((value, i) => {
    const valid =
      typeof value === 'number' && Number.isInteger(value) && (value >= 0 || (areLabels && value === IGNORED_LABEL));
    if (!valid)
      reject(
        `"${name}"[${i}] is ${describeValue(value)}; expected a token id (an integer ≥ 0${areLabels ? ` or ${IGNORED_LABEL}` : ''})`,
      );
  });
  return values as number[];
}
