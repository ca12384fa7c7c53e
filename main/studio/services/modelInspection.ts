// models.inspect: what a model is and whether the studio can train it, from a local folder (config.json and
// safetensors headers) or a Hub repo (its config.json and file list, no weights downloaded).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ModelInspection } from '../../../shared/api.js';
import { UserError } from '../../../shared/errors.js';
import { HUB_REPO_ID, type HubAccess } from '../../hub/access.js';
import { planDefaultTraining } from '../../engine/compile/memoryPlan.js';
import { preflightModel } from '../../hub/preflight.js';
import { describeModelFolder } from '../runs/modelRecord.js';

export async function inspectModel(
  source: string,
  revision: string | undefined,
  hub: () => HubAccess,
): Promise<ModelInspection> {
  if (fs.existsSync(source)) {
    const base = { source: path.resolve(source), kind: 'local' as const, gated: false as const };
    try {
      const record = describeModelFolder(source);
      return {
        ...base,
        trainingBytes: null,
        fits: null,
        architecture: record.architecture,
        parameters: record.parameters,
        dtype: record.dtype,
        sizeBytes: record.sizeBytes,
        supported: true,
        reason: null,
      };
    } catch (err) {
      // A folder the studio cannot read is an answer ("not supported, because"), not a failed call.
      if (!(err instanceof UserError)) throw err;
      return {
        ...base,
        trainingBytes: null,
        fits: null,
        architecture: null,
        parameters: null,
        dtype: null,
        sizeBytes: null,
        supported: false,
        reason: err.message,
      };
    }
  }
  if (!HUB_REPO_ID.test(source))
    throw new UserError(`${source}: neither an existing folder nor a Hub model id (org/name)`);
  const plan = await preflightModel(hub(), source, {
    revision,
    estimateTrainingBytes: (spec, { weightBytesPerElement }) =>
      planDefaultTraining(spec, weightBytesPerElement).totalBytes,
    availableBytes: os.totalmem(),
  });
  return {
    source,
    kind: 'hub',
    architecture: plan.architecture,
    parameters: plan.parameterCount,
    dtype: null,
    sizeBytes: plan.totalBytes,
    supported: plan.supported,
    reason: plan.reason ?? null,
    gated: plan.gated,
    trainingBytes: plan.estimateBytes ?? null,
    fits: plan.fits ?? null,
  };
}
