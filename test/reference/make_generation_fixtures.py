"""Adds greedy-generation golden values to every case under test/fixtures/numerics/ (written by make_fixtures.py,
whose files this script only reads).

Run from the repository root, after make_fixtures.py:  /usr/bin/python3 test/reference/make_generation_fixtures.py

For each case: a 6-token prompt, then 32 new tokens by greedy decoding in fp32, once with the base model (no adapter)
and once with the LoRA adapter at its configured scale. Each step recomputes the whole sequence from scratch (no KV
cache) at positions 0..n-1 and takes the argmax of the last position's logits; EOS does not stop it.

Prompt: the first 6 ids of batch.json's row 0. A prompt is rejected when some step of either run has a top-1 minus
top-2 logit margin below MIN_MARGIN (an engine could then pick the other id by rounding alone); the next candidates are
rows 1, 2, ... of batch.json, then prompts drawn from a generator seeded with SEED. generation.json's note names the
prompt used.

Checks before writing: the same greedy ids in float64, and the same ids from torch_generate_bench.greedy_decode (the
KV-cache loop) in fp32, for both runs of every case.

Writes <case>/generation.json and <case>/generation_logits.safetensors (F32 base_last_logits [V] and
adapter_last_logits [V]: the logits that chose the 32nd new token). Deterministic (one torch thread).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Iterator, List, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import CausalLM, load_adapter, load_model, write_safetensors  # noqa: E402
from torch_generate_bench import greedy_decode  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES_DIR = os.path.join(ROOT, "test", "fixtures", "numerics")
PROMPT_LEN = 6
NEW_TOKENS = 32
MIN_MARGIN = 1e-3  # smallest acceptable top-1 minus top-2 logit gap at any step
SEED = 0
PAD_TOKEN = 0  # batch.json's right padding; a candidate prompt containing it is skipped
RANDOM_CANDIDATES = 16


def case_dirs() -> List[str]:
    """Every folder under the fixtures directory holding a model and an adapter, sorted by name."""
    found = []
    for name in sorted(os.listdir(FIXTURES_DIR)):
        case_dir = os.path.join(FIXTURES_DIR, name)
        if os.path.isfile(os.path.join(case_dir, "model", "config.json")) and os.path.isdir(os.path.join(case_dir, "adapter")):
            found.append(case_dir)
    if not found:
        raise SystemExit(f"{FIXTURES_DIR}: no case folders (model/config.json + adapter/); run make_fixtures.py first")
    return found


def candidate_prompts(case_dir: str, vocab: int) -> Iterator[Tuple[List[int], str]]:
    """(prompt ids, where they came from) in order of preference."""
    with open(os.path.join(case_dir, "batch.json")) as f:
        rows = json.load(f)["input_ids"]
    for row, ids in enumerate(rows):
        prompt = ids[:PROMPT_LEN]
        if len(prompt) == PROMPT_LEN and PAD_TOKEN not in prompt:
            yield prompt, f"batch.json row {row}, first {PROMPT_LEN} ids"
    gen = torch.Generator().manual_seed(SEED)
    for draw in range(RANDOM_CANDIDATES):
        prompt = torch.randint(1, vocab, (PROMPT_LEN,), generator=gen).tolist()
        yield prompt, f"draw {draw} of torch.randint(1, V, ({PROMPT_LEN},)) from a generator seeded {SEED}"


@torch.no_grad()
def greedy_full_recompute(model: CausalLM, prompt: List[int]) -> Tuple[List[int], float, torch.Tensor]:
    """NEW_TOKENS greedy ids, the smallest top-1 minus top-2 margin over the steps, and the last step's logits [V]."""
    sequence = list(prompt)
    margins = []
    for _ in range(NEW_TOKENS):
        logits = model(torch.tensor([sequence]))[0, -1]  # (V,)
        top = torch.topk(logits, 2).values
        margins.append((top[0] - top[1]).item())
        sequence.append(int(torch.argmax(logits)))
    return sequence[len(prompt):], min(margins), logits


def load_pair(case_dir: str, dtype: torch.dtype) -> Tuple[CausalLM, CausalLM]:
    """(base model without LoRA, the same model with the case's adapter loaded)."""
    model_dir = os.path.join(case_dir, "model")
    base = load_model(model_dir, dtype)
    adapted = load_model(model_dir, dtype)
    load_adapter(adapted, os.path.join(case_dir, "adapter"))
    return base, adapted


def make_case(case_dir: str) -> None:
    case = os.path.basename(case_dir)
    base, adapted = load_pair(case_dir, torch.float32)
    rejected = []
    for prompt, source in candidate_prompts(case_dir, base.cfg.vocab_size):
        base_ids, base_margin, base_logits = greedy_full_recompute(base, prompt)
        adapter_ids, adapter_margin, adapter_logits = greedy_full_recompute(adapted, prompt)
        if min(base_margin, adapter_margin) >= MIN_MARGIN:
            break
        rejected.append(f"{source} (margin {min(base_margin, adapter_margin):.1e})")
    else:
        raise SystemExit(f"{case}: every candidate prompt has a greedy step with a margin below {MIN_MARGIN}")

    # The ids must not depend on precision or on the KV cache.
    base64, adapted64 = load_pair(case_dir, torch.float64)
    for label, model, model64, ids, logits in (("base", base, base64, base_ids, base_logits),
                                               ("adapter", adapted, adapted64, adapter_ids, adapter_logits)):
        ids64, _, logits64 = greedy_full_recompute(model64, prompt)
        assert ids64 == ids, f"{case} {label}: float64 greedy ids {ids64} differ from fp32 {ids}"
        cached_ids, _ = greedy_decode(model, torch.tensor([prompt]), NEW_TOKENS)
        assert cached_ids == ids, f"{case} {label}: KV-cache greedy ids {cached_ids} differ from full recompute {ids}"
        print(f"{case} {label}: float64 and KV-cache ids match; last logits fp32 vs float64 max abs diff "
              f"{(logits.double() - logits64).abs().max().item():.1e}")

    note = (f"Prompt: {source}"
            + (f" (rejected for a margin below {MIN_MARGIN}: {'; '.join(rejected)})" if rejected else "")
            + f". Greedy decoding of {NEW_TOKENS} tokens in fp32 by test/reference/llama_reference.py, recomputing the"
            " whole sequence (positions 0..n-1, causal mask) at every step and taking the argmax of the last"
            " position's logits; EOS does not stop it. base_ids: the model without the adapter; adapter_ids: with the"
            " LoRA adapter at its configured scale. min_margin_*: smallest top-1 minus top-2 logit over the steps."
            " generation_logits.safetensors: the fp32 logits that chose the last new token (sequence of prompt plus"
            f" {NEW_TOKENS - 1} new ids). The same ids come out in float64 and from a KV-cache loop.")
    record = {
        "prompt_ids": prompt,
        "base_ids": base_ids,
        "adapter_ids": adapter_ids,
        "min_margin_base": base_margin,
        "min_margin_adapter": adapter_margin,
        "dtype": "float32",
        "note": note,
    }
    with open(os.path.join(case_dir, "generation.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(case_dir, "generation_logits.safetensors"),
                      {"base_last_logits": base_logits, "adapter_last_logits": adapter_logits},
                      metadata={"format": "pt"})
    print(f"{case}: prompt {prompt} ({source}); min margin base {base_margin:.3f}, adapter {adapter_margin:.3f}; "
          f"ids differ at {sum(a != b for a, b in zip(base_ids, adapter_ids))} of {NEW_TOKENS} steps")


def main() -> None:
    torch.set_num_threads(1)
    for case_dir in case_dirs():
        make_case(case_dir)


if __name__ == "__main__":
    main()
