// train.py of a handed-off run: a plain TRL SFTTrainer script with every setting of the job written out. The data are
// the run's own token ids and labels (see handoff.ts), so TRL trains on the tokens and loss mask our engine did.
import type { TrainJob } from '../../shared/training.js';

/** What train.py needs to know beyond the job. */
export interface TrainScriptInput {
  job: TrainJob;
  title: string;
  /** The base model train.py loads by default: a Hub id or the run's model folder. */
  baseModel: string;
  /** Files of the project. */
  hasEval: boolean;
  hasChatTemplate: boolean;
  hasInitAdapter: boolean;
}

/** A value as a Python literal: JSON, but for booleans and null. */
export function py(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (Array.isArray(value)) return `[${value.map(py).join(', ')}]`;
  return JSON.stringify(value);
}

/** transformers' name of the job's schedule: its 'constant' ignores warmup, 'constant_with_warmup' does not. */
function schedulerName(job: TrainJob): string {
  const { scheduler, warmupSteps } = job.optimizer;
  return scheduler === 'constant' && warmupSteps > 0 ? 'constant_with_warmup' : scheduler;
}

function optimizerArgs(job: TrainJob): string[] {
  const o = job.optimizer;
  if (o.name === 'sgd') {
    return [
      `    optim="sgd",`,
      ...(o.momentum > 0 ? [`    optim_args=${py(`momentum=${o.momentum}`)},`] : []),
      `    weight_decay=${o.weightDecay},  # coupled (L2), as torch.optim.SGD and the studio's SGD`,
    ];
  }
  return [
    `    optim="adamw_torch",`,
    `    adam_beta1=${o.beta1},`,
    `    adam_beta2=${o.beta2},`,
    `    adam_epsilon=${o.eps},`,
    `    weight_decay=${o.weightDecay},`,
  ];
}

function adapterSetup(input: TrainScriptInput): string[] {
  const { job } = input;
  if (input.hasInitAdapter) {
    return [
      '# The run continued from an adapter of its own: training starts from a copy of it.',
      'model = PeftModel.from_pretrained(model, os.path.join(HERE, "init_adapter"), is_trainable=True)',
      'peft_config = None',
    ];
  }
  if (job.method === 'prompt-tuning') {
    const pt = job.promptTuning;
    const init =
      pt.init === 'text'
        ? [
            '    prompt_tuning_init=PromptTuningInit.TEXT,',
            `    prompt_tuning_init_text=${py(pt.initText ?? '')},`,
            '    tokenizer_name_or_path=BASE_MODEL,',
          ]
        : ['    prompt_tuning_init=PromptTuningInit.RANDOM,'];
    return [
      'peft_config = PromptTuningConfig(',
      '    task_type="CAUSAL_LM",',
      `    num_virtual_tokens=${pt.numVirtualTokens},`,
      ...init,
      ')',
    ];
  }
  const l = job.lora;
  return [
    'peft_config = LoraConfig(',
    '    task_type="CAUSAL_LM",',
    `    r=${l.rank},`,
    `    lora_alpha=${l.alpha},`,
    `    use_rslora=${py(l.useRslora)},  # scale alpha / sqrt(r) instead of alpha / r`,
    `    lora_dropout=${l.dropout},`,
    `    target_modules=${py(l.targets)},`,
    '    bias="none",',
    ')',
  ];
}

function quantization(job: TrainJob): string[] {
  if (job.quantize === 'none') return ['quantization_config = None'];
  // bitsandbytes has nf4 and fp4; the studio's int4 (symmetric 4-bit) has no counterpart there, nf4 comes closest.
  const type = job.quantize === 'fp4' ? 'fp4' : 'nf4';
  return [
    '# QLoRA: the base weights in 4 bits, as the run had them (needs bitsandbytes and a CUDA GPU).',
    'from transformers import BitsAndBytesConfig',
    '',
    'quantization_config = BitsAndBytesConfig(',
    '    load_in_4bit=True,',
    `    bnb_4bit_quant_type="${type}",`,
    '    bnb_4bit_use_double_quant=True,',
    '    bnb_4bit_compute_dtype=DTYPE,',
    ')',
  ];
}

/** Evaluation, checkpoint and best-adapter settings, from the job's cadences. */
function cadenceArgs(job: TrainJob, hasEval: boolean): string[] {
  const periodicEval = hasEval && job.evalEvery > 0;
  const keepBest = periodicEval && (job.keepBest || job.earlyStoppingPatience > 0);
  // Keeping the best needs a checkpoint at every validation: transformers saves then, so the cadences become one.
  const saveEvery = keepBest ? job.evalEvery : job.checkpointEvery;
  return [
    periodicEval ? `    eval_strategy="steps",\n    eval_steps=${job.evalEvery},` : '    eval_strategy="no",',
    saveEvery > 0 ? `    save_strategy="steps",\n    save_steps=${saveEvery},` : '    save_strategy="no",',
    `    save_total_limit=${job.keepCheckpoints},`,
    ...(keepBest
      ? ['    load_best_model_at_end=True,', '    metric_for_best_model="eval_loss",', '    greater_is_better=False,']
      : []),
  ];
}

export function trainScript(input: TrainScriptInput): string {
  const { job } = input;
  const packed = job.data.pack;
  const peftImports = input.hasInitAdapter
    ? 'PeftModel'
    : job.method === 'prompt-tuning'
      ? 'PromptTuningConfig, PromptTuningInit'
      : 'LoraConfig';
  const length = job.steps !== null ? `    max_steps=${job.steps},` : `    num_train_epochs=${job.epochs},`;
  const periodicEval = input.hasEval && job.evalEvery > 0;
  const patience =
    periodicEval && job.earlyStoppingPatience > 0 ? Math.ceil(job.earlyStoppingPatience / job.evalEvery) : 0;
  return `"""${input.title}: the same run through Hugging Face TRL's SFTTrainer and PEFT, written by PEFT Studio.

data/train.jsonl holds the run's rows as PEFT Studio's engine trained on them: token ids and labels (-100 where no loss),
after the column mapping, the chat template, the completion-only mask, truncation to ${job.maxSeqLen} tokens${packed ? ' and packing' : ''}.
SFTTrainer uses such a dataset as it is, so both train on the same tokens with the same mask. data/rows.jsonl holds the
same rows as text. Launch with accelerate (README.md), e.g.:  accelerate launch --config_file accelerate/ddp.yaml train.py
"""
import json
import math
import os

import torch
from datasets import load_dataset
from peft import ${peftImports}
from transformers import AutoModelForCausalLM, AutoTokenizer${patience ? ', EarlyStoppingCallback' : ''}
from trl import SFTConfig, SFTTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
# The base model: a Hub id or a folder with the same weights and tokenizer as the run's.
BASE_MODEL = os.environ.get("BASE_MODEL", ${py(input.baseModel)})
OUTPUT_DIR = os.environ.get("OUTPUT_DIR", os.path.join(HERE, "output"))
# float32 as PEFT Studio's engine computes; bfloat16 halves the weights' memory (the losses then differ slightly).
DTYPE = getattr(torch, os.environ.get("TRAIN_DTYPE", "float32"))

# The run's batch: BATCH_SIZE rows per micro-batch, GRAD_ACCUM micro-batches per optimizer step.
BATCH_SIZE = ${job.batchSize}
GRAD_ACCUM = ${job.gradAccum}


def split_batch(world_size):
    """Rows per process and accumulation steps that keep the run's BATCH_SIZE * GRAD_ACCUM rows per optimizer step."""
    rows = BATCH_SIZE * GRAD_ACCUM
    if GRAD_ACCUM % world_size == 0:
        return BATCH_SIZE, GRAD_ACCUM // world_size
    for per_device in range(BATCH_SIZE, 0, -1):
        if rows % (per_device * world_size) == 0:
            return per_device, rows // (per_device * world_size)
    raise SystemExit(
        f"the run's {rows} rows per optimizer step cannot be split evenly over {world_size} processes: "
        "change BATCH_SIZE or GRAD_ACCUM in train.py (a different batch is a different run)"
    )


per_device_batch, grad_accum = split_batch(int(os.environ.get("WORLD_SIZE", "1")))

data_files = {"train": os.path.join(HERE, "data/train.jsonl")}${input.hasEval ? `\ndata_files["eval"] = os.path.join(HERE, "data/eval.jsonl")` : ''}
dataset = load_dataset("json", data_files=data_files)

tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)${
    input.hasChatTemplate
      ? `
# The run rendered its chat rows with a template of its own: saved with the adapter, so chats use it too.
with open(os.path.join(HERE, "chat_template.jinja"), encoding="utf-8") as f:
    tokenizer.chat_template = f.read()`
      : ''
  }

${quantization(job).join('\n')}
model = AutoModelForCausalLM.from_pretrained(BASE_MODEL, dtype=DTYPE, quantization_config=quantization_config)

${adapterSetup(input).join('\n')}

args = SFTConfig(
    output_dir=OUTPUT_DIR,
${length}
    per_device_train_batch_size=per_device_batch,
    per_device_eval_batch_size=BATCH_SIZE,
    gradient_accumulation_steps=grad_accum,
    learning_rate=${job.optimizer.learningRate},
    lr_scheduler_type="${schedulerName(job)}",
    warmup_steps=${job.optimizer.warmupSteps},
${optimizerArgs(job).join('\n')}
    max_grad_norm=${job.optimizer.maxGradNorm},
${
  packed
    ? `    max_length=None,  # the rows are cut to ${job.maxSeqLen} tokens and packed already (TRL refuses a length with padding_free)`
    : `    max_length=${job.maxSeqLen},  # the rows are already cut to it`
}
    packing=False,  # ${packed ? 'the rows are packed already; seq_lengths keeps each sample to its own positions' : 'one row per sequence, as the run'}
    padding_free=${py(packed)},
    seed=${job.seed},
    data_seed=${job.seed},
    train_sampling_strategy="${job.shuffle ? 'random' : 'sequential'}",
    gradient_checkpointing=${py(job.gradientCheckpointing)},
    bf16=DTYPE == torch.bfloat16,  # TRL turns bf16 autocast on by default; float32 runs as the studio computes
${cadenceArgs(job, input.hasEval).join('\n')}
    logging_steps=1,
    report_to="none",
    use_cpu=not torch.cuda.is_available(),  # a check on the CPU: several processes then run DDP over gloo
)

trainer = SFTTrainer(
    model=model,
    args=args,
    train_dataset=dataset["train"],
    eval_dataset=${input.hasEval ? 'dataset["eval"]' : 'None'},
    processing_class=tokenizer,
    peft_config=peft_config,${patience ? `\n    # ${job.earlyStoppingPatience} steps without a lower validation loss, counted in validations of ${job.evalEvery} steps\n    callbacks=[EarlyStoppingCallback(early_stopping_patience=${patience})],` : ''}
)
trainer.train()${input.hasEval && !periodicEval ? '\ntrainer.evaluate()  # the run validated after its last step only' : ''}
if trainer.is_fsdp_enabled:
    trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
trainer.save_model(OUTPUT_DIR)
if trainer.is_world_process_zero():
    # Each step's loss, to compare with the studio's curve.
    losses = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    evals = [{"step": h["step"], "loss": h["eval_loss"]} for h in trainer.state.log_history if "eval_loss" in h]
    with open(os.path.join(OUTPUT_DIR, "losses.json"), "w", encoding="utf-8") as f:
        json.dump({"losses": losses, "evals": evals}, f)
    print(
        f"adapter written to {OUTPUT_DIR} after {trainer.state.global_step} steps on {args.world_size} process(es); "
        f"final loss {losses[-1]['loss'] if losses else math.nan:.4f}"
    )
`;
}
