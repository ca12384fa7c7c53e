"""Golden fixtures for main/model/quant/kQuants.ts and ggmlQuants.ts: llama.cpp's Q4_K, Q5_K and Q6_K blocks, and the
Q5_0 and Q5_1 blocks llama-quantize falls back to, made by llama.cpp itself.

gguf-py cannot quantize k-quants (only dequantize them), so this calls the ggml library that node-llama-cpp ships
(node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so, the build our llama.cpp tests load) through
ctypes: ggml_quantize_chunk with no importance matrix, the call llama-quantize makes, which runs ggml-quants.c's
quantize_row_q4_K_ref / quantize_row_q5_K_ref / quantize_row_q6_K_ref (and _q5_0_ / _q5_1_); then dequantize_row_*
on those blocks.
gguf-py's dequantizer must agree with llama.cpp's on every value (checked here), so the block layouts are read the
same way by two independent implementations.

Run from the repository root with the bench venv (numpy + gguf; a second; byte-for-byte deterministic):

    ~/.cache/peft-studio/bench-venv/bin/python test/reference/make_kquant_fixtures.py

Writes test/fixtures/numerics/kquants/manifest.json and one <case>.bin per case. Each .bin holds little-endian
sections (8-byte aligned; the manifest gives dtype, byte offset and element count of each):
    input                 F32 [rows * cols]      the weight, row-major (cols a multiple of 256)
    q4_k, q5_k, q6_k      U8  [rows * cols / 256 * B]  llama.cpp's blocks (B = 144, 176, 210 bytes)
    q5_0, q5_1            U8  [rows * cols / 32 * B]   llama.cpp's blocks (B = 22, 24 bytes)
    <type>_dequantized    F32 [rows * cols]      llama.cpp's dequantize_row_<type> of those blocks
"""
from __future__ import annotations

import ctypes
import json
import os
from typing import Dict, List

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "numerics", "kquants")
GGML = os.path.join(ROOT, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "libggml-base.so")
F32 = np.float32
QK_K = 256
# name: (ggml_type, elements per block, block bytes, llama.cpp's dequantizer, gguf-py's type). Q5_0 and Q5_1 are
# llama-quantize's fallbacks for Q4_K and Q5_K on rows whose width is not a multiple of 256.
TYPES = {
    "q4_k": (12, QK_K, 144, "dequantize_row_q4_K", GGMLQuantizationType.Q4_K),
    "q5_k": (13, QK_K, 176, "dequantize_row_q5_K", GGMLQuantizationType.Q5_K),
    "q6_k": (14, QK_K, 210, "dequantize_row_q6_K", GGMLQuantizationType.Q6_K),
    "q5_0": (6, 32, 22, "dequantize_row_q5_0", GGMLQuantizationType.Q5_0),
    "q5_1": (7, 32, 24, "dequantize_row_q5_1", GGMLQuantizationType.Q5_1),
}

lib = ctypes.CDLL(GGML)
lib.ggml_quantize_chunk.restype = ctypes.c_size_t
lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                    ctypes.c_int64, ctypes.c_void_p]
for _, _, _, dequantizer, _ in TYPES.values():
    getattr(lib, dequantizer).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]


def llama_quantize(values: np.ndarray, name: str) -> np.ndarray:
    ggml_type, block_elements, block_bytes, _, _ = TYPES[name]
    rows, cols = values.shape
    src = np.ascontiguousarray(values, dtype=F32)
    dst = np.zeros(rows * cols // block_elements * block_bytes, dtype=np.uint8)
    written = lib.ggml_quantize_chunk(ggml_type, src.ctypes.data, dst.ctypes.data, 0, rows, cols, None)
    assert written == dst.size, (written, dst.size)
    return dst


def llama_dequantize(blocks: np.ndarray, count: int, name: str) -> np.ndarray:
    out = np.zeros(count, dtype=F32)
    getattr(lib, TYPES[name][3])(blocks.ctypes.data, out.ctypes.data, count)
    return out


def edge_rows(rng: np.random.Generator) -> np.ndarray:
    """Eight super-blocks of 256, one edge case each (the comment on each line), as 2 rows of 1024."""
    blocks = []
    blocks.append(np.zeros(QK_K, dtype=F32))  # all zero: every scale 0 (Q6_K's early exit)
    b = rng.normal(0, 1, QK_K).astype(F32)
    b[32:64] = 0
    b[160:176] = 0
    blocks.append(b)  # zero sub-blocks among others: their codes stay those of the first fit
    blocks.append(np.abs(rng.normal(0, 1, QK_K)).astype(F32) + F32(0.5))  # all positive: the min is clamped to 0
    blocks.append(-np.abs(rng.normal(0, 1, QK_K)).astype(F32) - F32(0.5))  # all negative
    b = np.full(QK_K, -0.25, dtype=F32)
    b[:32] = 0.75
    blocks.append(b)  # constant sub-blocks: max == min
    blocks.append((rng.normal(0, 1, QK_K) * 1e-6).astype(F32))  # tiny: fp16 scales are subnormal
    blocks.append(np.round(rng.normal(0, 8, QK_K)).astype(F32))  # integers: codes land on ties
    b = rng.normal(0, 0.02, QK_K).astype(F32)
    b[[7, 100, 200]] = [3.0, -2.5, 4.0]
    blocks.append(b)  # outliers in a few sub-blocks
    return np.concatenate(blocks).reshape(2, 4 * QK_K)


def make_cases() -> List[dict]:
    rng = np.random.default_rng(20251201)
    normal = rng.normal(0, 0.02, (6, 512)).astype(F32)
    heavy = (rng.standard_t(3, (4, 256)) * 0.05).astype(F32)
    row_scales = np.exp(rng.uniform(-6, 3, (4, 1)))
    uniform = (rng.uniform(-1, 1, (4, 512)) * row_scales).astype(F32)
    return [
        dict(name="normal_6x512", note="N(0, 0.02), like a trained projection", values=normal),
        dict(name="heavy_4x256", note="Student t (3 degrees of freedom) * 0.05: outliers", values=heavy),
        dict(name="uniform_4x512", note="uniform, each row scaled by e^U(-6, 3)", values=uniform),
        dict(name="edges_2x1024", note="one edge case per super-block, see make_kquant_fixtures.py",
             values=edge_rows(rng)),
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
    manifest = dict(generator="test/reference/make_kquant_fixtures.py", block_size=QK_K, cases=[])
    for case in make_cases():
        values = case["values"]
        rows, cols = values.shape
        sections = Sections()
        sections.add("input", values, "F32")
        for name, (_, _, _, _, gguf_type) in TYPES.items():
            blocks = llama_quantize(values, name)
            dequantized = llama_dequantize(blocks, values.size, name)
            by_gguf_py = dequantize(blocks.reshape(rows, -1), gguf_type).reshape(-1)
            assert np.array_equal(dequantized, by_gguf_py), f"{case['name']} {name}: gguf-py reads the blocks otherwise"
            sections.add(name, blocks, "U8")
            sections.add(name + "_dequantized", dequantized, "F32")
        file = case["name"] + ".bin"
        with open(os.path.join(OUT_DIR, file), "wb") as f:
            f.write(sections.blob)
        manifest["cases"].append(dict(name=case["name"], note=case["note"], shape=[rows, cols], file=file,
                                      sections=sections.index))
        print(f"{case['name']}: [{rows}, {cols}], {rows * cols // QK_K} super-blocks")
    with open(os.path.join(OUT_DIR, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT_DIR, p)) for p in os.listdir(OUT_DIR))
    print(f"wrote {OUT_DIR} ({total} bytes)")


if __name__ == "__main__":
    main()
