// The built-in demo's LoRA recipe, shared by `peft-studio demo` and the wizard's Quick preset on the demo model: what
// differs from defaultTrainJob's defaults (shared/trainJob.ts). The demo model is tiny (1M parameters, pretrained on a
// small generic corpus): it moves with a larger step than a real model's 2e-4, and every projection takes part so the
// new greetings and identity reach its frozen lm_head. Higher rates or more steps memorise the training rows and
// garble held-out answers.
export const DEMO_RECIPE = {
  steps: 200,
  learningRate: 3e-3,
  // A constant rate and no dropout: with the defaults (a linear decay to zero, dropout 0.05), or either one of them,
  // at most one of the three held-out answers took the shop's voice after 200 steps, against two with neither.
  scheduler: 'constant',
  dropout: 0,
  rank: 8,
  alpha: 16,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  batchSize: 8,
  maxSeqLen: 256,
} as const;
