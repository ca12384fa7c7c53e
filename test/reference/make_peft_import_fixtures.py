"""Adapters written by real PEFT, for `peft-studio import` (test/adapter/importAdapter.test.ts): what a run elsewhere
hands back. Writes test/fixtures/peft_import/:

  trainer-out/                 transformers.Trainer's output_dir after 4 LoRA steps on the built-in demo data:
                               the final adapter at the top (trainer.save_model), checkpoint-2/ and checkpoint-4/
                               (save_steps 2), trainer_state.json (trainer.save_state)
  prompt-tuning/               a PromptTuningConfig adapter (save_pretrained), 4 virtual tokens
  expected.json                for one prompt: PEFT's last-position logits and 8 greedy ids with each adapter

The base is the built-in demo model (resources/demo/model), loaded by its Hub id `peft-studio/demo-tiny` from a
Hugging Face cache made here (HF_HUB_OFFLINE), so PEFT records `base_model_name_or_path: peft-studio/demo-tiny`
exactly as a run on a Hub model does; the tests serve that repo from the loopback Hub.

Runs in the benchmark's venv (PyTorch 2, transformers, peft, accelerate from pip; test/bench/pythonEnv.mjs):
  ~/.cache/peft-studio/bench-venv/bin/python test/reference/make_peft_import_fixtures.py

The pickles the Trainer also writes into each checkpoint (optimizer.pt, scheduler.pt, rng_state.pth,
training_args.bin) are deleted before committing: the import never reads them, and a test adds stand-ins to show
that they are not copied. Deterministic on one CPU thread.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_MODEL = os.path.join(ROOT, "resources", "demo", "model")
DEMO_DATA = os.path.join(ROOT, "resources", "demo", "data.jsonl")
OUT = os.path.join(ROOT, "test", "fixtures", "peft_import")
REPO_ID = "peft-studio/demo-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PROMPT = "User: Do you sell helmets?\nAssistant:"
PICKLES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin")


def fake_hub_cache() -> str:
    """A Hugging Face cache holding the demo model as REPO_ID at COMMIT (refs/main points at it)."""
    cache = tempfile.mkdtemp(prefix="peft-import-hub-")
    repo = os.path.join(cache, "models--" + REPO_ID.replace("/", "--"))
    snapshot = os.path.join(repo, "snapshots", COMMIT)
    shutil.copytree(DEMO_MODEL, snapshot)
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(COMMIT)
    return cache


os.environ["HF_HUB_CACHE"] = fake_hub_cache()
os.environ["HF_HUB_OFFLINE"] = "1"

import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, PromptTuningConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments  # noqa: E402


def base_model() -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(REPO_ID, dtype=torch.float32)


def greedy(model: torch.nn.Module, prompt_ids: list[int], count: int) -> list[int]:
    """Greedy ids by full recomputation each step (no KV cache involved), EOS not stopping it."""
    ids = list(prompt_ids)
    for _ in range(count):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        ids.append(int(torch.argmax(logits)))
    return ids[len(prompt_ids):]


def reference(model: torch.nn.Module, prompt_ids: list[int]) -> dict:
    model.eval()
    with torch.no_grad():
        last = model(input_ids=torch.tensor([prompt_ids])).logits[0, -1]
    return {"last_logits": [float(x) for x in last], "greedy_ids": greedy(model, prompt_ids, 8)}


class Rows(torch.utils.data.Dataset):
    def __init__(self, tokenizer, texts: list[str]):
        self.rows = [tokenizer(t + tokenizer.eos_token)["input_ids"] for t in texts]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        ids = torch.tensor(self.rows[i])
        return {"input_ids": ids, "labels": ids.clone()}


def train_lora(tokenizer, out: str) -> None:
    with open(DEMO_DATA) as f:
        texts = [json.loads(line)["text"] for line in f][:8]
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=4,
        lora_alpha=8,
        use_rslora=True,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    model = get_peft_model(base_model(), config)
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=1,
        max_steps=4,
        learning_rate=3e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_steps=2,
        report_to=[],
        use_cpu=True,
        seed=0,
        data_seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Rows(tokenizer, texts))
    trainer.train()
    trainer.save_model(out)
    trainer.save_state()
    for folder in [out] + [os.path.join(out, d) for d in os.listdir(out) if d.startswith("checkpoint-")]:
        for name in PICKLES:
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for written in ("trainer-out", "prompt-tuning"):  # the folder's README.md stays
        shutil.rmtree(os.path.join(OUT, written), ignore_errors=True)
    os.makedirs(OUT, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(REPO_ID)
    prompt_ids = tokenizer(PROMPT)["input_ids"]

    trainer_out = os.path.join(OUT, "trainer-out")
    train_lora(tokenizer, trainer_out)
    lora = PeftModel.from_pretrained(base_model(), trainer_out)

    torch.manual_seed(1)
    prompt_model = get_peft_model(
        base_model(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, prompt_tuning_init="RANDOM")
    )
    with torch.no_grad():  # RANDOM starts from N(0, 1), far larger than the model's own embeddings (N(0, 0.02))
        prompt_model.prompt_encoder["default"].embedding.weight.mul_(0.05)
    prompt_model.save_pretrained(os.path.join(OUT, "prompt-tuning"))
    prompt_model = PeftModel.from_pretrained(base_model(), os.path.join(OUT, "prompt-tuning"))

    expected = {
        "note": "written by test/reference/make_peft_import_fixtures.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "base_model": REPO_ID,
        "prompt": PROMPT,
        "prompt_ids": prompt_ids,
        "base": reference(base_model(), prompt_ids),
        "lora": reference(lora, prompt_ids),
        "prompt_tuning": reference(prompt_model, prompt_ids),
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    shutil.rmtree(os.environ["HF_HUB_CACHE"])
    print(f"wrote {OUT}: lora greedy {expected['lora']['greedy_ids']}, base greedy {expected['base']['greedy_ids']}")


if __name__ == "__main__":
    sys.exit(main())
