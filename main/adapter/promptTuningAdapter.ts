// Prompt tuning as PEFT stores it: adapter_config.json {peft_type: "PROMPT_TUNING", num_virtual_tokens, token_dim}
// and adapter_model.safetensors holding `prompt_embeddings` [n_virtual, hidden], prepended to the input embeddings.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import type { ModelSpec } from '../model/architecture.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../model/safetensors.js';
import { adapterWeightsFile } from './loraAdapter.js';
import { writeFileAtomic } from '../util/atomicWrite.js';

export interface PromptTuningWeights {
  numVirtualTokens: number;
  /** [n_virtual, C] */
  embeddings: Float32Array;
}

export interface PromptTuningOrigin {
  init: 'RANDOM' | 'TEXT';
  initText: string | null;
  /** The tokenizer that read initText (the base model's folder). */
  tokenizer: string | null;
}

/** Writes the adapter folder's two files; returns their names. */
export function savePromptTuningAdapter(
  dir: string,
  weights: PromptTuningWeights,
  spec: ModelSpec,
  baseModel: string,
  origin: PromptTuningOrigin = { init: 'RANDOM', initText: null, tokenizer: null },
): string[] {
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(
    path.join(dir, 'adapter_model.safetensors'),
    {
      prompt_embeddings: { dtype: 'F32', shape: [weights.numVirtualTokens, spec.hiddenSize], data: weights.embeddings },
    },
    { format: 'pt' },
  );
  const config = {
    peft_type: 'PROMPT_TUNING',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    num_virtual_tokens: weights.numVirtualTokens,
    token_dim: spec.hiddenSize,
    num_transformer_submodules: 1,
    num_attention_heads: spec.numHeads,
    num_layers: spec.numLayers,
    prompt_tuning_init: origin.init,
    prompt_tuning_init_text: origin.initText,
    tokenizer_name_or_path: origin.tokenizer,
    inference_mode: true,
  };
  writeFileAtomic(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
  return ['adapter_model.safetensors', 'adapter_config.json'];
}

export function loadPromptTuningAdapter(
  dir: string,
  config: Record<string, unknown>,
  spec: ModelSpec,
): PromptTuningWeights {
  const configFile = path.join(dir, 'adapter_config.json');
  const n = config.num_virtual_tokens;
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0)
    throw new UserError(`${configFile}: field "num_virtual_tokens" must be a positive integer`);
  const weightsFile = adapterWeightsFile(dir);
  const entry = readSafetensorsHeader(weightsFile).get('prompt_embeddings');
  if (!entry) throw new UserError(`${weightsFile}: tensor "prompt_embeddings" is missing`);
  if (entry.shape.join(',') !== `${n},${spec.hiddenSize}`)
    throw new UserError(
      `${weightsFile}: tensor "prompt_embeddings" has shape [${entry.shape}], expected [${n},${spec.hiddenSize}]`,
    );
  return { numVirtualTokens: n, embeddings: readTensorF32(entry) };
}
