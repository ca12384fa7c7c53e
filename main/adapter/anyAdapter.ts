// Any PEFT adapter the playground can apply: LoRA (unmerged, scaled at run time) or prompt tuning (virtual tokens).
import { UserError } from '../../shared/errors.js';
import type { ModelSpec } from '../model/architecture.js';
import { loadLoraAdapter, readAdapterConfig, type LoraWeights } from './loraAdapter.js';
import { loadPromptTuningAdapter, type PromptTuningWeights } from './promptTuningAdapter.js';

export type Adapter = { kind: 'lora'; lora: LoraWeights } | { kind: 'prompt-tuning'; prompt: PromptTuningWeights };

export function loadAdapter(dir: string, spec: ModelSpec): Adapter {
  const config = readAdapterConfig(dir);
  switch (config.peft_type) {
    case 'LORA':
      return { kind: 'lora', lora: loadLoraAdapter(dir, spec, config) };
    case 'PROMPT_TUNING':
      return { kind: 'prompt-tuning', prompt: loadPromptTuningAdapter(dir, config, spec) };
    default:
      throw new UserError(
        `${dir}/adapter_config.json: peft_type ${JSON.stringify(config.peft_type)} is not supported (LORA, PROMPT_TUNING)`,
      );
  }
}
