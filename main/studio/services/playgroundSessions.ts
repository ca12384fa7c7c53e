// playground.generate / playground.stop: generation in this process, one request at a time per model, streaming
// each token to a listener and stoppable by request id. The last loaded model stays loaded for the next prompt.
import path from 'node:path';
import type { CheckedParams, GenerationSummary } from '../../../shared/api.js';
import { UserError } from '../../../shared/errors.js';
import type { DeviceChoice, QuantizeChoice } from '../../../shared/training.js';
import { loadAdapter } from '../../adapter/anyAdapter.js';
import { InferenceModel } from '../../engine/runtime/inferenceModel.js';
import { chooseDevice, sessionThreads } from '../../engine/runtime/runtime.js';
import { openBaseModel } from '../../model/quant/quantizeOnLoad.js';
import { loadTokenizer, type ModelTokenizer } from '../../model/tokenizer.js';
import { chatPromptIds, textPromptIds } from '../../playground/chatPrompt.js';
import { generate } from '../../playground/generate.js';

/** Where generation runs: the device, and CPU threads chosen around any training run (see generationThreads). */
export interface GenerationEngine {
  device: DeviceChoice;
  threads: number;
  spinning: boolean;
}

interface LoadedModel {
  modelDir: string;
  adapterDir: string | null;
  engine: GenerationEngine;
  quantize: QuantizeChoice;
  model: InferenceModel;
  tokenizer: ModelTokenizer;
}

const sameEngine = (a: GenerationEngine, b: GenerationEngine) =>
  a.device === b.device && a.threads === b.threads && a.spinning === b.spinning;

export type TokenListener = (requestId: string, token: { id: number; text: string }) => void;

export class PlaygroundSessions {
  private loaded: Promise<LoadedModel> | null = null;
  private readonly running = new Map<string, AbortController>();
  /** Generations wait for each other: they share the loaded model and its device. */
  private queue: Promise<unknown> = Promise.resolve();

  /** `quantizedRoot`: where 4-bit copies of base models are kept (store/home.ts). */
  constructor(
    private readonly onToken: TokenListener,
    private readonly quantizedRoot: string,
  ) {}

  generate(params: CheckedParams<'playground.generate'>, engine: GenerationEngine): Promise<GenerationSummary> {
    if (this.running.has(params.requestId))
      throw new UserError(`playground request ${params.requestId} is already running`);
    const abort = new AbortController();
    this.running.set(params.requestId, abort);
    const result = this.queue
      .then(() => this.run(params, engine, abort.signal))
      .finally(() => this.running.delete(params.requestId));
    this.queue = result.catch(() => {});
    return result;
  }

  stop(requestId: string): boolean {
    const abort = this.running.get(requestId);
    abort?.abort();
    return abort !== undefined;
  }

  async close(): Promise<void> {
    for (const abort of this.running.values()) abort.abort();
    await this.queue;
    const loaded = await this.loaded?.catch(() => null);
    this.loaded = null;
    await loaded?.model.close();
  }

  private async load(
    modelDir: string,
    adapterDir: string | null,
    engine: GenerationEngine,
    quantize: QuantizeChoice,
  ): Promise<LoadedModel> {
    const wanted = {
      modelDir: path.resolve(modelDir),
      adapterDir: adapterDir && path.resolve(adapterDir),
      engine,
      quantize,
    };
    const previous = await this.loaded?.catch(() => null);
    // A model loaded with an adapter also answers as the base (adapter scale 0): base vs adapter needs no reload.
    // A training run starting or ending changes the threads: the next prompt reloads rather than fight its pool.
    if (
      previous &&
      previous.modelDir === wanted.modelDir &&
      previous.quantize === quantize &&
      sameEngine(previous.engine, engine) &&
      (wanted.adapterDir === null || previous.adapterDir === wanted.adapterDir)
    )
      return previous;
    await previous?.model.close();
    this.loaded = (async () => {
      // A 4-bit copy is quantized on the first prompt that asks for it, then read from the cache.
      const folder = await openBaseModel(wanted.modelDir, quantize, this.quantizedRoot, () => {});
      const adapter = wanted.adapterDir ? loadAdapter(wanted.adapterDir, folder.spec) : null;
      const model = await InferenceModel.load(folder, chooseDevice(engine.device).device, adapter, engine);
      return { ...wanted, model, tokenizer: loadTokenizer(folder.dir) };
    })();
    return this.loaded;
  }

  private async run(
    params: CheckedParams<'playground.generate'>,
    engine: GenerationEngine,
    signal: AbortSignal,
  ): Promise<GenerationSummary> {
    const { model, tokenizer } = await this.load(
      params.modelDir,
      params.adapterDir,
      { ...engine, device: params.device ?? engine.device },
      params.quantize,
    );
    const context = model.folder.spec.maxPositionEmbeddings;
    const promptIds =
      params.input.type === 'prompt'
        ? textPromptIds(tokenizer, params.input.text, context)
        : chatPromptIds(
            model.folder.dir,
            params.adapterDir && path.resolve(params.adapterDir),
            tokenizer,
            params.input.messages,
            true,
            context,
          );
    const run = generate(
      model,
      tokenizer,
      promptIds,
      { ...params.sampling, ignoreEos: false, adapterScale: params.adapterDir ? 1 : 0 },
      signal,
    );
    for (;;) {
      const next = await run.next();
      if (next.done) {
        const r = next.value;
        return {
          requestId: params.requestId,
          text: r.text,
          finishReason: r.finishReason,
          promptTokens: r.promptTokens,
          newTokens: r.ids.length,
          timeToFirstTokenSeconds: r.timeToFirstTokenSeconds,
          tokensPerSecond: r.decodeTokensPerSecond,
          device: model.device,
          threads: sessionThreads(model.session),
        };
      }
      this.onToken(params.requestId, next.value);
    }
  }
}
