"""Golden fixtures for main/model/quant/int4.ts: llama.cpp's Q4_0 (blocks of 32, fp16 scale d = max / -8, codes
trunc(x / d + 8.5) clipped to 15), made by gguf-py, llama.cpp's own Python package, whose Q4_0 quantizer llama.cpp
tests byte for byte against ggml's C reference (quantize_row_q4_0_ref in ggml-quants.c).

Run from the repository root with the bench venv (numpy + gguf; well under a second, byte-for-byte deterministic):

    ~/.cache/peft-studio/bench-venv/bin/python test/reference/make_int4_fixtures.py

Writes test/fixtures/numerics/int4/manifest.json and one <case>.bin per case. Each .bin holds little-endian sections
(8-byte aligned; the manifest gives dtype, byte offset and element count of each):
    input        F32 [rows * cols]                the weight, row-major
    q4_0         U8  [rows * cols / 32 * 18]      gguf.quants.quantize(input, Q4_0): per block fp16 d, then 16 bytes
                                                  with element j in the low nibble and element j + 16 in the high one
    dequantized  F32 [rows * cols]                gguf.quants.dequantize(q4_0, Q4_0): (code - 8) * d

gguf-py and the C reference part ways in two places, which the inputs here avoid: a NaN (C skips it when looking for
the largest |x|, numpy's argmax picks it) and a block of zeros that starts with -0.0 (C keeps max = +0.0 and stores
d = -0.0; gguf-py takes the -0.0 and stores +0.0). int4.ts follows C there.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Dict, List

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "numerics", "int4")
F32 = np.float32
BLOCK = 32


def neighbours(x: float) -> List[float]:
    """x rounded to float32 and the float32 values just below and above it."""
    v = F32(x)
    return [float(np.nextafter(v, F32(-np.inf))), float(v), float(np.nextafter(v, F32(np.inf)))]


def boundary_block(max_value: float) -> np.ndarray:
    """A block led by max_value, then values whose float32 x * id + 8.5 lands on (or one float32 step off) an
    integer, the point where trunc changes its code: every step of the float32 arithmetic must round as numpy's."""
    d = F32(max_value) / F32(-8)
    inverse = F32(1) / d
    values = [max_value]
    for k in (1, 4, 8, 9, 12, 15, 16):  # from 1: k = 0 would need |x| > |max|
        values += neighbours((k - 8.5) / float(inverse))
    values += [0.0, -0.0, -float(max_value), float(F32(max_value) * F32(1e-7))]
    values += neighbours(float(F32(max_value) * F32(0.3)))
    values += neighbours(float(F32(max_value) * F32(-0.55)))
    assert len(values) == BLOCK, len(values)
    return np.array(values, dtype=F32)


def edge_blocks(rng: np.random.Generator) -> np.ndarray:
    """Twelve blocks of 32, one edge case each (the comment on each line)."""
    blocks = []
    zeros = np.zeros(BLOCK, dtype=F32)
    zeros[[3, 17, 31]] = -0.0
    blocks.append(zeros)  # all zero (led by +0.0): d = -0.0, id = 0, every code 8
    b = rng.normal(0, 0.5, BLOCK).astype(F32)
    b[11] = -3.0
    blocks.append(b)  # the largest |x| is negative: d > 0
    b = rng.uniform(-1, 1, BLOCK).astype(F32)
    b[5], b[9] = 2.0, -2.0
    blocks.append(b)  # |x| tie, + first: max = +2; -2 scales to +8, code 16 clipped to 15
    b = rng.uniform(-1, 1, BLOCK).astype(F32)
    b[2], b[30] = -1.5, 1.5
    blocks.append(b)  # |x| tie, - first: max = -1.5
    blocks.append((rng.normal(0, 1, BLOCK) * 1e-4).astype(F32))  # d is an fp16 subnormal
    blocks.append((rng.normal(0, 1, BLOCK) * 5e-9).astype(F32))  # d rounds to an fp16 zero: dequantizes to zeros
    b = (rng.normal(0, 1, BLOCK) * 2.0 ** -131).astype(F32)
    b[0] = 2.0 ** -129
    blocks.append(b)  # float32 subnormals: 1 / d overflows to inf, x * id is +-inf or NaN, numpy's uint8 cast gives 0
    b = rng.uniform(-65504 * 8, 65504 * 8, BLOCK).astype(F32)
    b[7] = 65504 * 8
    blocks.append(b)  # d = -65504, the largest finite fp16
    blocks.append(rng.uniform(-1e6, 1e6, BLOCK).astype(F32))  # |d| over 65504: the fp16 scale is inf
    blocks.append(boundary_block(-8.0))  # d = 1, id = 1: x + 8.5 exactly
    blocks.append(boundary_block(3.0))  # d = -0.375, id = -2.6666667 (rounded): products round before the add
    blocks.append(boundary_block(0.0123))
    return np.concatenate(blocks)


def make_cases() -> List[dict]:
    rng = np.random.default_rng(20250611)
    normal = rng.normal(0, 0.02, (8, 64)).astype(F32)
    edges = edge_blocks(rng).reshape(4, 96)
    row_scales = np.exp(rng.uniform(-6, 2, (16, 1)))
    uniform = (rng.uniform(-1, 1, (16, 128)) * row_scales).astype(F32)
    return [
        dict(name="normal_8x64", note="N(0, 0.02), like a trained projection", values=normal),
        dict(name="edges_4x96", note="one edge case per block, see make_int4_fixtures.py", values=edges),
        dict(name="uniform_16x128", note="uniform, each row scaled by e^U(-6, 2)", values=uniform),
    ]


class Sections:
    def __init__(self) -> None:
        self.blob = bytearray()
        self.index: Dict[str, dict] = {}

    def add(self, name: str, array: np.ndarray, dtype: str) -> None:
        raw = array.astype("<f4" if dtype == "F32" else np.uint8).tobytes()
        while len(self.blob) % 8:
            self.blob.append(0)
        self.index[name] = dict(dtype=dtype, byte_offset=len(self.blob), length=array.size)
        self.blob += raw


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    manifest = dict(generator="test/reference/make_int4_fixtures.py", block_size=BLOCK, cases=[])
    for case in make_cases():
        values = case["values"]
        rows, cols = values.shape
        with warnings.catch_warnings():
            # The subnormal and overflow blocks divide by zero, overflow and cast inf / NaN on purpose.
            warnings.simplefilter("ignore", RuntimeWarning)
            q4_0 = quantize(values, GGMLQuantizationType.Q4_0)
            dequantized = dequantize(q4_0, GGMLQuantizationType.Q4_0)
        assert q4_0.shape == (rows, cols // BLOCK * 18) and dequantized.dtype == F32
        sections = Sections()
        sections.add("input", values, "F32")
        sections.add("q4_0", q4_0, "U8")
        sections.add("dequantized", dequantized, "F32")
        file = case["name"] + ".bin"
        with open(os.path.join(OUT_DIR, file), "wb") as f:
            f.write(sections.blob)
        manifest["cases"].append(dict(name=case["name"], note=case["note"], shape=[rows, cols], file=file,
                                      sections=sections.index))
        print(f"{case['name']}: [{rows}, {cols}], {rows * cols // BLOCK} blocks")
    with open(os.path.join(OUT_DIR, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT_DIR, p)) for p in os.listdir(OUT_DIR))
    print(f"wrote {OUT_DIR} ({total} bytes)")


if __name__ == "__main__":
    main()
