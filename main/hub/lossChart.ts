// The training loss as a small PNG line chart for the model card: axes, grid, the curve, and the first/last step
// and loss range written in a 3x5 pixel font (digits only, so no font file is needed).
import { encodePng } from './png.js';

export interface LossPoint {
  step: number;
  loss: number;
}

export const CHART_WIDTH = 640;
export const CHART_HEIGHT = 320;
const MARGIN = { left: 64, right: 16, top: 16, bottom: 32 };
const SCALE = 2; // font pixels per glyph pixel

type Rgb = readonly [number, number, number];
const WHITE: Rgb = [255, 255, 255];
const GRID: Rgb = [225, 228, 232];
const AXIS: Rgb = [90, 96, 104];
export const LINE_COLOR: Rgb = [31, 119, 180];

const GLYPHS: Record<string, string> = {
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '111001111100111',
  '3': '111001111001111',
  '4': '101101111001001',
  '5': '111100111001111',
  '6': '111100111101111',
  '7': '111001001001001',
  '8': '111101111101111',
  '9': '111101111001111',
  '.': '000000000000010',
  '-': '000000111000000',
};

class Canvas {
  readonly rgba: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgba = new Uint8Array(width * height * 4);
    this.fill(0, 0, width, height, WHITE);
  }

  fill(x0: number, y0: number, w: number, h: number, [r, g, b]: Rgb): void {
    for (let y = Math.max(0, y0); y < Math.min(this.height, y0 + h); y++) {
      for (let x = Math.max(0, x0); x < Math.min(this.width, x0 + w); x++)
        this.rgba.set([r, g, b, 255], (y * this.width + x) * 4);
    }
  }

  /** A 2 px wide segment, stamped every half pixel along its length. */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb): void {
    const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) * 2));
    for (let i = 0; i <= steps; i++) {
      const t = i / steps;
      this.fill(Math.round(x0 + (x1 - x0) * t) - 1, Math.round(y0 + (y1 - y0) * t) - 1, 2, 2, color);
    }
  }

  /** Draws `text` with its top-left corner at (x, y). */
  text(text: string, x: number, y: number, color: Rgb): void {
    [...text].forEach((ch, n) => {
      const glyph = GLYPHS[ch] ?? '';
      for (let i = 0; i < glyph.length; i++)
        if (glyph[i] === '1')
          this.fill(x + n * 4 * SCALE + (i % 3) * SCALE, y + Math.floor(i / 3) * SCALE, SCALE, SCALE, color);
    });
  }
}

export const textWidth = (text: string) => text.length * 4 * SCALE - SCALE;

/** Loss values with enough digits to tell the ends of the range apart, in the glyphs the font has. */
export function formatLoss(value: number): string {
  const abs = Math.abs(value);
  return value.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3);
}

/** A PNG of loss against step; non-finite losses are left out. */
export function renderLossChart(points: LossPoint[]): Buffer {
  const canvas = new Canvas(CHART_WIDTH, CHART_HEIGHT);
  const data = points.filter((p) => Number.isFinite(p.step) && Number.isFinite(p.loss)).sort((a, b) => a.step - b.step);
  const plot = {
    x: MARGIN.left,
    y: MARGIN.top,
    w: CHART_WIDTH - MARGIN.left - MARGIN.right,
    h: CHART_HEIGHT - MARGIN.top - MARGIN.bottom,
  };

  for (let i = 0; i <= 4; i++) canvas.fill(plot.x, plot.y + Math.round((plot.h * i) / 4), plot.w, 1, GRID);
  canvas.fill(plot.x - 1, plot.y, 1, plot.h + 1, AXIS);
  canvas.fill(plot.x - 1, plot.y + plot.h, plot.w + 1, 1, AXIS);
  if (!data.length) return encodePng(canvas.width, canvas.height, canvas.rgba);

  let lo = Math.min(...data.map((p) => p.loss));
  let hi = Math.max(...data.map((p) => p.loss));
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const first = data[0].step;
  const last = data.at(-1)!.step;
  const x = (step: number) => plot.x + (last === first ? plot.w / 2 : ((step - first) / (last - first)) * plot.w);
  const y = (loss: number) => plot.y + (1 - (loss - lo) / (hi - lo)) * plot.h;

  for (let i = 1; i < data.length; i++)
    canvas.line(x(data[i - 1].step), y(data[i - 1].loss), x(data[i].step), y(data[i].loss), LINE_COLOR);
  if (data.length === 1) canvas.fill(Math.round(x(first)) - 2, Math.round(y(data[0].loss)) - 2, 4, 4, LINE_COLOR);

  const glyphHeight = 5 * SCALE;
  const hiLabel = formatLoss(hi);
  const loLabel = formatLoss(lo);
  canvas.text(hiLabel, plot.x - 8 - textWidth(hiLabel), plot.y, AXIS);
  canvas.text(loLabel, plot.x - 8 - textWidth(loLabel), plot.y + plot.h - glyphHeight, AXIS);
  canvas.text(String(first), plot.x, plot.y + plot.h + 8, AXIS);
  const lastLabel = String(last);
  canvas.text(lastLabel, plot.x + plot.w - textWidth(lastLabel), plot.y + plot.h + 8, AXIS);
  return encodePng(canvas.width, canvas.height, canvas.rgba);
}
