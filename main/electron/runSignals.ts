// What a run shows outside the window: the taskbar/dock progress bar and an OS notification when it ends. Pure:
// decided from the studio's events alone, so they are tested without Electron.
import type { StudioEvent } from '../../shared/api.js';

/** BrowserWindow.setProgressBar's scale: a fraction in [0, 1], below 0 removes the bar, above 1 is indeterminate. */
export const PROGRESS_HIDDEN = -1;
export const PROGRESS_INDETERMINATE = 2;

/** The progress bar value an event sets, or null when it changes nothing. */
export function progressBarValue(event: StudioEvent): number | null {
  if (event.kind !== 'run') return null;
  const run = event.event;
  if (run.type === 'status') {
    // Queued and running (compiling graphs, reading data) have no step count yet; every other status ends the run's
    // turn.
    return run.status === 'queued' || run.status === 'running' ? PROGRESS_INDETERMINATE : PROGRESS_HIDDEN;
  }
  if (run.event.type !== 'step' || run.event.totalSteps <= 0) return null;
  return Math.min(1, Math.max(0, run.event.step / run.event.totalSteps));
}

export interface RunNotification {
  title: string;
  body: string;
}

/**
 * The OS notification for a run that completed or failed; nothing for anything else (the user paused or cancelled it).
 */
export function runNotification(event: StudioEvent): RunNotification | null {
  if (event.kind !== 'run' || event.event.type !== 'status') return null;
  const { runId, status, error } = event.event;
  if (status === 'completed')
    return { title: `Run ${runId} finished`, body: 'The adapter is ready: try it in the playground or export it.' };
  if (status === 'failed')
    return {
      title: `Run ${runId} failed`,
      body: `${error ?? 'The engine stopped.'} It can be resumed from its last checkpoint.`,
    };
  return null;
}
