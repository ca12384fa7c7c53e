#!/usr/bin/env python3
"""Writes one of our llama model folders as a GGUF v3 model file that llama.cpp loads, for the llama.cpp benchmark.

    python test/reference/write_gguf.py --model DIR --type f32|f16|q8_0|q4_0 --out FILE.gguf [--embd-type TYPE]

DIR is a Hugging Face folder (config.json + model.safetensors, or sharded with model.safetensors.index.json) of the
llama architecture, fp32, fp16 or bf16, with tied or untied embeddings. The tensors, their names and the hparams follow
llama.cpp's convert_hf_to_gguf.py for LlamaForCausalLM:
  - q_proj/k_proj rows are permuted from Hugging Face's rotate-half layout to llama.cpp's interleaved rope pairs:
    w.reshape(heads, 2, rows // heads // 2, cols).swapaxes(1, 2).reshape(rows, cols), with the kv heads for k.
  - 1-D tensors and the norms stay F32; every 2-D matrix (token_embd and output included) takes --type, as
    convert_hf_to_gguf does for f16 and q8_0. Q8_0 and Q4_0 blocks come from gguf.quants, which reproduces ggml's
    reference quantizers. convert_hf_to_gguf has no q4_0; llama-quantize's Q4_0 would store the output matrix (token_embd
    when tied) as Q6_K, which gguf-py cannot quantize, so q4_0 here is "pure" Q4_0 (as `llama-quantize --pure`).
    --embd-type overrides the type of token_embd and output alone (e.g. q8_0 for a closer match to llama-quantize).
  - Tied models get no output.weight: llama.cpp then uses token_embd for the logits.
Our benchmark models carry a tiny tokenizer with fewer tokens than vocab_size, and the benchmark feeds token ids, never
text. So the GGUF gets a synthetic SentencePiece ('llama') vocabulary of exactly vocab_size tokens: <unk>, <s>, </s>,
the 256 byte tokens <0x00>..<0xFF> (llama.cpp looks up <0x0A> for the newline), then [PAD{i}] pieces marked UNUSED,
as convert_hf_to_gguf pads vocabularies. Text tokenized with it means nothing; ids do.
The file is written beside --out under a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors import safe_open

TYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}

# Hugging Face name (after "model.layers.N.") -> GGUF name (after "blk.N.").
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.bias": "attn_output.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute: rotate-half halves -> interleaved pairs, per head."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / s for s in shards]
    single = model_dir / "model.safetensors"
    if not single.exists():
        sys.exit(f"write_gguf: no model.safetensors in {model_dir}")
    return [single]


def read_header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return 8 + n, json.loads(f.read(n))


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one file as float32. numpy has no bfloat16, so BF16 tensors are widened from their raw bytes."""
    data_start, header = read_header(path)
    out: dict[str, np.ndarray] = {}
    with safe_open(str(path), framework="np") as f:
        for name in f.keys():
            info = header[name]
            if info["dtype"] == "BF16":
                begin, end = info["data_offsets"]
                raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=data_start + begin)
                out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
            else:
                out[name] = f.get_tensor(name).astype(np.float32)
    return out


def add_vocab(writer: gguf.GGUFWriter, vocab_size: int) -> None:
    specials = [("<unk>", gguf.TokenType.UNKNOWN), ("<s>", gguf.TokenType.CONTROL), ("</s>", gguf.TokenType.CONTROL)]
    if vocab_size < len(specials) + 256:
        sys.exit(f"write_gguf: vocab_size {vocab_size} is below the {len(specials) + 256} tokens a byte vocabulary needs")
    tokens = [t for t, _ in specials] + [f"<0x{b:02X}>" for b in range(256)]
    types = [k for _, k in specials] + [gguf.TokenType.BYTE] * 256
    scores = [0.0] * len(tokens)
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
        scores.append(-1000.0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="Hugging Face model folder (llama architecture)")
    parser.add_argument("--type", required=True, choices=sorted(TYPES), help="type of the 2-D weight matrices")
    parser.add_argument("--embd-type", choices=sorted(TYPES), help="type of token_embd/output (default: --type)")
    parser.add_argument("--out", required=True, type=Path, help="GGUF file to write")
    args = parser.parse_args()

    config = json.loads((args.model / "config.json").read_text())
    arch = config.get("model_type")
    if arch != "llama":
        sys.exit(f"write_gguf: only the llama architecture is supported, found model_type {arch!r}")
    if config.get("rope_scaling"):
        sys.exit("write_gguf: rope_scaling is not supported")
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or hidden // heads
    layers = config["num_hidden_layers"]
    vocab = config["vocab_size"]
    qtype, ftype = TYPES[args.type]
    embd_qtype = TYPES[args.embd_type or args.type][0]

    tensors: dict[str, np.ndarray] = {}
    for path in safetensors_files(args.model):
        tensors.update(read_tensors(path))
    if config.get("tie_word_embeddings", False):
        tensors.pop("lm_head.weight", None)  # llama.cpp reuses token_embd when output.weight is absent

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(args.model.resolve().name)
        writer.add_context_length(config.get("max_position_embeddings", 2048))
        writer.add_embedding_length(hidden)
        writer.add_block_count(layers)
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_head_count(heads)
        writer.add_head_count_kv(kv_heads)
        writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
        writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
        if "head_dim" in config:
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)
        writer.add_vocab_size(vocab)
        writer.add_rope_dimension_count(head_dim)
        writer.add_file_type(ftype)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_vocab(writer, vocab)

        for name in sorted(tensors, key=tensor_order):
            data = tensors[name]
            new_name = gguf_name(name)
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                data = permute(data, heads)
            elif name.endswith(("k_proj.weight", "k_proj.bias")):
                data = permute(data, kv_heads)
            if data.ndim <= 1 or new_name.endswith("_norm.weight"):
                target = gguf.GGMLQuantizationType.F32
            elif new_name in ("token_embd.weight", "output.weight"):
                target = embd_qtype
            else:
                target = qtype
            try:
                out = gguf.quants.quantize(np.ascontiguousarray(data), target)
            except gguf.QuantError as e:  # a row length that is not a multiple of the block: convert_hf_to_gguf's fallback
                print(f"write_gguf: {new_name}: {e}, falling back to F16", file=sys.stderr)
                target = gguf.GGMLQuantizationType.F16
                out = gguf.quants.quantize(np.ascontiguousarray(data), target)
            writer.add_tensor(new_name, out, raw_dtype=target)
            del tensors[name]

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, args.out)
    except BaseException:
        try:
            writer.close()
        finally:
            tmp.unlink(missing_ok=True)
        raise
    print(json.dumps({"out": str(args.out), "type": args.type, "bytes": args.out.stat().st_size}))


def gguf_name(name: str) -> str:
    if name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[name]
    parts = name.split(".", 3)
    if len(parts) == 4 and parts[0] == "model" and parts[1] == "layers" and parts[3] in LAYER_TENSORS:
        return f"blk.{int(parts[2])}.{LAYER_TENSORS[parts[3]]}"
    sys.exit(f"write_gguf: cannot map tensor {name!r}")


def tensor_order(name: str) -> tuple[int, int, str]:
    """token_embd first, then the blocks in order, then output_norm and output, as convert_hf_to_gguf writes them."""
    if name == "model.embed_tokens.weight":
        return (0, 0, name)
    if name.startswith("model.layers."):
        return (1, int(name.split(".")[2]), name)
    return (2, 0, name)


if __name__ == "__main__":
    main()
