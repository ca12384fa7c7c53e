"""Writes the golden numerics fixtures under test/fixtures/numerics/<case>/ with the PyTorch reference.

Run from the repository root:  /usr/bin/python3 test/reference/make_fixtures.py
Deterministic: every case draws from its own seeded generator, and torch runs on one thread. All arithmetic is
float64 (model, LoRA, loss, gradients, optimizer state); tensors are stored as fp32 and JSON numbers as float64.
Before writing, the LoRA gradients of every case are checked against central finite differences.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from typing import Callable, Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import (  # noqa: E402
    ALL_TARGETS, ATTENTION_TARGETS, IGNORE_INDEX, MLP_TARGETS, CausalLM, ModelConfig, attach_lora, causal_lm_loss,
    load_adapter, load_model, lora_parameters, read_safetensors, write_safetensors)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "numerics")
DTYPE = torch.float64
TRAJECTORY_STEPS = 6
MAX_GRAD_NORM = 1.0
FD_TOLERANCE = 1e-5  # max relative error of analytic vs finite-difference LoRA gradients (float64)

# Each case: HF config.json fields, storage dtype of the base weights, LoRA settings, batch shape and right padding.
CASES: Dict[str, dict] = {
    "llama_gqa": dict(
        config=dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=32, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                    rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=128, tie_word_embeddings=False,
                    rope_scaling=None, attention_bias=False),
        storage="F32", targets=list(ATTENTION_TARGETS), r=4, alpha=8, use_rslora=False,
        batch=3, seq_len=12, padding=[0, 3, 5]),
    "llama_mha_tied_bf16": dict(
        config=dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=32, intermediate_size=80,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, vocab_size=96,
                    rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=64, tie_word_embeddings=True,
                    # original_max_position_embeddings 8 puts D=8's wavelengths (6.3, 63, 628, 6283) in both the
                    # interpolated band [2, 8] and the slowed band (> 8), so the scaling changes every frequency.
                    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                      original_max_position_embeddings=8),
                    attention_bias=False),
        storage="BF16", targets=["q_proj", "v_proj"], r=8, alpha=16, use_rslora=False,
        batch=2, seq_len=16, padding=[0, 6]),
    "qwen2_bias": dict(
        config=dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=48, intermediate_size=96,
                    num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2, vocab_size=160,
                    rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=128, tie_word_embeddings=False,
                    rope_scaling=None, use_sliding_window=False, sliding_window=None),
        storage="F32", targets=list(ATTENTION_TARGETS), r=8, alpha=16, use_rslora=True,
        batch=3, seq_len=10, padding=[2, 0, 4]),
    "qwen3_norms": dict(
        config=dict(model_type="qwen3", architectures=["Qwen3ForCausalLM"], hidden_size=48, intermediate_size=96,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=128,
                    rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=128, tie_word_embeddings=False,
                    rope_scaling=None, attention_bias=False, use_sliding_window=False, sliding_window=None),
        storage="F32", targets=list(ALL_TARGETS), r=4, alpha=8, use_rslora=False,
        batch=2, seq_len=12, padding=[0, 4]),
    "mistral_mlp": dict(
        config=dict(model_type="mistral", architectures=["MistralForCausalLM"], hidden_size=32, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, vocab_size=128,
                    rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=128, tie_word_embeddings=False,
                    rope_scaling=None, sliding_window=None),
        storage="F32", targets=list(MLP_TARGETS), r=4, alpha=8, use_rslora=False,
        batch=3, seq_len=14, padding=[1, 0, 6]),
    "llama_attention_bias": dict(
        config=dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=32, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                    rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=128, tie_word_embeddings=False,
                    rope_scaling=None, attention_bias=True),
        storage="F32", targets=list(ATTENTION_TARGETS), r=4, alpha=8, use_rslora=False,
        batch=2, seq_len=10, padding=[0, 2]),
}
COMMON_CONFIG = dict(hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="float32")
PAD_TOKEN = 0


def random_base_weights(model: CausalLM, gen: torch.Generator) -> Dict[str, torch.Tensor]:
    """Normal weights: std 0.15 for projections, embeddings and head so attention and logits are far from uniform,
    std 0.02 for biases, 1 + N(0, 0.1) for norm gains."""
    weights = {}
    for name, p in sorted(model.state_dict().items()):
        if "norm" in name:
            w = 1.0 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
        elif name.endswith(".bias"):
            w = 0.02 * torch.randn(p.shape, generator=gen, dtype=torch.float64) + 0.1
        else:
            w = 0.15 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
        weights[name] = w.float()
    return weights


def write_model(case_dir: str, spec: dict, gen: torch.Generator) -> None:
    model_dir = os.path.join(case_dir, "model")
    os.makedirs(model_dir)
    config = dict(spec["config"], **COMMON_CONFIG)
    if spec["storage"] == "BF16":
        config["torch_dtype"] = "bfloat16"
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(dict(sorted(config.items())), f, indent=2)
        f.write("\n")
    skeleton = CausalLM(ModelConfig.from_dict(config))
    weights = random_base_weights(skeleton, gen)
    write_safetensors(os.path.join(model_dir, "model.safetensors"), weights, dtype=spec["storage"],
                      metadata={"format": "pt"})


def write_adapter(case_dir: str, case: str, spec: dict, gen: torch.Generator) -> None:
    """PEFT adapter with nonzero A and B (PEFT would start B at zero), so every gradient is nonzero."""
    adapter_dir = os.path.join(case_dir, "adapter")
    os.makedirs(adapter_dir)
    adapter_config = dict(peft_type="LORA", task_type="CAUSAL_LM", base_model_name_or_path=f"fixtures/{case}/model",
                          r=spec["r"], lora_alpha=spec["alpha"], lora_dropout=0.0, target_modules=spec["targets"],
                          use_rslora=spec["use_rslora"], bias="none", fan_in_fan_out=False, inference_mode=False)
    with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
        json.dump(adapter_config, f, indent=2)
        f.write("\n")
    model = load_model(os.path.join(case_dir, "model"), DTYPE)
    attach_lora(model, adapter_config)
    tensors = {}
    for key, p in lora_parameters(model).items():
        std = 0.1 if ".lora_A." in key else 0.05
        tensors[key] = (std * torch.randn(p.shape, generator=gen, dtype=torch.float64)).float()
    write_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"), tensors, metadata={"format": "pt"})


def write_batch(case_dir: str, spec: dict, vocab: int, gen: torch.Generator) -> None:
    """Right-padded rows (pad token 0, label -100) plus a few -100 labels inside real text (prompt masking)."""
    b, t = spec["batch"], spec["seq_len"]
    input_ids = torch.randint(1, vocab, (b, t), generator=gen)
    labels = input_ids.clone()
    for row, pad in enumerate(spec["padding"]):
        if pad:
            input_ids[row, t - pad :] = PAD_TOKEN
            labels[row, t - pad :] = IGNORE_INDEX
    labels[0, :3] = IGNORE_INDEX  # a masked prompt
    labels[b - 1, 4] = IGNORE_INDEX  # a lone masked token mid-sequence
    with open(os.path.join(case_dir, "batch.json"), "w") as f:
        json.dump({"input_ids": input_ids.tolist(), "labels": labels.tolist()}, f)
        f.write("\n")


def load_case(case_dir: str, dtype: torch.dtype = DTYPE):
    model = load_model(os.path.join(case_dir, "model"), dtype)
    adapter_config = load_adapter(model, os.path.join(case_dir, "adapter"))
    with open(os.path.join(case_dir, "batch.json")) as f:
        batch = json.load(f)
    return model, adapter_config, torch.tensor(batch["input_ids"]), torch.tensor(batch["labels"])


def check_bf16_storage(case_dir: str, model: CausalLM) -> None:
    """The reference must run on the bf16-rounded weights: the loaded values have no bits below bf16's mantissa."""
    weights = read_safetensors(os.path.join(case_dir, "model", "model.safetensors"))
    for name, w in weights.items():
        assert (w.view(torch.int32) & 0xFFFF).eq(0).all(), f"{name} is not bf16-representable"
        assert torch.equal(model.state_dict()[name], w.double()), f"{name} differs from the stored bf16 value"


def finite_difference_check(model: CausalLM, input_ids, labels, samples_per_tensor: int = 4, h: float = 1e-5) -> float:
    """Max relative error of autograd LoRA gradients vs central differences at a few entries of every LoRA tensor."""
    params = lora_parameters(model)
    model.zero_grad()
    causal_lm_loss(model(input_ids), labels).backward()
    worst = 0.0
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for key, p in params.items():
            flat = p.view(-1)
            for index in torch.randperm(flat.numel(), generator=gen)[:samples_per_tensor].tolist():
                original = flat[index].item()
                flat[index] = original + h
                up = causal_lm_loss(model(input_ids), labels).item()
                flat[index] = original - h
                down = causal_lm_loss(model(input_ids), labels).item()
                flat[index] = original
                numeric = (up - down) / (2 * h)
                analytic = p.grad.view(-1)[index].item()
                worst = max(worst, abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-8))
    model.zero_grad()
    return worst


def check_padding_is_inert(model: CausalLM, input_ids, labels) -> None:
    """Right padding needs no attention mask: other pad token ids must leave loss and gradients unchanged."""
    def loss_and_grads(ids):
        model.zero_grad()
        loss = causal_lm_loss(model(ids), labels)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in lora_parameters(model).values()]
    loss, grads = loss_and_grads(input_ids)
    repadded = torch.where(input_ids == PAD_TOKEN, 7, input_ids)  # real tokens are drawn from 1..V-1
    other_loss, other_grads = loss_and_grads(repadded)
    model.zero_grad()
    assert abs(loss - other_loss) < 1e-12 and all(torch.allclose(a, b, rtol=0, atol=1e-14) for a, b in zip(grads, other_grads))


def fp32_deviation(case_dir: str, loss64: float, grads64: Dict[str, torch.Tensor]) -> str:
    """How far the same reference run in fp32 lands from float64: a guide to the tolerances an fp32 engine needs."""
    model, _, input_ids, labels = load_case(case_dir, torch.float32)
    loss = causal_lm_loss(model(input_ids), labels)
    loss.backward()
    worst = max(((p.grad.double() - grads64[k]).abs().max() / grads64[k].abs().max()).item()
                for k, p in lora_parameters(model).items())
    return f"fp32 vs float64: loss {abs(loss.item() - loss64):.1e}, grads {worst:.1e} (max abs diff / max abs, per tensor)"


def write_reference(case_dir: str, model: CausalLM, input_ids, labels):
    model.zero_grad()
    hidden: List[torch.Tensor] = []
    logits = model(input_ids, hidden_states=hidden)
    loss = causal_lm_loss(logits, labels)
    loss.backward()
    tensors = {"loss": loss.detach().reshape(1), "logits": logits.detach()}
    tensors["debug.embeddings"] = hidden[0].detach()
    for i, h in enumerate(hidden[1:]):
        tensors[f"debug.layers.{i}.output"] = h.detach()
    for key, p in lora_parameters(model).items():
        assert p.grad is not None and p.grad.abs().max() > 0, f"zero gradient for {key}"
        tensors["grad." + key] = p.grad.detach()
    write_safetensors(os.path.join(case_dir, "reference.safetensors"), tensors, metadata={"format": "pt"})
    grads = {k: p.grad.detach().clone() for k, p in lora_parameters(model).items()}
    model.zero_grad()
    return loss.item(), grads


# transformers' LambdaLR multipliers; `step` is the 0-based index of the optimizer step about to run.
def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def cosine_schedule(warmup: int, total: int, num_cycles: float = 0.5) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress)))
    return factor


def write_trajectory(case_dir: str, name: str, variant: dict) -> None:
    """Trains from the fixture adapter on the fixture batch; records the loss and pre-clip grad norm before each step."""
    model, _, input_ids, labels = load_case(case_dir)
    params = lora_parameters(model)
    settings = variant["optimizer"]
    if settings["name"] == "adamw":
        optimizer = torch.optim.AdamW(params.values(), lr=settings["lr"], betas=tuple(settings["betas"]),
                                      eps=settings["eps"], weight_decay=settings["weight_decay"])
    else:
        optimizer = torch.optim.SGD(params.values(), lr=settings["lr"], momentum=settings["momentum"],
                                    weight_decay=settings["weight_decay"])
    factor = variant["schedule_factor"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses, grad_norms, lrs = [], [], []
    for _ in range(TRAJECTORY_STEPS):
        optimizer.zero_grad()
        loss = causal_lm_loss(model(input_ids), labels)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_GRAD_NORM)
        losses.append(loss.item())
        grad_norms.append(norm.item())
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        final_loss = causal_lm_loss(model(input_ids), labels).item()
    record = {
        "steps": TRAJECTORY_STEPS,
        "optimizer": settings,
        "max_grad_norm": MAX_GRAD_NORM,
        "scheduler": variant["scheduler"],
        "losses": losses,
        "grad_norms": grad_norms,
        "lrs": lrs,
        "final_loss": final_loss,
        "final_weights": f"{name}_final.safetensors",
    }
    with open(os.path.join(case_dir, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(case_dir, f"{name}_final.safetensors"),
                      {k: p.detach() for k, p in params.items()}, metadata={"format": "pt"})


ADAMW = dict(name="adamw", lr=1e-2, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01, amsgrad=False)
SGD = dict(name="sgd", lr=0.05, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0)
WARMUP = 2
TRAJECTORIES = {
    "trajectory": dict(optimizer=ADAMW, scheduler=dict(name="constant"), schedule_factor=lambda step: 1.0),
    "trajectory_sgd": dict(optimizer=SGD, scheduler=dict(name="constant"), schedule_factor=lambda step: 1.0),
    "trajectory_linear": dict(optimizer=ADAMW,
                              scheduler=dict(name="linear", warmup_steps=WARMUP, total_steps=TRAJECTORY_STEPS),
                              schedule_factor=linear_schedule(WARMUP, TRAJECTORY_STEPS)),
    "trajectory_cosine": dict(optimizer=ADAMW,
                              scheduler=dict(name="cosine", warmup_steps=WARMUP, total_steps=TRAJECTORY_STEPS,
                                             num_cycles=0.5),
                              schedule_factor=cosine_schedule(WARMUP, TRAJECTORY_STEPS)),
}


def make_case(case: str, spec: dict, seed: int) -> None:
    case_dir = os.path.join(OUT_DIR, case)
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(case_dir)
    gen = torch.Generator().manual_seed(seed)
    write_model(case_dir, spec, gen)
    write_adapter(case_dir, case, spec, gen)
    write_batch(case_dir, spec, spec["config"]["vocab_size"], gen)

    model, _, input_ids, labels = load_case(case_dir)
    if spec["storage"] == "BF16":
        check_bf16_storage(case_dir, model)
    check_padding_is_inert(model, input_ids, labels)
    fd_error = finite_difference_check(model, input_ids, labels)
    loss, grads = write_reference(case_dir, model, input_ids, labels)
    for name, variant in TRAJECTORIES.items():
        write_trajectory(case_dir, name, variant)
    print(f"{case}: loss {loss:.6f} (ln V = {math.log(spec['config']['vocab_size']):.4f}), "
          f"finite-difference max relative error {fd_error:.2e}; {fp32_deviation(case_dir, loss, grads)}")
    assert fd_error < FD_TOLERANCE, f"{case}: LoRA gradients disagree with finite differences ({fd_error:.2e})"


def main() -> None:
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    for seed, (case, spec) in enumerate(CASES.items()):
        make_case(case, spec, seed=1000 + seed)


if __name__ == "__main__":
    main()
