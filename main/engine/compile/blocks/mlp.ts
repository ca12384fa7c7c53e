// The SiLU-gated MLP: y = down(silu(gate(x)) * up(x)), each projection a LoRA-capable frozen linear.
// Legend: N = tokens, C = hidden width, I = MLP inner width. x [N, C], gate/up out [N, I], y [N, C].
import type { GraphBuilder } from '../onnx/graph.js';
import {
  loraLinearBackward,
  loraLinearForward,
  type FrozenLinear,
  type LoraBranch,
  type LoraLinearSaved,
} from './loraLinear.js';

export interface MlpWeights {
  gate: FrozenLinear;
  up: FrozenLinear;
  down: FrozenLinear;
  lora: { gate?: LoraBranch; up?: LoraBranch; down?: LoraBranch };
}

export interface MlpSaved {
  gate: string; // [N, I] pre-activation
  sigmoid: string; // [N, I] sigmoid(gate)
  activated: string; // [N, I] silu(gate)
  up: string; // [N, I]
  gateLora?: LoraLinearSaved;
  upLora?: LoraLinearSaved;
  downLora?: LoraLinearSaved;
}

export type MlpGrads = Partial<Record<'gate' | 'up' | 'down', { dA: string; dB: string }>>;

export function mlpForward(g: GraphBuilder, x: string, w: MlpWeights): { y: string; saved: MlpSaved } {
  const gate = loraLinearForward(g, x, w.gate, w.lora.gate);
  const up = loraLinearForward(g, x, w.up, w.lora.up);
  const sigmoid = g.op('Sigmoid', [gate.y]);
  const activated = g.mul(gate.y, sigmoid, 'silu');
  const down = loraLinearForward(g, g.mul(activated, up.y, 'gated'), w.down, w.lora.down);
  return {
    y: down.y,
    saved: { gate: gate.y, sigmoid, activated, up: up.y, gateLora: gate.saved, upLora: up.saved, downLora: down.saved },
  };
}

// In the forward pass this was: h = silu(g) * u, silu(g) = g * sigmoid(g), so
//   du = dh * silu(g), dg = dh * u * sigmoid(g) * (1 + g * (1 - sigmoid(g))).
export function mlpBackward(
  g: GraphBuilder,
  dy: string,
  saved: MlpSaved,
  w: MlpWeights,
): { dx: string; grads: MlpGrads } {
  const grads: MlpGrads = {};
  const down = loraLinearBackward(g, dy, w.down, w.lora.down, saved.downLora);
  const dUp = g.mul(down.dx, saved.activated);
  const one = g.scalar(1);
  const siluSlope = g.mul(saved.sigmoid, g.add(one, g.mul(saved.gate, g.sub(one, saved.sigmoid)))); // [N, I]
  const dGate = g.mul(g.mul(down.dx, saved.up), siluSlope);
  const gate = loraLinearBackward(g, dGate, w.gate, w.lora.gate, saved.gateLora);
  const up = loraLinearBackward(g, dUp, w.up, w.lora.up, saved.upLora);
  for (const [name, result] of [
    ['gate', gate],
    ['up', up],
    ['down', down],
  ] as const) {
    if (result.dA && result.dB) grads[name] = { dA: result.dA, dB: result.dB };
  }
  return { dx: g.add(gate.dx, up.dx, 'd_mlp_in'), grads };
}
