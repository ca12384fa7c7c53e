// runs.checkpointAdapter: one saved checkpoint of a run written out as a PEFT adapter folder (its LoRA weights or
// virtual-token embeddings as they were at that step), with a training.json and the studio's manifest like the
// adapter a run writes at its end, so the playground, the exports and deletes treat both alike.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../../shared/errors.js';
import type { DataFormat, TrainJob } from '../../../shared/training.js';
import {
  adapterManifestText,
  writeAdapterChatTemplate,
  writeAdapterFolder,
  type ProtectedPlaces,
} from '../../adapter/adapterFiles.js';
import { initLoraWeights, saveLoraAdapter } from '../../adapter/loraAdapter.js';
import { savePromptTuningAdapter } from '../../adapter/promptTuningAdapter.js';
import { rendersThroughChatTemplate } from '../../data/render.js';
import { readCheckpoint } from '../../engine/jobs/checkpoint.js';
import { adapterBaseModel, flatTensors } from '../../engine/jobs/trainer.js';
import { parseModelConfig } from '../../model/architecture.js';
import { loadChatTemplate } from '../../model/chatTemplate.js';
import { writeFileAtomic } from '../../util/atomicWrite.js';
import { explainFileError } from '../../util/fileErrors.js';

export interface CheckpointAdapterRequest {
  runId: number;
  job: TrainJob;
  /** The run's checkpoints folder (which the manifest names as the adapter's owner) and the step's folder in it. */
  checkpointDir: string;
  stepFolder: string;
  /** A new or empty folder, or one this run's checkpoint was written into before. */
  outDir: string;
  places: ProtectedPlaces;
  /** The format the run's training rows were read as (null before its data was read). */
  dataFormat: DataFormat | null;
  dataSha256: string | null;
}

export interface CheckpointAdapter {
  step: number;
  finalLoss: number;
  evalLoss: number | null;
  /** The manifest written last into the folder, as the store keeps it. */
  manifest: string | null;
}

const readJson = (file: string): Record<string, unknown> => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Whether the run's rows went through a chat template (its own file, or the model's), as its adapter records it. */
function trainedThroughTemplate(job: TrainJob, format: DataFormat | null): boolean {
  if (format === null) return false;
  if (job.data.chatTemplate) return rendersThroughChatTemplate(format, true);
  const modelDir = path.resolve(job.modelDir);
  const tokenizerConfig = path.join(modelDir, 'tokenizer_config.json');
  const config = fs.existsSync(tokenizerConfig) ? readJson(tokenizerConfig) : {};
  return rendersThroughChatTemplate(format, loadChatTemplate(modelDir, config) !== null);
}

export function writeCheckpointAdapter(request: CheckpointAdapterRequest): CheckpointAdapter {
  const { job, stepFolder } = request;
  const where = `run ${request.runId}'s checkpoint ${stepFolder}`;
  let state: ReturnType<typeof readCheckpoint>;
  try {
    state = readCheckpoint(stepFolder);
  } catch (err) {
    throw explainFileError(err, stepFolder) ?? new UserError(`${where}: cannot be read (${(err as Error).message})`);
  }
  const modelDir = path.resolve(job.modelDir);
  const configFile = path.join(modelDir, 'config.json');
  const spec = parseModelConfig(readJson(configFile), configFile);
  const mismatch = new UserError(`${where}: its tensors do not match the run's ${job.method} settings`);
  writeAdapterFolder(
    { outDir: request.outDir },
    request.places,
    {
      run: { checkpoints: request.checkpointDir, fingerprint: state.jobFingerprint },
      chatTemplate: trainedThroughTemplate(job, request.dataFormat),
    },
    (dir) => {
      let files: string[];
      if (job.method === 'lora') {
        // The stepper's order (trainer.ts): every layer's A and B per target, then nothing else.
        const lora = initLoraWeights(spec, job.lora, () => 0);
        const tensors = flatTensors(lora);
        if (state.params.length !== tensors.length || tensors.some((t, i) => t.length !== state.params[i].length))
          throw mismatch;
        tensors.forEach((t, i) => t.set(state.params[i]));
        files = saveLoraAdapter(dir, lora, adapterBaseModel(modelDir));
      } else {
        const embeddings = state.params.at(-1);
        const { numVirtualTokens } = job.promptTuning;
        if (embeddings?.length !== numVirtualTokens * spec.hiddenSize) throw mismatch;
        const origin =
          job.promptTuning.init === 'text'
            ? { init: 'TEXT' as const, initText: job.promptTuning.initText, tokenizer: modelDir }
            : undefined;
        files = savePromptTuningAdapter(
          dir,
          { numVirtualTokens, embeddings },
          spec,
          adapterBaseModel(modelDir),
          origin,
        );
      }
      // As the run's own training.json, cut at the checkpoint's step, for the model card.
      const { outDir, overwriteOutput, modelDir: _model, dataFile, evalDataFile, initAdapterDir, ...settings } = job;
      const record = {
        settings,
        baseModel: path.basename(modelDir),
        dataset: { name: path.basename(dataFile), sha256: request.dataSha256 },
        checkpointStep: state.step,
        finalLoss: state.loss,
        evalLoss: state.evalLoss,
        losses: state.losses ?? [],
      };
      writeFileAtomic(path.join(dir, 'training.json'), `${JSON.stringify(record, null, 1)}\n`);
      return [...files, ...writeAdapterChatTemplate(dir, job.data.chatTemplate), 'training.json'];
    },
  );
  return {
    step: state.step,
    finalLoss: state.loss,
    evalLoss: state.evalLoss,
    manifest: adapterManifestText(path.resolve(request.outDir)),
  };
}
