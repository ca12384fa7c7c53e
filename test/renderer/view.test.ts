// Chart geometry, hash routes and number formatting: the pure parts behind the dashboard and navigation.
import { describe, expect, it } from 'vitest';
import { chartGeometry } from '../../renderer/src/lib/chart.js';
import { formatBytes, formatDuration } from '../../renderer/src/lib/format.js';
import { parseRoute, routeHash, type Route } from '../../renderer/src/lib/route.js';

const BOX = { width: 100, height: 50, padding: { top: 0, right: 0, bottom: 0, left: 0 } };

describe('chartGeometry', () => {
  it('maps the first step to the left edge, the last to the right, and the highest loss to the top', () => {
    const { paths } = chartGeometry(
      [
        {
          label: 'train',
          points: [
            { step: 1, loss: 4 },
            { step: 11, loss: 2 },
          ],
        },
      ],
      BOX,
    );
    expect(paths).toEqual(['M0.0,0.0 L100.0,50.0']);
  });

  it('shares the axes between series and leaves an empty series empty', () => {
    const geometry = chartGeometry(
      [
        {
          label: 'a',
          points: [
            { step: 0, loss: 2 },
            { step: 10, loss: 1 },
          ],
        },
        { label: 'b', points: [] },
        { label: 'c', points: [{ step: 5, loss: 1.5 }] },
      ],
      BOX,
    );
    expect(geometry.paths).toEqual(['M0.0,0.0 L100.0,50.0', '', 'M50.0,25.0']);
    expect(geometry.yTicks[0].value).toBe(1);
    expect(geometry.yTicks.at(-1)?.value).toBe(2);
  });

  it('draws a single point and a flat curve inside the box', () => {
    const { paths } = chartGeometry([{ label: 'a', points: [{ step: 1, loss: 3 }] }], BOX);
    const [x, y] = paths[0].slice(1).split(',').map(Number);
    expect(x).toBeGreaterThanOrEqual(0);
    expect(x).toBeLessThanOrEqual(100);
    expect(y).toBe(25);
  });

  it('skips non-finite losses', () => {
    const { paths } = chartGeometry(
      [
        {
          label: 'a',
          points: [
            { step: 0, loss: NaN },
            { step: 1, loss: 1 },
            { step: 2, loss: 2 },
          ],
        },
      ],
      BOX,
    );
    expect(paths[0].startsWith('M')).toBe(true);
    expect(paths[0].split(' ')).toHaveLength(2);
  });
});

describe('routes', () => {
  it('round-trip through the hash', () => {
    const routes: Route[] = [
      { screen: 'home' },
      { screen: 'new' },
      { screen: 'run', runId: 42 },
      { screen: 'playground', adapterId: null },
      { screen: 'playground', adapterId: 3 },
      { screen: 'library' },
      { screen: 'export', adapterId: 7 },
      { screen: 'settings' },
    ];
    for (const route of routes) expect(parseRoute(routeHash(route))).toEqual(route);
  });

  it('send anything unknown home', () => {
    expect(parseRoute('')).toEqual({ screen: 'home' });
    expect(parseRoute('#/nowhere')).toEqual({ screen: 'home' });
    expect(parseRoute('#/runs/abc')).toEqual({ screen: 'library' });
  });
});

describe('formatting', () => {
  it('writes sizes and durations as people read them', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
    expect(formatDuration(42)).toBe('42 s');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(3 * 3600 + 120)).toBe('3 h 2 min');
    expect(formatDuration(null)).toBe('–');
  });
});
