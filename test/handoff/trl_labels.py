"""The tokens and labels TRL trains on, for each generated handoff project given: the project's data loaded as its
train.py loads it, through SFTTrainer's dataset preparation and data collator, one sequence per batch in order.
Prints one JSON object: {project: [{"input_ids": [...], "labels": [...]}, ...]}."""
import json
import os
import sys

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

out = {}
for project in sys.argv[1:]:
    with open(os.path.join(project, "job.json"), encoding="utf-8") as f:
        job = json.load(f)
    dataset = load_dataset("json", data_files={"train": os.path.join(project, "data/train.jsonl")})["train"]
    tokenizer = AutoTokenizer.from_pretrained(job["modelDir"])
    model = AutoModelForCausalLM.from_pretrained(job["modelDir"])
    args = SFTConfig(
        output_dir=os.path.join(project, "labels-check"),
        per_device_train_batch_size=1,
        max_length=None if job["data"]["pack"] else job["maxSeqLen"],  # as train.py
        packing=False,
        padding_free=job["data"]["pack"],
        train_sampling_strategy="sequential",
        bf16=False,
        report_to="none",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    rows = []
    for batch in trainer.get_train_dataloader():
        rows.append({"input_ids": batch["input_ids"][0].tolist(), "labels": batch["labels"][0].tolist()})
    out[project] = rows
print(json.dumps(out))
