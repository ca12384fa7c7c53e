"""QLoRA golden values: loss and LoRA gradients of the numerics cases with their decoder projections (and an untied
lm_head, as the studio's quantize-on-load does) quantized to NF4 (blocks of 64, double quantization of the absmax with the signed dynamic 8-bit map) and dequantized, as
bitsandbytes' Linear4bit computes, by the plain PyTorch code of nf4_reference.py and llama_reference.py (no
bitsandbytes, transformers or peft package involved).

Run from the repository root (about 2 s; byte-for-byte deterministic):

    ~/.cache/peft-studio/bench-venv/bin/python test/reference/make_qlora_fixtures.py

For each case under test/fixtures/numerics/ named below it reads model/, adapter/ and batch.json, and writes
qlora_nf4.safetensors beside them: `loss` and `grad.<PEFT key>` in float64 arithmetic, stored as fp32. The engine's
4-bit path (quantize on load, dequantization inside each layer's session) must land within 1e-4 of them.
"""
from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import causal_lm_loss, load_adapter, load_model, lora_parameters, read_safetensors, write_safetensors  # noqa: E402
from nf4_reference import dequantize_4bit, dequantize_absmax, double_quantize, dynamic_map_fused, quantize_4bit  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "fixtures", "numerics")
CASES = ["llama_gqa", "llama_mha_tied_bf16", "qwen2_bias", "qwen3_norms"]
PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
BLOCK = 64


def nf4_round_trip(weight: torch.Tensor, dynamic_map: torch.Tensor) -> torch.Tensor:
    """bitsandbytes' quantize_4bit(nf4, blocksize 64, compress_statistics=True) then dequantize_4bit, in float32."""
    n = weight.numel()
    packed, absmax = quantize_4bit(weight.reshape(-1), "nf4", BLOCK)
    nested_codes, nested_absmax, offset = double_quantize(absmax, dynamic_map)
    absmax = dequantize_absmax(nested_codes, nested_absmax, dynamic_map, offset)
    return dequantize_4bit(packed, absmax, "nf4", BLOCK, n).reshape(weight.shape)


def make_case(case: str, dynamic_map: torch.Tensor) -> None:
    case_dir = os.path.join(FIXTURES, case)
    model = load_model(os.path.join(case_dir, "model"), torch.float64)
    stored = read_safetensors(os.path.join(case_dir, "model", "model.safetensors"))  # fp32 (bf16 widened exactly)
    state = model.state_dict()
    changed = 0
    for layer in range(model.cfg.num_hidden_layers):
        for projection in PROJECTIONS:
            name = f"model.layers.{layer}.{projection}.weight"
            state[name] = nf4_round_trip(stored[name], dynamic_map).to(torch.float64)
            changed += 1
    if not model.cfg.tie_word_embeddings:
        state["lm_head.weight"] = nf4_round_trip(stored["lm_head.weight"], dynamic_map).to(torch.float64)
        changed += 1
    model.load_state_dict(state)
    load_adapter(model, os.path.join(case_dir, "adapter"))
    with open(os.path.join(case_dir, "batch.json")) as f:
        batch = json.load(f)
    model.zero_grad()
    loss = causal_lm_loss(model(torch.tensor(batch["input_ids"])), torch.tensor(batch["labels"]))
    loss.backward()
    tensors = {"loss": loss.detach().reshape(1)}
    for key, p in lora_parameters(model).items():
        tensors["grad." + key] = p.grad.detach()
    write_safetensors(os.path.join(case_dir, "qlora_nf4.safetensors"), tensors, metadata={"format": "pt"})
    print(f"{case}: {changed} weights in NF4, loss {loss.item():.6f}")


def main() -> None:
    torch.set_num_threads(1)
    dynamic_map = dynamic_map_fused(True)
    for case in CASES:
        make_case(case, dynamic_map)


if __name__ == "__main__":
    main()
