"""PyTorch side of the training speed/memory benchmark: LoRA fine-tuning steps of a randomly initialised Llama-family
model on random tokens, on the CPU, in fp32.

One mode per process, so that peak RSS (ru_maxrss) belongs to that mode alone:
  /usr/bin/python3 test/reference/torch_bench.py --gradient-checkpointing off --json
  /usr/bin/python3 test/reference/torch_bench.py --gradient-checkpointing on --json
Defaults are SmolLM2-135M's shape (tied embeddings); a step is forward + backward + AdamW on the LoRA parameters.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import CausalLM, add_model_shape_args, attach_lora, causal_lm_loss, lora_parameters, random_model  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_shape_args(p)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed steps, after one untimed warm-up step")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    p.add_argument("--gradient-checkpointing", choices=["on", "off"], default="off")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON line only")
    return p.parse_args()


def build_model(args: argparse.Namespace) -> CausalLM:
    model = random_model(args)
    attach_lora(model, dict(peft_type="LORA", r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0,
                            target_modules=args.targets.split(","), use_rslora=False))
    with torch.no_grad():
        # PEFT's init: A Kaiming-uniform (left from nn.Linear), B zero.
        for key, p in lora_parameters(model).items():
            if ".lora_B." in key:
                p.zero_()
    if args.gradient_checkpointing == "on":
        # Recompute each decoder layer in backward; non-reentrant, so inputs need not require grad.
        model.layer_runner = lambda layer, x, cos, sin: checkpoint(layer, x, cos, sin, use_reentrant=False)
    return model


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model(args)
    params = list(lora_parameters(model).values())
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    tokens = torch.randint(0, args.vocab, (args.batch_size, args.seq_len))

    def train_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = causal_lm_loss(model(tokens), tokens)
        loss.backward()
        optimizer.step()
        return loss.item()

    train_step()  # warm-up: allocator, thread pool, optimizer state
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = train_step()
        times.append(time.perf_counter() - start)
    seconds_per_step = sum(times) / len(times)
    result = {
        "tokens_per_second": args.batch_size * args.seq_len / seconds_per_step,
        "seconds_per_step": seconds_per_step,
        "step_seconds": times,
        # The fastest step is the least disturbed by other work on a shared machine.
        "best_seconds_per_step": min(times),
        "tokens_per_second_best": args.batch_size * args.seq_len / min(times),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "gradient_checkpointing": args.gradient_checkpointing == "on",
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "lora_parameters": sum(p.numel() for p in params),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "last_loss": loss,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
