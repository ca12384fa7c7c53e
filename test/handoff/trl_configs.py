"""Runs each generated project's train.py up to the training itself (SFTTrainer.train and save_model stubbed out), so
transformers, PEFT and TRL check every argument it passes, and prints what they resolved to, as one JSON object:
{project: {...}}."""
import json
import os
import runpy
import sys

from trl import SFTTrainer

built = []
original_init = SFTTrainer.__init__


def recording_init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    built.append(self)


SFTTrainer.__init__ = recording_init
SFTTrainer.train = lambda self, *args, **kwargs: None
SFTTrainer.save_model = lambda self, output_dir=None, *args, **kwargs: os.makedirs(output_dir, exist_ok=True)

out = {}
for project in sys.argv[1:]:
    os.environ["OUTPUT_DIR"] = os.path.join(project, "output")
    runpy.run_path(os.path.join(project, "train.py"), run_name="__main__")
    trainer = built[-1]
    a = trainer.args
    peft = trainer.model.peft_config["default"]
    out[project] = {
        "peft_type": str(peft.peft_type.value),
        "r": getattr(peft, "r", None),
        "use_rslora": getattr(peft, "use_rslora", None),
        "num_virtual_tokens": getattr(peft, "num_virtual_tokens", None),
        "prompt_tuning_init": getattr(getattr(peft, "prompt_tuning_init", None), "name", None),
        "optimizer": type(trainer.create_optimizer()).__name__,
        "momentum": trainer.optimizer.param_groups[0].get("momentum"),
        "scheduler": str(a.lr_scheduler_type.value),
        "warmup_steps": a.warmup_steps,
        "max_steps": a.max_steps,
        "epochs": a.num_train_epochs,
        "eval_strategy": str(a.eval_strategy.value),
        "save_strategy": str(a.save_strategy.value),
        "save_steps": a.save_steps,
        "load_best_model_at_end": a.load_best_model_at_end,
        "early_stopping": [
            cb.early_stopping_patience for cb in trainer.callback_handler.callbacks if hasattr(cb, "early_stopping_patience")
        ],
        "padding_free": trainer.padding_free,
        "sampling": a.train_sampling_strategy,
        "eval_rows": len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0,
    }
print(json.dumps(out))
