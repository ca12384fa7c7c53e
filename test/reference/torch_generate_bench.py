"""PyTorch side of the text-generation benchmark: greedy decoding with a KV cache from a randomly initialised
Llama-family model (no LoRA), batch 1, on the CPU, in fp32.

  /usr/bin/python3 test/reference/torch_generate_bench.py --json

Defaults are SmolLM2-135M's shape (tied embeddings), a 128-token random prompt and 128 new tokens. The prompt is
prefilled in one forward pass; time to first token runs from the start of that pass (cache allocation included) until
the first new token's id is chosen. Each further token is one decode step: a forward pass of the previous token against
the cache. Greedy argmax, never stopping at EOS. decode_tokens_per_second = (new tokens - 1) / decode seconds.
Unless --no-warmup, an untimed short generation first warms the allocator and thread pool, as torch_bench.py's warm-up
step does.

Threads: --threads sets torch's OpenMP pool only. Debian's torch calls OpenBLAS (the pthreads build), whose own pool
defaults to one thread per core, so --threads 2 on 2 cores runs up to 4 busy threads: OpenMP workers spin-wait while
OpenBLAS needs the cores, and decoding (small matrix-vector products) slows down about 4x. The JSON records the
variables that decide this; for a fair baseline on such a machine compare with
  OPENBLAS_NUM_THREADS=2 /usr/bin/python3 test/reference/torch_generate_bench.py --threads 1 --json
or OMP_WAIT_POLICY=PASSIVE with --threads 2.

Also the KV-cache reference for the generation fixtures: make_generation_fixtures.py checks greedy_decode() here
against a full recompute of the whole sequence at every step.

Legend: B = batch, T = new positions this pass, L = positions in the cache after this pass, C = hidden_size,
H = query heads, K = key/value heads, D = head_dim, V = vocab_size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import List, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import Attention, CausalLM, ModelConfig, add_model_shape_args, random_model, repeat_kv, rope_cos_sin, rotate_half  # noqa: E402


class KvCache:
    """Keys and values of every layer, preallocated to max_len positions; positions [0, length) are filled.
    Keys are stored after RoPE (and after q/k norm), one entry per key/value head: GQA repeats them only when used."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, dtype: torch.dtype):
        shape = (batch, cfg.num_key_value_heads, max_len, cfg.head_dim)  # (B, K, max_len, D)
        self.keys = [torch.empty(shape, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.values = [torch.empty(shape, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.max_len = max_len
        self.length = 0


def cached_attention(attn: Attention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KvCache,
                     layer: int) -> torch.Tensor:
    """Attention.forward for T new positions starting at cache.length: appends their keys/values to the cache and
    attends over all L = cache.length + T positions. cos, sin (T, D) are the new positions' rows. Leaves cache.length
    alone (the caller advances it once every layer has written)."""
    cfg = attn.cfg
    b, t, _ = x.shape
    h, k, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    start, end = cache.length, cache.length + t
    q = attn.q_proj(x).view(b, t, h, d)  # (B, T, H, D)
    kk = attn.k_proj(x).view(b, t, k, d)  # (B, T, K, D)
    v = attn.v_proj(x).view(b, t, k, d).transpose(1, 2)  # (B, K, T, D)
    if cfg.qk_norm:
        q, kk = attn.q_norm(q), attn.k_norm(kk)
    q, kk = q.transpose(1, 2), kk.transpose(1, 2)  # (B, H, T, D), (B, K, T, D)
    q = q * cos + rotate_half(q) * sin
    kk = kk * cos + rotate_half(kk) * sin
    cache.keys[layer][:, :, start:end] = kk
    cache.values[layer][:, :, start:end] = v
    keys = repeat_kv(cache.keys[layer][:, :, :end], h // k)  # (B, H, L, D)
    values = repeat_kv(cache.values[layer][:, :, :end], h // k)  # (B, H, L, D)
    scores = (q @ keys.transpose(-1, -2)) * d**-0.5  # (B, H, T, L)
    if t > 1:
        # New position start+i sees cached positions 0..start+i: mask columns above the shifted diagonal.
        future = torch.ones(t, end, dtype=torch.bool).triu(start + 1)
        scores = scores.masked_fill(future, float("-inf"))
    softmax_dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    probs = F.softmax(scores, dim=-1, dtype=softmax_dtype).to(q.dtype)
    out = (probs @ values).transpose(1, 2).reshape(b, t, h * d)  # (B, T, H*D)
    return attn.o_proj(out)


def forward_with_cache(model: CausalLM, input_ids: torch.Tensor, cache: KvCache, cos: torch.Tensor,
                       sin: torch.Tensor) -> torch.Tensor:
    """input_ids (B, T) at positions cache.length .. cache.length+T-1 -> logits of the last position (B, V).
    cos, sin (max_len, D) cover every position; only the last position goes through the LM head."""
    start, t = cache.length, input_ids.shape[1]
    if start + t > cache.max_len:
        raise ValueError(f"KV cache holds {cache.max_len} positions; {start} used, {t} more requested")
    cos, sin = cos[start : start + t], sin[start : start + t]  # (T, D)
    x = model.model.embed_tokens(input_ids)  # (B, T, C)
    for i, layer in enumerate(model.model.layers):
        x = x + cached_attention(layer.self_attn, layer.input_layernorm(x), cos, sin, cache, i)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    cache.length += t
    return F.linear(model.model.norm(x[:, -1]), model.head_weight())  # (B, V)


@torch.no_grad()
def greedy_decode(model: CausalLM, prompt_ids: torch.Tensor, new_tokens: int) -> Tuple[List[int], List[float]]:
    """Greedy generation of new_tokens ids after prompt_ids (1, T) with a KV cache; never stops at EOS.
    Returns the ids and the time.perf_counter() at which each was chosen."""
    cfg = model.cfg
    dtype = model.model.embed_tokens.weight.dtype
    max_len = prompt_ids.shape[1] + new_tokens - 1  # the last new token is chosen but never fed back
    cache = KvCache(cfg, prompt_ids.shape[0], max_len, dtype)
    cos, sin = rope_cos_sin(cfg, max_len, dtype)  # (max_len, D)
    ids: List[int] = []
    stamps: List[float] = []
    logits = forward_with_cache(model, prompt_ids, cache, cos, sin)  # prefill
    for step in range(new_tokens):
        if step > 0:
            logits = forward_with_cache(model, torch.tensor([[ids[-1]]]), cache, cos, sin)
        ids.append(int(torch.argmax(logits[0])))
        stamps.append(time.perf_counter())
    return ids, stamps


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_shape_args(p)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-warmup", action="store_true", help="time the very first generation of the process")
    p.add_argument("--json", action="store_true", help="print one JSON line only")
    args = p.parse_args()
    if args.new_tokens < 2:
        p.error("--new-tokens must be at least 2 (one token from the prefill, the rest decoded)")
    return args


def build_model(args: argparse.Namespace) -> CausalLM:
    """Random fp32 weights: N(0, 0.02) everywhere except norm gains, which are 1."""
    model = random_model(args)
    model.eval()
    return model


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model(args)
    prompt = torch.randint(0, args.vocab, (1, args.prompt_len))  # (1, T)
    if not args.no_warmup:
        greedy_decode(model, prompt, 2)

    start = time.perf_counter()
    ids, stamps = greedy_decode(model, prompt, args.new_tokens)
    time_to_first_token = stamps[0] - start
    decode_seconds = stamps[-1] - stamps[0]
    step_seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    result = {
        "decode_tokens_per_second": (args.new_tokens - 1) / decode_seconds,
        "time_to_first_token_s": time_to_first_token,
        "total_seconds": stamps[-1] - start,
        "decode_seconds": decode_seconds,
        # The median step is the least disturbed by other work on a shared machine.
        "decode_step_seconds_median": statistics.median(step_seconds),
        "decode_step_seconds_min": min(step_seconds),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        # Read by OpenBLAS / the OpenMP runtime at load time; unset means their defaults (one thread per core, spin).
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "warmup": not args.no_warmup,
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "first_ids": ids[:8],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
