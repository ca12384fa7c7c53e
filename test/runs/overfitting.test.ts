// The overfitting warning the dashboard shows and the engine logs: validation rising while training loss falls.
import { describe, expect, it } from 'vitest';
import { overfittingWarning } from '../../shared/runs.js';

/** Training losses 1..n from a function of the step. */
const train = (n: number, loss: (step: number) => number) =>
  Array.from({ length: n }, (_, i) => ({ step: i + 1, loss: loss(i + 1) }));

describe('overfittingWarning', () => {
  const falling = train(30, (step) => 3 - step / 20);

  it('warns when the last validation rose while training loss fell, naming the best validation', () => {
    const evals = [
      { step: 10, loss: 2.5 },
      { step: 20, loss: 2.25 },
      { step: 30, loss: 2.375 },
    ];
    expect(overfittingWarning(falling, evals)).toBe(
      'Validation loss rose from 2.250 to 2.375 (step 30) while training loss fell: the adapter is starting to ' +
        'memorise its training rows (overfitting). Its best validation loss was 2.250 at step 20: fewer steps, or ' +
        'Stop and save adapter while it runs, keep it nearer that point.',
    );
  });

  it('says nothing while validation falls, when both rise, or before two validations', () => {
    expect(
      overfittingWarning(falling, [
        { step: 10, loss: 2.5 },
        { step: 20, loss: 2.4 },
      ]),
    ).toBeNull();
    const rising = train(30, (step) => 1 + step / 20);
    expect(
      overfittingWarning(rising, [
        { step: 10, loss: 2.5 },
        { step: 20, loss: 2.6 },
      ]),
    ).toBeNull();
    expect(overfittingWarning(falling, [{ step: 10, loss: 2.5 }])).toBeNull();
    expect(
      overfittingWarning(
        [],
        [
          { step: 10, loss: 2.5 },
          { step: 20, loss: 2.6 },
        ],
      ),
    ).toBeNull();
  });
});
