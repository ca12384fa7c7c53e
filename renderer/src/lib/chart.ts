// Geometry of the loss charts: series of (step, loss) points scaled into an SVG viewBox. Pure, so it is unit-tested.

export interface LossSeries {
  label: string;
  points: { step: number; loss: number }[];
}

export interface ChartBox {
  width: number;
  height: number;
  /** Room left for the axis labels. */
  padding: { top: number; right: number; bottom: number; left: number };
}

export interface ChartGeometry {
  /** One SVG path `d` per series, in the order given; '' for a series with no points. */
  paths: string[];
  xTicks: { value: number; x: number }[];
  yTicks: { value: number; y: number }[];
}

/** Distinct colours for up to eight compared runs (chosen to stay apart for common colour-vision deficiencies). */
export const SERIES_COLOURS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#0891b2', '#be123c', '#854d0e', '#475569'];

export function chartGeometry(series: LossSeries[], box: ChartBox): ChartGeometry {
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.loss));
  const innerWidth = box.width - box.padding.left - box.padding.right;
  const innerHeight = box.height - box.padding.top - box.padding.bottom;
  if (all.length === 0) return { paths: series.map(() => ''), xTicks: [], yTicks: [] };

  const maxStep = Math.max(1, ...all.map((p) => p.step));
  const minStep = Math.min(maxStep - 1, ...all.map((p) => p.step));
  let minLoss = Math.min(...all.map((p) => p.loss));
  let maxLoss = Math.max(...all.map((p) => p.loss));
  // A flat curve still needs a visible band.
  if (maxLoss - minLoss < 1e-6) {
    minLoss -= 0.5;
    maxLoss += 0.5;
  }
  const x = (step: number) => box.padding.left + ((step - minStep) / (maxStep - minStep)) * innerWidth;
  const y = (loss: number) => box.padding.top + (1 - (loss - minLoss) / (maxLoss - minLoss)) * innerHeight;

  const paths = series.map((s) =>
    s.points
      .filter((p) => Number.isFinite(p.loss))
      .map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`)
      .join(' '),
  );
  const tickCount = 4;
  const xTicks = Array.from({ length: tickCount + 1 }, (_, i) => {
    const value = Math.round(minStep + ((maxStep - minStep) * i) / tickCount);
    return { value, x: x(value) };
  }).filter((tick, i, ticks) => i === 0 || tick.value !== ticks[i - 1].value);
  const yTicks = Array.from({ length: tickCount + 1 }, (_, i) => {
    const value = minLoss + ((maxLoss - minLoss) * i) / tickCount;
    return { value, y: y(value) };
  });
  return { paths, xTicks, yTicks };
}
