"""Prompt-tuning goldens: loss and d loss / d prompt_embeddings for virtual tokens prepended to the input embeddings,
as PEFT's PromptTuning does for causal LMs (labels of the virtual positions ignored, positions running over virtual
and real tokens). Float64, stored as fp32. Writes, for each case below, test/fixtures/numerics/<case>/prompt_tuning/
with a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) and reference.safetensors.

  /usr/bin/python3 test/reference/make_prompt_tuning_fixtures.py
"""
from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import causal_lm_loss, load_model, rope_cos_sin, write_safetensors  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "numerics")
CASES = {"llama_gqa": 4, "qwen3_norms": 3, "llama_mha_tied_bf16": 5}  # case -> number of virtual tokens


def prompt_tuned_logits(model, prompt: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """prompt (n, C), input_ids (B, T) -> logits (B, n + T, V)."""
    tokens = model.model.embed_tokens(input_ids)  # (B, T, C)
    x = torch.cat([prompt.unsqueeze(0).expand(input_ids.shape[0], -1, -1), tokens], dim=1)  # (B, n + T, C)
    cos, sin = rope_cos_sin(model.cfg, x.shape[1], x.dtype)
    for layer in model.model.layers:
        x = layer(x, cos, sin)
    return F.linear(model.model.norm(x), model.head_weight())


def main() -> None:
    for seed, (case, n) in enumerate(CASES.items()):
        case_dir = os.path.join(FIXTURES, case)
        model = load_model(os.path.join(case_dir, "model"), dtype=torch.float64)
        model.requires_grad_(False)
        batch = json.load(open(os.path.join(case_dir, "batch.json")))
        input_ids = torch.tensor(batch["input_ids"])
        labels = torch.tensor(batch["labels"])
        gen = torch.Generator().manual_seed(100 + seed)
        prompt = (torch.randn(n, model.cfg.hidden_size, generator=gen, dtype=torch.float64) * 0.5).float().double()
        prompt.requires_grad_(True)
        full_labels = torch.cat([torch.full((labels.shape[0], n), -100), labels], dim=1)
        loss = causal_lm_loss(prompt_tuned_logits(model, prompt, input_ids), full_labels)
        loss.backward()

        # Central finite differences on a few entries, float64.
        worst = 0.0
        for index in [(0, 0), (n - 1, 3), (n // 2, model.cfg.hidden_size - 1)]:
            h = 1e-6
            with torch.no_grad():
                p = prompt.detach().clone()
                p[index] += h
                plus = causal_lm_loss(prompt_tuned_logits(model, p, input_ids), full_labels)
                p[index] -= 2 * h
                minus = causal_lm_loss(prompt_tuned_logits(model, p, input_ids), full_labels)
            numeric = (plus - minus).item() / (2 * h)
            worst = max(worst, abs(numeric - prompt.grad[index].item()) / (abs(prompt.grad).max().item()))
        assert worst < 1e-6, f"{case}: finite differences disagree ({worst})"

        out = os.path.join(case_dir, "prompt_tuning")
        os.makedirs(os.path.join(out, "adapter"), exist_ok=True)
        write_safetensors(os.path.join(out, "adapter", "adapter_model.safetensors"), {"prompt_embeddings": prompt.detach().float()})
        config = {
            "peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": n,
            "token_dim": model.cfg.hidden_size, "num_transformer_submodules": 1, "prompt_tuning_init": "RANDOM",
            "prompt_tuning_init_text": None, "tokenizer_name_or_path": None, "base_model_name_or_path": f"fixtures/{case}/model",
        }
        with open(os.path.join(out, "adapter", "adapter_config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        write_safetensors(os.path.join(out, "reference.safetensors"), {
            "loss": loss.detach().float().reshape(1),
            "grad.prompt_embeddings": prompt.grad.float(),
        })
        print(f"{case}: {n} virtual tokens, loss {loss.item():.6f}, finite-difference max relative error {worst:.2e}")


if __name__ == "__main__":
    main()
