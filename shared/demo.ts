// The built-in demo's LoRA recipe, shared by `peft-studio demo` and the wizard's Quick preset on the demo model. The
// demo model is tiny (1M parameters, pretrained on a small generic corpus): it moves with a larger step than a real
// model's 2e-4, and every projection takes part so the new greetings and identity reach its frozen lm_head. Higher
// rates or more steps memorise the training rows and garble held-out answers.
export const DEMO_RECIPE = {
  steps: 200,
  learningRate: 3e-3,
  rank: 8,
  alpha: 16,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  batchSize: 8,
  maxSeqLen: 256,
} as const;
