// The launch files of a handed-off project: accelerate configs (one GPU, DDP, FSDP, DeepSpeed ZeRO-3), pinned
// requirements, a Slurm sbatch script, a SkyPilot task, and the README that says how to run it and bring it back.
import type { TrainJob } from '../../shared/training.js';
import { gpuAdviceMarkdown, skyAccelerator, type GpuAdviceRow } from './gpuAdvice.js';

/** The versions the handoff is tested with (test/support/makeTrlEnv.mjs installs the same). */
export const PINNED_REQUIREMENTS = [
  'torch==2.13.0',
  'transformers==5.18.0',
  'peft==0.21.0',
  'trl==1.13.0',
  'accelerate==1.15.0',
  'datasets==5.0.1',
];

const ACCELERATE_COMMON = `compute_environment: LOCAL_MACHINE
machine_rank: 0
num_machines: 1
main_training_function: main
mixed_precision: 'no'
rdzv_backend: static
same_network: true
use_cpu: false
`;

/** accelerate config files by name; --num_processes on the command line overrides the count in them. */
export const ACCELERATE_CONFIGS: Record<string, string> = {
  'single_gpu.yaml': `# One GPU.\n${ACCELERATE_COMMON}distributed_type: 'NO'\nnum_processes: 1\n`,
  'ddp.yaml': `# Data parallel: a whole copy of the model on every GPU of the machine.\n${ACCELERATE_COMMON}distributed_type: MULTI_GPU\nnum_processes: 8\n`,
  'fsdp.yaml': `# Fully sharded data parallel: the frozen base weights split across the GPUs, gathered a layer at a time.
${ACCELERATE_COMMON}distributed_type: FSDP
num_processes: 8
fsdp_config:
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_backward_prefetch: BACKWARD_PRE
  fsdp_cpu_ram_efficient_loading: true
  fsdp_forward_prefetch: false
  fsdp_offload_params: false
  fsdp_sharding_strategy: FULL_SHARD
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_sync_module_states: true
  fsdp_use_orig_params: false
`,
  'zero3.yaml': `# DeepSpeed ZeRO stage 3: parameters, gradients and optimizer state split across the GPUs (pip install deepspeed).
${ACCELERATE_COMMON}distributed_type: DEEPSPEED
num_processes: 8
deepspeed_config:
  deepspeed_multinode_launcher: standard
  offload_optimizer_device: none
  offload_param_device: none
  zero3_init_flag: true
  zero3_save_16bit_model: true
  zero_stage: 3
`,
};

export function sbatchScript(name: string): string {
  return `#!/bin/bash
# Slurm: one node, its GPUs under DDP. sbatch slurm.sbatch (after: python -m venv .venv && .venv/bin/pip install -r requirements.txt)
#SBATCH --job-name=${name}
#SBATCH --nodes=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "$SLURM_SUBMIT_DIR"
source .venv/bin/activate
sha256sum -c data/SHA256SUMS
accelerate launch --config_file accelerate/ddp.yaml --num_processes "\${SLURM_GPUS_ON_NODE:-8}" train.py
`;
}

export function skyTask(name: string, advice: GpuAdviceRow[]): string {
  return `# SkyPilot: sky launch -c ${name} sky.yaml   (then: sky rsync-down ${name} ~/sky_workdir/output ./output)
name: ${name}
resources:
  accelerators: ${skyAccelerator(advice)}  # the memory plan's estimate for one GPU; change to taste
workdir: .
setup: |
  pip install -r requirements.txt
run: |
  sha256sum -c data/SHA256SUMS
  accelerate launch --config_file accelerate/ddp.yaml --num_processes "$SKYPILOT_NUM_GPUS_PER_NODE" train.py
`;
}

export interface ReadmeInput {
  title: string;
  job: TrainJob;
  runId: number | null;
  baseModel: string;
  dataFiles: { file: string; sha256: string; what: string }[];
  advice: GpuAdviceRow[];
  caveats: string[];
}

export function readme(input: ReadmeInput): string {
  const { job } = input;
  const importLine =
    input.runId === null ? 'peft-studio import output' : `peft-studio import output --run ${input.runId}`;
  return `# ${input.title}, run elsewhere

This folder is a self-contained Hugging Face TRL project for the same training run as PEFT Studio's: \`train.py\` is a
plain TRL \`SFTTrainer\` script with PEFT (${job.method === 'lora' ? 'LoRA' : 'prompt tuning'}) and every setting of the run, launched by \`accelerate\`
on one GPU, on many (DDP, FSDP, DeepSpeed ZeRO-3), on a Slurm cluster or a rented machine through SkyPilot.

## Run it

\`\`\`sh
python -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt          # the versions this handoff was tested with
sha256sum -c data/SHA256SUMS             # the data as the run saw it
accelerate launch --config_file accelerate/single_gpu.yaml train.py                   # one GPU
accelerate launch --config_file accelerate/ddp.yaml --num_processes 8 train.py        # 8 GPUs, DDP
accelerate launch --config_file accelerate/fsdp.yaml --num_processes 8 train.py       # 8 GPUs, FSDP
pip install deepspeed && accelerate launch --config_file accelerate/zero3.yaml --num_processes 8 train.py   # ZeRO-3
OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 train.py           # a check on a CPU: DDP over gloo
sbatch slurm.sbatch                      # Slurm
sky launch -c ${slug(input.title)} sky.yaml         # SkyPilot
\`\`\`

The base model is \`${input.baseModel}\`; set \`BASE_MODEL\` to another place of the same weights (a Hub id or a folder).
\`OUTPUT_DIR\` (default \`output/\`) receives the adapter and \`losses.json\`; \`TRAIN_DTYPE=bfloat16\` halves the weights'
memory on GPUs that have it (the run computed in float32, so losses then differ in the later digits).
With N processes, train.py splits the run's ${job.batchSize * job.gradAccum} rows per optimizer step over them (fewer accumulation
steps, then fewer rows per process), so the optimizer sees the same batch as the run did; it refuses an N that does not
divide them evenly (change \`BATCH_SIZE\` or \`GRAD_ACCUM\` in train.py for a larger batch: a different run).

## The data

${input.dataFiles.map((d) => `- \`${d.file}\` (sha256 \`${d.sha256}\`): ${d.what}`).join('\n')}

## Memory: which GPU

Estimates from PEFT Studio's memory plan of this recipe (its model of what a training step holds: weights,
activations ${job.gradientCheckpointing ? 'with gradient checkpointing' : 'without gradient checkpointing'}, adapter, gradients and optimizer state), plus 1 GiB for the CUDA context and 10% headroom.
They are not measurements of PyTorch: its allocator and kernels differ; treat the GPU size as a starting point.

${gpuAdviceMarkdown(input.advice)}

## What differs from the studio's run

${input.caveats.length ? input.caveats.map((c) => `- ${c}`).join('\n') : '- Nothing: TRL runs the same steps on the same tokens.'}

## Bring the result back

When the run is done, copy \`output/\` (or push it to the Hub) and import it into PEFT Studio${input.runId === null ? '' : `, linked to run ${input.runId}`}:

\`\`\`sh
${importLine}
\`\`\`
`;
}

export function slug(title: string): string {
  return (
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'peft-studio-run'
  );
}
