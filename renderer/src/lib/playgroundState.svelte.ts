// The playground's comparison: one prompt answered by the base model and by the model with an adapter, both
// streamed token by token. The main process runs the two one after the other on the same loaded model.
import type { GenerationSummary, SamplingSettings, StudioApi, StudioEvent } from '../../../shared/api.js';
import { errorMessage } from './client.js';

export interface Answer {
  requestId: string;
  text: string;
  summary: GenerationSummary | null;
  error: string | null;
  running: boolean;
}

const DEFAULT_SAMPLING: SamplingSettings = { maxNewTokens: 64, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.1, seed: 0, stop: [] };

let requestCounter = 0;

export class PlaygroundState {
  prompt = $state('User: Can I return a bike I bought last week?\nAssistant:');
  useChatTemplate = $state(false);
  sampling = $state<SamplingSettings>({ ...DEFAULT_SAMPLING });
  base = $state<Answer | null>(null);
  tuned = $state<Answer | null>(null);

  constructor(private readonly api: StudioApi) {}

  get running(): boolean {
    return (this.base?.running ?? false) || (this.tuned?.running ?? false);
  }

  async compare(modelDir: string, adapterDir: string): Promise<void> {
    const base = this.answer();
    const tuned = this.answer();
    this.base = base;
    this.tuned = tuned;
    const unsubscribe = this.api.subscribe((event: StudioEvent) => {
      if (event.kind !== 'playground.token') return;
      if (event.requestId === this.base?.requestId) this.base.text += event.text;
      if (event.requestId === this.tuned?.requestId) this.tuned.text += event.text;
    });
    try {
      await Promise.all([this.generate('base', modelDir, null), this.generate('tuned', modelDir, adapterDir)]);
    } finally {
      unsubscribe();
    }
  }

  async stop(): Promise<void> {
    for (const answer of [this.base, this.tuned]) {
      if (answer?.running) await this.api.call('playground.stop', { requestId: answer.requestId }).catch(() => undefined);
    }
  }

  private answer(): Answer {
    requestCounter += 1;
    return { requestId: `playground-${Date.now()}-${requestCounter}`, text: '', summary: null, error: null, running: true };
  }

  private async generate(which: 'base' | 'tuned', modelDir: string, adapterDir: string | null): Promise<void> {
    const answer = this[which];
    if (answer === null) return;
    const input = this.useChatTemplate ? { type: 'messages' as const, messages: [{ role: 'user' as const, content: this.prompt }] } : { type: 'prompt' as const, text: this.prompt };
    try {
      const summary = await this.api.call('playground.generate', { requestId: answer.requestId, modelDir, adapterDir, input, sampling: { ...this.sampling, stop: [...this.sampling.stop] } });
      // The final text is authoritative: a token event may have been missed while the socket reconnected.
      answer.text = summary.text;
      answer.summary = summary;
    } catch (err) {
      answer.error = errorMessage(err);
    } finally {
      answer.running = false;
    }
  }
}
