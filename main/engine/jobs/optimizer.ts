// Optimizers, learning-rate schedules and gradient clipping over the LoRA parameters, with the exact update rules
// of torch.optim.AdamW / torch.optim.SGD, transformers' schedules and torch.nn.utils.clip_grad_norm_.
// Parameters are flat Float32Arrays; arithmetic is done in float64 and stored back as fp32.
import type { OptimizerSettings, SchedulerName } from '../../../shared/training.js';

/** Multiplier of the base learning rate before optimizer step `step` (0-based), as transformers' LambdaLR schedules. */
export function scheduleFactor(name: SchedulerName, step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  switch (name) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine':
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
  }
}

/** Scales gradients so their global L2 norm is at most maxNorm (0 = off); returns the norm before clipping. */
export function clipGradNorm(grads: Float32Array[], maxNorm: number): number {
  let sumSquares = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sumSquares += g[i] * g[i];
  const norm = Math.sqrt(sumSquares);
  const coefficient = maxNorm / (norm + 1e-6);
  if (maxNorm > 0 && coefficient < 1) {
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coefficient;
  }
  return norm;
}

export interface Optimizer {
  /** Updates params[i] in place from grads[i] with learning rate lr. */
  step(params: Float32Array[], grads: Float32Array[], lr: number): void;
  /** Moment buffers and step count, for checkpoints. */
  state(): { step: number; buffers: Float32Array[] };
  loadState(state: { step: number; buffers: Float32Array[] }): void;
}

export function createOptimizer(settings: OptimizerSettings, sizes: number[]): Optimizer {
  return settings.name === 'adamw' ? new AdamW(settings, sizes) : new Sgd(settings, sizes);
}

class AdamW implements Optimizer {
  private stepCount = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(
    private readonly s: OptimizerSettings,
    sizes: number[],
  ) {
    this.m = sizes.map((n) => new Float32Array(n));
    this.v = sizes.map((n) => new Float32Array(n));
  }

  step(params: Float32Array[], grads: Float32Array[], lr: number): void {
    this.stepCount++;
    const { beta1, beta2, eps, weightDecay } = this.s;
    const stepSize = lr / (1 - beta1 ** this.stepCount);
    const sqrtCorrection2 = Math.sqrt(1 - beta2 ** this.stepCount);
    const decay = 1 - lr * weightDecay;
    params.forEach((p, k) => {
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      for (let i = 0; i < p.length; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        // Decoupled weight decay first, then the Adam update, as torch.optim.AdamW.
        p[i] = p[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / sqrtCorrection2 + eps);
      }
    });
  }

  state() {
    return { step: this.stepCount, buffers: [...this.m, ...this.v] };
  }

  loadState(state: { step: number; buffers: Float32Array[] }): void {
    this.stepCount = state.step;
    this.m.forEach((m, k) => m.set(state.buffers[k]));
    this.v.forEach((v, k) => v.set(state.buffers[this.m.length + k]));
  }
}

class Sgd implements Optimizer {
  private stepCount = 0;
  private readonly momentumBuffers: Float32Array[];

  constructor(
    private readonly s: OptimizerSettings,
    sizes: number[],
  ) {
    this.momentumBuffers = sizes.map((n) => new Float32Array(n));
  }

  step(params: Float32Array[], grads: Float32Array[], lr: number): void {
    const { momentum, weightDecay } = this.s;
    const first = this.stepCount === 0;
    this.stepCount++;
    params.forEach((p, k) => {
      const g = grads[k];
      const buffer = this.momentumBuffers[k];
      for (let i = 0; i < p.length; i++) {
        let d = g[i] + weightDecay * p[i]; // SGD's weight decay is coupled (L2), as torch.optim.SGD
        if (momentum !== 0) {
          buffer[i] = first ? d : momentum * buffer[i] + d;
          d = buffer[i];
        }
        p[i] -= lr * d;
      }
    });
  }

  state() {
    return { step: this.stepCount, buffers: this.momentumBuffers };
  }

  loadState(state: { step: number; buffers: Float32Array[] }): void {
    this.stepCount = state.step;
    this.momentumBuffers.forEach((b, k) => b.set(state.buffers[k]));
  }
}
