"""Transformers + PEFT side of the training benchmark: what a user would really run on PyTorch 2. LoRA fine-tuning steps
of a Llama-family model on random tokens, on the CPU, in fp32.

Runs in the benchmark's own virtual environment (PyTorch 2, transformers, peft), not Debian's python3:
  ~/.cache/peft-studio/bench-venv/bin/python test/reference/hf_peft_bench.py --model DIR --attn sdpa \
      --gradient-checkpointing on --threads 2 --json

--model loads a Hugging Face model folder (config.json + model.safetensors: the very weights PEFT Studio trains in the
same benchmark run). Without it, the shape flags build a LlamaForCausalLM with random N(0, 0.02) weights (defaults:
SmolLM2-135M's shape, tied embeddings).

A step is model(input_ids, labels=input_ids).loss (transformers shifts the labels), backward, AdamW on the LoRA
parameters. LoRA: peft.LoraConfig(r, lora_alpha, q/k/v/o, lora_dropout 0). Gradient checkpointing is transformers' own,
non-reentrant (model.gradient_checkpointing_enable). One untimed warm-up step, then --steps timed steps, one mode per
process so that peak RSS (ru_maxrss) belongs to that mode alone. torch.set_num_threads(--threads); the pip wheels of
PyTorch 2 bring their own OpenMP + oneDNN/MKL-style kernels, so unlike Debian's torch 1.13 there is no second (OpenBLAS)
pool to oversubscribe the cores.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="Hugging Face model folder to load; without it, random weights of the shape below")
    p.add_argument("--hidden", type=int, default=576)
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--heads", type=int, default=9)
    p.add_argument("--kv-heads", type=int, default=3)
    p.add_argument("--intermediate", type=int, default=1536)
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="timed steps, after one untimed warm-up step")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="sdpa", help="transformers' attn_implementation")
    p.add_argument("--gradient-checkpointing", choices=["on", "off"], default="off")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON line only")
    return p.parse_args()


def load_model(args: argparse.Namespace) -> LlamaForCausalLM:
    if args.model:
        try:  # transformers >= 4.56 calls it dtype; older releases only know torch_dtype
            return LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation=args.attn)
        except TypeError:
            return LlamaForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32,
                                                    attn_implementation=args.attn)
    config = LlamaConfig(
        hidden_size=args.hidden, intermediate_size=args.intermediate, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, vocab_size=args.vocab,
        rms_norm_eps=1e-5, rope_theta=args.rope_theta, max_position_embeddings=8192, tie_word_embeddings=True,
        attn_implementation=args.attn)
    model = LlamaForCausalLM(config)  # transformers' init: N(0, initializer_range = 0.02), norm gains 1
    return model.to(torch.float32)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model(args)
    model.config.use_cache = False  # training: no KV cache (transformers warns when it meets checkpointing)
    if args.gradient_checkpointing == "on":
        # Non-reentrant: LoRA weights inside a recomputed layer get their gradients although the layer's input (the
        # frozen embedding's output) needs none, so no enable_input_require_grads(), which would add the gradient of
        # the first layer's input, work that no other contender does.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=args.targets.split(","), lora_dropout=0.0,
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()  # transformers only recomputes layers in training mode
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (args.batch_size, args.seq_len))

    def train_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    first_loss = train_step()  # warm-up: allocator, thread pool, optimizer state
    times = []
    loss = first_loss
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = train_step()
        times.append(time.perf_counter() - start)
    seconds_per_step = sum(times) / len(times)
    base = model.get_base_model()
    result = {
        "tokens_per_second": args.batch_size * args.seq_len / seconds_per_step,
        "seconds_per_step": seconds_per_step,
        "step_seconds": times,
        "best_seconds_per_step": min(times),
        "tokens_per_second_best": args.batch_size * args.seq_len / min(times),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "attn": base.config._attn_implementation,
        "checkpointing": bool(getattr(base, "is_gradient_checkpointing", False)),
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "layers": base.config.num_hidden_layers,
        "weights": args.model or "random",
        "lora_parameters": sum(p.numel() for p in params),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        # Sanity: random tokens under small random weights give about ln(vocab) (10.8 for 49152).
        "first_loss": first_loss,
        "last_loss": loss,
        "expected_first_loss": float(torch.log(torch.tensor(float(vocab)))),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
