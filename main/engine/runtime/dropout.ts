// Dropout masks from a counter-based hash: element i of stream (key, stream) is a pure function of its inputs, so
// the forward call and the recomputing backward call of a layer see the same mask without storing it.

/** 32-bit avalanche hash (lowbias32 by Chris Wellons). */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Fills `mask` with 0 (dropped, probability p) or 1 / (1 - p) (kept), as torch.nn.Dropout scales in training. */
export function fillDropoutMask(mask: Float32Array, p: number, key: number, stream: number): void {
  const keep = 1 / (1 - p);
  const threshold = Math.floor(p * 2 ** 32);
  const base = mix32(mix32(key >>> 0) ^ Math.imul(stream + 1, 0x9e3779b9));
  for (let i = 0; i < mask.length; i++) mask[i] = mix32(base ^ mix32(i)) < threshold ? 0 : keep;
}
