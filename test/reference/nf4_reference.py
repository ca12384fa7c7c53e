"""Golden fixtures for main/model/quant/nf4.ts: a plain PyTorch re-implementation of bitsandbytes' 4-bit formats
(NF4 and FP4, blockwise absmax, double quantization of the absmax with the signed dynamic 8-bit map).

Run from the repository root (about 2 s; the output is byte-for-byte deterministic):

    ~/.cache/peft-studio/bench-venv/bin/python test/reference/nf4_reference.py

Writes test/fixtures/numerics/nf4/manifest.json, maps.bin and one <case>.bin per case (sections listed in the
manifest). No bitsandbytes package is involved: every step below follows bitsandbytes' source, cited per function
(csrc/kernels.cu or csrc/cuda/blockwise_quantization.cu for the CUDA kernels, bitsandbytes/functional.py for the
Python around them, bitsandbytes/backends/cuda/ops.py for shapes). Arithmetic is float32, element by element, as
in the kernels.

What the CUDA build does that we copy, and the one thing we do not:
- The CUDA library is compiled with --use_fast_math, hence flush-to-zero: a float32 input or product below 2^-126 in
  magnitude counts as a zero of the same sign. `flush` below models that (it decides FP4's sign bit of tiny values,
  and zeroes dequantized values under 2^-126).
- --use_fast_math also makes the kernel's `1.0f / absmax` an approximate reciprocal (rcp.approx, within 1 ulp). We use
  the IEEE reciprocal, as bitsandbytes' own PyTorch backend does (`A * (1 / absmax)`). A code can differ from a CUDA
  run only where value/absmax lies within about an ulp of a decision threshold.
- bitsandbytes' offset for double quantization is `absmax.mean()` in float32 on the device, whose last bit depends on
  the device's reduction order. We define it as the float64 sum of the absmax values in order, divided by their
  count, rounded once to float32 (the script prints where torch's own float32 mean differs).
- create_dynamic_map builds the 8-bit map with torch.linspace in float32 on the CPU; torch's AVX2 / AVX-512 kernels
  fuse its multiply-add (the plain kernel does not, and then 42 of the 256 values differ in the last bit). The script
  builds the map with bitsandbytes' code and checks it against the fused formula that nf4.ts uses.
"""
from __future__ import annotations

import json
import os
import struct
from fractions import Fraction
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "numerics", "nf4")
F32 = torch.float32
FLT_MIN = 2.0 ** -126  # smallest normal float32; below it the CUDA build flushes to zero

# dQuantizeNF4's thresholds and dDequantizeNF4's values, as the C float literals in csrc/kernels.cu.
NF4_THRESHOLD_LITERALS = [
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011",
]
NF4_VALUE_LITERALS = [
    "-1.0", "-0.6961928009986877", "-0.5250730514526367", "-0.39491748809814453", "-0.28444138169288635",
    "-0.18477343022823334", "-0.09105003625154495", "0.0", "0.07958029955625534", "0.16093020141124725",
    "0.24611230194568634", "0.33791524171829224", "0.44070982933044434", "0.5626170039176941",
    "0.7229568362236023", "1.0",
]
# dQuantizeFP4's thresholds on |x| and dDequantizeFP4Tree's magnitudes for the low three bits (bit 3 is the sign).
FP4_THRESHOLD_LITERALS = ["0.00260417", "0.0859375", "0.20833333", "0.29166667", "0.4166667", "0.583333",
                          "0.8333333"]
FP4_MAGNITUDE_LITERALS = ["0.00000000", "5.208333333e-03", "0.66666667", "1.00000000", "0.33333333", "0.50000000",
                          "0.16666667", "0.25000000"]


DOUBLE_ROUNDED: List[str] = []  # literals where float64-then-float32 (Math.fround of the literal) is one ulp off


def f32_of_literal(text: str) -> float:
    """The float32 a C compiler makes of a decimal literal with an f suffix: one rounding, to nearest, ties to even.
    Rounding to float64 first and then to float32 (Python's np.float32(float(text)), TypeScript's Math.fround) can
    land one ulp away when the decimal sits next to a float32 midpoint; those literals are collected."""
    exact = Fraction(text)
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]

    def key(c: np.float32) -> Tuple[Fraction, int]:
        return abs(Fraction(float(c)) - exact), int(np.float32(c).view(np.uint32)) & 1

    best = min(candidates, key=key)
    if best != guess:
        DOUBLE_ROUNDED.append(text)
    return float(best)


NF4_THRESHOLDS = [f32_of_literal(t) for t in NF4_THRESHOLD_LITERALS]
NF4_VALUES = torch.tensor([f32_of_literal(t) for t in NF4_VALUE_LITERALS], dtype=F32)
FP4_THRESHOLDS = [f32_of_literal(t) for t in FP4_THRESHOLD_LITERALS]
FP4_MAGNITUDES = torch.tensor([f32_of_literal(t) for t in FP4_MAGNITUDE_LITERALS], dtype=F32)


def flush(x: torch.Tensor) -> torch.Tensor:
    """Flush-to-zero of the --use_fast_math CUDA build: |x| < 2^-126 becomes a zero of x's sign."""
    return torch.where(x.abs() < FLT_MIN, x * 0.0, x)


# --- the 4-bit codes (csrc/kernels.cu: dQuantizeNF4, dQuantizeFP4, dDequantizeNF4, dDequantizeFP4Tree) ---

def quantize_nf4_code(x: torch.Tensor) -> torch.Tensor:
    """dQuantizeNF4, branch for branch: strictly-greater comparisons, so a value exactly on a threshold takes the
    lower code; NaN fails every comparison and lands on code 0."""
    t = [torch.tensor(v, dtype=F32) for v in NF4_THRESHOLDS]
    w = torch.where

    def c(v: int) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.uint8)

    return w(x > t[7],
             w(x > t[11],
               w(x > t[13], w(x > t[14], c(0b1111), c(0b1110)), w(x > t[12], c(0b1101), c(0b1100))),
               w(x > t[9], w(x > t[10], c(0b1011), c(0b1010)), w(x > t[8], c(0b1001), c(0b1000)))),
             w(x > t[3],
               w(x > t[5], w(x > t[6], c(0b0111), c(0b0110)), w(x > t[4], c(0b0101), c(0b0100))),
               w(x > t[1], w(x > t[2], c(0b0011), c(0b0010)), w(x > t[0], c(0b0001), c(0b0000)))))


def quantize_fp4_code(x: torch.Tensor) -> torch.Tensor:
    """dQuantizeFP4: sign bit 8 for x < 0 (so -0.0 and NaN get none), then a tree on |x| with strict comparisons."""
    t = [torch.tensor(v, dtype=F32) for v in FP4_THRESHOLDS]
    sign = torch.where(x < 0, 8, 0).to(torch.uint8)
    a = x.abs()
    w = torch.where

    def c(v: int) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.uint8)

    magnitude = w(a > t[3],
                  w(a > t[5], w(a > t[6], c(0b0011), c(0b0010)), w(a > t[4], c(0b101), c(0b100))),
                  w(a > t[1], w(a > t[2], c(0b0111), c(0b0110)), w(a > t[0], c(0b0001), c(0b0000))))
    return magnitude + sign


def dequantize_4bit_values(codes: torch.Tensor, absmax_per_element: torch.Tensor, quant_type: str) -> torch.Tensor:
    """dDequantizeNF4(q) * absmax; dDequantizeFP4Tree: magnitude * absmax * sign (so code 8 gives -0.0)."""
    if quant_type == "nf4":
        return flush(NF4_VALUES[codes.long()] * absmax_per_element)
    magnitude = flush(FP4_MAGNITUDES[(codes & 7).long()] * absmax_per_element)
    sign = torch.where((codes & 8) == 8, torch.tensor(-1.0, dtype=F32), torch.tensor(1.0, dtype=F32))
    return flush(magnitude * sign)


# --- blockwise absmax and scaling (kQuantizeBlockwise) ---

def blockwise_absmax_and_scaled(values: torch.Tensor, block_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pads with zeros to whole blocks (the kernel's BlockLoad default), takes absmax = max |x| per block (fmaxf
    skips NaN; starts from -FLT_MAX but every |x| >= 0), and scales every element, padding included, by the float32
    reciprocal: x * (1 / absmax). A zero block gives 1/0 = inf and 0 * inf = NaN."""
    n = values.numel()
    blocks = -(-n // block_size)
    padded = torch.zeros(blocks * block_size, dtype=F32)
    padded[:n] = flush(values)
    rows = padded.view(blocks, block_size)
    absmax = torch.nan_to_num(rows.abs(), nan=0.0).amax(dim=1)
    reciprocal = torch.tensor(1.0, dtype=F32) / absmax
    scaled = flush(rows * reciprocal[:, None])
    return absmax, scaled.reshape(-1)


def quantize_4bit(values: torch.Tensor, quant_type: str, block_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns (packed uint8 [(n + 1) // 2], absmax float32 [ceil(n / block_size)]). Element 2i goes to the high
    nibble of byte i and element 2i+1 to the low one; for odd n the last low nibble is the code of the padding zero
    (of its block's scale)."""
    n = values.numel()
    absmax, scaled = blockwise_absmax_and_scaled(values, block_size)
    codes = quantize_nf4_code(scaled) if quant_type == "nf4" else quantize_fp4_code(scaled)
    codes = codes[: n + (n & 1)]
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed, absmax


def dequantize_4bit(packed: torch.Tensor, absmax: torch.Tensor, quant_type: str, block_size: int,
                    n: int) -> torch.Tensor:
    codes = torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)[:n]
    per_element = absmax.repeat_interleave(block_size)[:n]
    return dequantize_4bit_values(codes, per_element, quant_type)


# --- 8-bit blockwise with a 256-value map (dQuantize<0>, kDequantizeBlockwise General8bit) ---

def quantize_8bit_code(code: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dQuantize<STOCHASTIC=0>: a 7-step binary search over the sorted map from pivot 127, then the nearer of the two
    neighbours by the float32 midpoint (upper + val) * 0.5f or (lower + val) * 0.5f; on the midpoint itself it keeps
    `pivot` (x > midpoint and x < midpoint are both strict). lower / upper start at -1 / 1 and are replaced by
    code[0] / code[255] when the search never moved off those ends."""
    pivot = torch.full(x.shape, 127, dtype=torch.long)
    upper_pivot = torch.full(x.shape, 255, dtype=torch.long)
    lower_pivot = torch.zeros(x.shape, dtype=torch.long)
    lower = torch.full(x.shape, -1.0, dtype=F32)
    upper = torch.full(x.shape, 1.0, dtype=F32)
    val = code[pivot]
    for step in (64, 32, 16, 8, 4, 2, 1):
        above = x > val
        lower_pivot = torch.where(above, pivot, lower_pivot)
        lower = torch.where(above, val, lower)
        upper_pivot = torch.where(above, upper_pivot, pivot)
        upper = torch.where(above, upper, val)
        pivot = torch.where(above, pivot + step, pivot - step)
        val = code[pivot]
    upper = torch.where(upper_pivot == 255, code[255], upper)
    lower = torch.where(lower_pivot == 0, code[0], lower)
    above = x > val
    midpoint_up = (upper + val) * torch.tensor(0.5, dtype=F32)
    midpoint_down = (lower + val) * torch.tensor(0.5, dtype=F32)
    chosen = torch.where(above, torch.where(x > midpoint_up, upper_pivot, pivot),
                         torch.where(x < midpoint_down, lower_pivot, pivot))
    return chosen.to(torch.uint8)


def quantize_blockwise_8bit(values: torch.Tensor, code: torch.Tensor,
                            block_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """kQuantizeBlockwise<General8bit>: absmax per block, x * (1 / absmax), dQuantize. Returns (codes [n], absmax)."""
    n = values.numel()
    absmax, scaled = blockwise_absmax_and_scaled(values, block_size)
    return quantize_8bit_code(code, scaled)[:n], absmax


def dequantize_blockwise_8bit(codes: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor,
                              block_size: int) -> torch.Tensor:
    """kDequantizeBlockwise<General8bit>: code[q] * absmax[i / block_size] (float32 product, flushed)."""
    per_element = absmax.repeat_interleave(block_size)[: codes.numel()]
    return flush(code[codes.long()] * per_element)


# --- double quantization (functional.quantize_4bit with compress_statistics=True; dequantize_4bit) ---

def mean_offset(absmax: torch.Tensor) -> float:
    """Our definition of bitsandbytes' `absmax.mean()`: float64 sum in order, / count, rounded once to float32."""
    total = 0.0
    for v in absmax.tolist():
        total += v
    return float(np.float32(total / absmax.numel()))


def double_quantize(absmax: torch.Tensor, dynamic_map: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """offset = mean; quantize_blockwise(absmax - offset, blocksize=256) with the signed dynamic map."""
    offset = mean_offset(absmax)
    centered = absmax - torch.tensor(offset, dtype=F32)
    nested_codes, nested_absmax = quantize_blockwise_8bit(centered, dynamic_map, 256)
    return nested_codes, nested_absmax, offset


def dequantize_absmax(nested_codes: torch.Tensor, nested_absmax: torch.Tensor, dynamic_map: torch.Tensor,
                      offset: float) -> torch.Tensor:
    """dequantize_blockwise(absmax, state2) then `absmax += offset` (a torch float32 add, no flush)."""
    return dequantize_blockwise_8bit(nested_codes, nested_absmax, dynamic_map, 256) + torch.tensor(offset, dtype=F32)


# --- maps (functional.create_dynamic_map, functional.get_4bit_type) ---

def create_dynamic_map(signed: bool = True, max_exponent_bits: int = 7, total_bits: int = 8) -> torch.Tensor:
    """bitsandbytes' create_dynamic_map as it stands (float32 linspace boundaries, their float32 means, times the
    power of ten as a float32 scalar, plus 0 and 1, sorted)."""
    data: List[float] = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    assert additional_items == 0  # true for the 8-bit defaults; the unused branch is left out
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                             else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=F32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    data.sort()
    return torch.tensor(data, dtype=F32)


def dynamic_map_fused(signed: bool) -> torch.Tensor:
    """The same map from the formula nf4.ts uses: linspace value i = fma(step, i, 0.1f) below halfway and
    fma(-step, k - 1 - i, 1) from halfway on, step = (1 - 0.1f) / (k - 1) in float32 (torch's AVX2 kernel)."""
    def f32(v: float) -> float:
        return float(np.float32(v))

    data: List[float] = []
    for i in range(7):
        k = 2 ** i + 1 if signed else 2 ** (i + 1) + 1
        start, step = f32(0.1), f32((1.0 - f32(0.1)) / (k - 1))
        # step * j + start is exact in float64 (24-bit step times a 7-bit integer, then one add of nearby
        # magnitude), so one rounding to float32 is the fused multiply-add.
        points = [f32(step * j + start) if j < k // 2 else f32(1.0 - step * (k - 1 - j)) for j in range(k)]
        means = [f32(f32(points[j] + points[j + 1]) / 2) for j in range(k - 1)]
        scale = f32(10.0 ** (i - 6))
        data += [f32(scale * m) for m in means]
        if signed:
            data += [f32(-scale * m) for m in means]
    data += [0.0, 1.0]
    data.sort()
    return torch.tensor(data, dtype=F32)


def quant_map_4bit(quant_type: str) -> torch.Tensor:
    """get_4bit_type: the `quant_map` tensor bitsandbytes stores (FP4: the list / 12; its -0 is Python's int 0)."""
    if quant_type == "nf4":
        data = [float(v) for v in NF4_VALUE_LITERALS]
    else:
        data = [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0]
    t = torch.tensor(data)
    t.div_(t.abs().max())
    return t


# --- cases ---

def bf16_round(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).to(F32)


def f32_neighbours(v: float) -> List[float]:
    f = np.float32(v)
    return [float(np.nextafter(f, np.float32(-np.inf))), float(f), float(np.nextafter(f, np.float32(np.inf)))]


def threshold_block_values(thresholds: List[float], block_size: int, scale: float) -> List[List[float]]:
    """Blocks whose absmax is `scale` (a power of two, so 1/absmax is exact): each threshold, both float32 neighbours
    and their negatives, times `scale`."""
    body: List[float] = []
    for t in thresholds:
        for v in f32_neighbours(t):
            body += [v * scale, -v * scale]
    blocks = []
    per_block = block_size - 1
    for start in range(0, len(body), per_block):
        chunk = [scale] + body[start:start + per_block]
        blocks.append(chunk + [0.0] * (block_size - len(chunk)))
    return blocks


def reciprocal_blocks(thresholds: List[float], block_size: int) -> List[List[float]]:
    """Blocks with absmax values whose reciprocal is inexact, holding values x near absmax * threshold for which
    x * (1 / absmax), the kernel's scaling, and x / absmax fall on different sides of the threshold (so a division
    would pick another code), with both float32 neighbours of each."""
    blocks = []
    for absmax in (3.0, 0.7, 1.9, 5.3, 0.011, 37.0):
        a = np.float32(absmax)
        r = np.float32(1) / a
        picked: List[float] = []
        for t in thresholds:
            x = np.float32(np.float32(t) * a)
            for _ in range(6):
                x = np.nextafter(x, np.float32(-np.inf))
            for _ in range(13):
                if (np.float32(x * r) > np.float32(t)) != (np.float32(x / a) > np.float32(t)):
                    picked += [v * s for v in f32_neighbours(float(x)) for s in (1, -1)]
                x = np.nextafter(x, np.float32(np.inf))
        for start in range(0, len(picked), block_size - 1):
            chunk = [float(a)] + picked[start:start + block_size - 1]
            blocks.append(chunk + [0.0] * (block_size - len(chunk)))
    assert blocks, "no value where the reciprocal and the division disagree"
    return blocks


def edge_blocks(block_size: int) -> List[List[float]]:
    """A zero block, -0.0s, tiny / huge magnitudes, subnormal inputs, and a block whose small members scale below
    2^-126 (flushed to a signed zero)."""
    zeros = [0.0] * block_size
    negative_zeros = [-0.0] * (block_size - 1) + [1.0]
    tiny = [(-1) ** i * 1e-30 * (1 + i / 7) for i in range(block_size)]
    huge = [(-1) ** i * 3e37 * (1 + i / 9) for i in range(block_size)]
    subnormal = [(-1) ** i * 1e-40 * (i + 1) for i in range(block_size)]
    span = [1e30, -1e-10, 1e-10, -1e-9, 3e-39, -3e-39, 2e-8, -2e-8] + [0.5e30] * (block_size - 8)
    return [zeros, negative_zeros, tiny, huge, subnormal, span]


def make_cases(generator: torch.Generator) -> List[dict]:
    def randn(n: int, std: float) -> torch.Tensor:
        return torch.randn(n, generator=generator, dtype=F32) * std

    cases: List[dict] = []

    def add(name: str, quant_type: str, block_size: int, double_quant: bool, values: torch.Tensor,
            shape: List[int], input_dtype: str = "F32", note: str = "") -> None:
        assert int(np.prod(shape)) == values.numel()
        cases.append(dict(name=name, quant_type=quant_type, block_size=block_size, double_quant=double_quant,
                          values=values, shape=shape, input_dtype=input_dtype, note=note))

    add("nf4_randn_133", "nf4", 64, False, randn(133, 0.02), [7, 19], note="odd length, partial last block")
    add("nf4_randn_odd_bf16_dq", "nf4", 64, True, bf16_round(randn(16717, 0.05)), [73, 229], "BF16",
        "262 blocks: two nested blocks (256 + 6), odd length, bf16 input")
    add("nf4_randn_128_dq", "nf4", 128, True, randn(1999, 1.0), [1999], note="block size 128, partial block")
    add("nf4_single_block_dq", "nf4", 64, True, randn(50, 0.1), [50],
        note="one block: absmax - offset is 0, so the nested absmax is 0 (1/0, NaN scaled, nested code 0)")
    nf4_edges = threshold_block_values(NF4_THRESHOLDS, 64, 1.0) + threshold_block_values(NF4_THRESHOLDS, 64, 0.25)
    nf4_edges += reciprocal_blocks(NF4_THRESHOLDS, 64) + edge_blocks(64)
    flat = torch.tensor([v for block in nf4_edges for v in block], dtype=F32)
    add("nf4_thresholds_and_edges", "nf4", 64, True, flat, [flat.numel()],
        note="every dQuantizeNF4 threshold and its float32 neighbours (absmax 1 and 0.25), values where "
             "x * (1 / absmax) and x / absmax disagree, then edge blocks")
    zero_tail = torch.cat([randn(64, 0.3), torch.zeros(33, dtype=F32)])
    add("nf4_zero_tail", "nf4", 64, False, zero_tail, [97],
        note="odd length whose last block is all zeros: the padding nibble is code 0 (NaN path)")
    add("fp4_randn_1000_dq", "fp4", 64, True, randn(1000, 0.02), [8, 125])
    add("fp4_randn_777", "fp4", 64, False, bf16_round(randn(777, 2.0)), [777], "BF16", "odd length")
    fp4_edges = threshold_block_values(FP4_THRESHOLDS, 64, 1.0) + threshold_block_values(FP4_THRESHOLDS, 64, 4.0)
    fp4_edges += reciprocal_blocks(FP4_THRESHOLDS, 64) + edge_blocks(64)
    flat = torch.tensor([v for block in fp4_edges for v in block], dtype=F32)
    add("fp4_thresholds_and_edges", "fp4", 64, False, flat, [flat.numel()],
        note="every dQuantizeFP4 threshold and its float32 neighbours, both signs (absmax 1 and 4), values where "
             "x * (1 / absmax) and x / absmax disagree, then edge blocks")
    return cases


def blockwise8_case(dynamic_map: torch.Tensor) -> dict:
    """8-bit blockwise quantization alone: every midpoint of the signed map and its float32 neighbours, absmax 1."""
    mids = [float((dynamic_map[i] + dynamic_map[i + 1]) * torch.tensor(0.5, dtype=F32)) for i in range(255)]
    values: List[float] = []
    for which in range(3):
        values += [1.0] + [f32_neighbours(m)[which] for m in mids]
    values += [-0.5, 0.25, 0.0, -1.0, 2e-7, -3e-3, 0.7]  # a partial block with absmax 1
    return dict(name="blockwise8_midpoints", values=torch.tensor(values, dtype=F32), block_size=256)


# --- writing ---

class Sections:
    def __init__(self) -> None:
        self.blob = bytearray()
        self.index: Dict[str, dict] = {}

    def add(self, name: str, tensor: torch.Tensor, dtype: str) -> None:
        if dtype == "F32":
            raw = tensor.to(F32).contiguous().numpy().astype("<f4").tobytes()
        elif dtype == "BF16":
            raw = tensor.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = tensor.to(torch.uint8).numpy().tobytes()
        while len(self.blob) % 8:
            self.blob.append(0)
        self.index[name] = dict(dtype=dtype, byte_offset=len(self.blob), length=tensor.numel())
        self.blob += raw


def quant_state_json(case: dict, offset: Optional[float]) -> dict:
    """What QuantState.as_dict(packed=True) JSON-encodes into `weight.quant_state.bitsandbytes__<type>`."""
    state = dict(quant_type=case["quant_type"], blocksize=case["block_size"],
                 dtype="bfloat16" if case["input_dtype"] == "BF16" else "float32", shape=case["shape"])
    if case["double_quant"]:
        state.update(nested_blocksize=256, nested_dtype="float32", nested_offset=offset)
    return state


def main() -> None:
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    dynamic_signed = create_dynamic_map(True)
    dynamic_unsigned = create_dynamic_map(False)
    for signed, built in ((True, dynamic_signed), (False, dynamic_unsigned)):
        differ = int((dynamic_map_fused(signed) != built).sum())
        if differ:
            raise SystemExit(f"torch.linspace on this CPU ({torch.backends.cpu.get_cpu_capability()}) gives a dynamic "
                             f"map that differs from the fused formula in {differ} values; run on an AVX2 machine")
    if DOUBLE_ROUNDED:
        print(f"kernel literals that Math.fround would round differently: {DOUBLE_ROUNDED}")
    assert torch.equal(quant_map_4bit("nf4"), NF4_VALUES)
    fp4_kernel = torch.cat([FP4_MAGNITUDES, -FP4_MAGNITUDES])
    assert torch.equal(quant_map_4bit("fp4"), fp4_kernel), "get_4bit_type('fp4') != dDequantizeFP4Tree"

    maps = Sections()
    maps.add("dynamic_signed", dynamic_signed, "F32")
    maps.add("dynamic_unsigned", dynamic_unsigned, "F32")
    maps.add("quant_map_nf4", quant_map_4bit("nf4"), "F32")
    maps.add("quant_map_fp4", quant_map_4bit("fp4"), "F32")
    maps.add("kernel_fp4", fp4_kernel, "F32")
    with open(os.path.join(OUT_DIR, "maps.bin"), "wb") as f:
        f.write(maps.blob)

    manifest = dict(generator="test/reference/nf4_reference.py", maps=dict(file="maps.bin", sections=maps.index),
                    cases=[])
    generator = torch.Generator().manual_seed(20240521)
    for case in make_cases(generator):
        values, n, bs, qt = case["values"], case["values"].numel(), case["block_size"], case["quant_type"]
        sections = Sections()
        sections.add("input", values, case["input_dtype"])
        packed, absmax = quantize_4bit(values, qt, bs)
        sections.add("packed", packed, "U8")
        sections.add("absmax", absmax, "F32")
        offset = None
        used_absmax = absmax
        if case["double_quant"]:
            nested_codes, nested_absmax, offset = double_quantize(absmax, dynamic_signed)
            used_absmax = dequantize_absmax(nested_codes, nested_absmax, dynamic_signed, offset)
            sections.add("nested_codes", nested_codes, "U8")
            sections.add("nested_absmax", nested_absmax, "F32")
            sections.add("absmax_dequantized", used_absmax, "F32")
            torch_mean = float(absmax.mean())
            if torch_mean != offset:
                print(f"  {case['name']}: torch's float32 mean {torch_mean!r} != offset {offset!r}")
        dequantized = dequantize_4bit(packed, used_absmax, qt, bs, n)
        sections.add("dequantized", dequantized, "F32")
        with open(os.path.join(OUT_DIR, case["name"] + ".bin"), "wb") as f:
            f.write(sections.blob)
        manifest["cases"].append(dict(
            name=case["name"], note=case["note"], quant_type=qt, block_size=bs, double_quant=case["double_quant"],
            length=n, offset=offset, quant_state=quant_state_json(case, offset), file=case["name"] + ".bin",
            sections=sections.index))
        print(f"{case['name']}: n={n}, blocks={absmax.numel()}, offset={offset}")

    b8 = blockwise8_case(dynamic_signed)
    codes, absmax = quantize_blockwise_8bit(b8["values"], dynamic_signed, b8["block_size"])
    sections = Sections()
    sections.add("input", b8["values"], "F32")
    sections.add("codes", codes, "U8")
    sections.add("absmax", absmax, "F32")
    sections.add("dequantized", dequantize_blockwise_8bit(codes, absmax, dynamic_signed, b8["block_size"]), "F32")
    with open(os.path.join(OUT_DIR, b8["name"] + ".bin"), "wb") as f:
        f.write(sections.blob)
    manifest["blockwise8"] = dict(name=b8["name"], block_size=b8["block_size"], length=b8["values"].numel(),
                                  file=b8["name"] + ".bin", sections=sections.index)

    with open(os.path.join(OUT_DIR, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT_DIR, p)) for p in os.listdir(OUT_DIR))
    print(f"wrote {OUT_DIR} ({total} bytes)")


if __name__ == "__main__":
    main()
