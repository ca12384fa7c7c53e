// The playground: a conversation held twice, once with the base model and once with the adapter, each side keeping
// its own replies as context, both streamed token by token. Models with a chat template get the turns as messages;
// without one (the demo) the conversation is plain `User:` / `Assistant:` text, cut where the model starts the
// user's next line.
import type { ChatMessage, GenerationSummary, SamplingSettings, StudioApi, StudioEvent } from '../../../shared/api.js';
import type { AdapterRecord } from '../../../shared/runs.js';
import type { QuantizeChoice } from '../../../shared/training.js';
import { errorMessage } from './client.js';

export interface Answer {
  requestId: string;
  text: string;
  summary: GenerationSummary | null;
  error: string | null;
  running: boolean;
}

/** One exchange: the user's message and each side's reply to it. */
export interface Turn {
  user: string;
  base: Answer;
  tuned: Answer;
}

const DEFAULT_SAMPLING: SamplingSettings = {
  maxNewTokens: 64,
  temperature: 0,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1.1,
  seed: 0,
  stop: [],
};
const NEXT_USER_LINE = '\nUser:';

type Side = 'base' | 'tuned';

let requestCounter = 0;

/** The conversation so far as one side saw it, ending with `message`, in the form `playground.generate` takes. */
export function conversationInput(turns: readonly Turn[], side: Side, message: string, useChatTemplate: boolean) {
  if (useChatTemplate) {
    const messages: ChatMessage[] = turns.flatMap((t) => [
      { role: 'user' as const, content: t.user },
      { role: 'assistant' as const, content: t[side].text.trim() },
    ]);
    return { type: 'messages' as const, messages: [...messages, { role: 'user' as const, content: message }] };
  }
  const history = turns.map((t) => `User: ${t.user}\nAssistant: ${t[side].text.trim()}\n`).join('');
  return { type: 'prompt' as const, text: `${history}User: ${message}\nAssistant:` };
}

export class PlaygroundState {
  message = $state('Can I return a bike I bought last week?');
  useChatTemplate = $state(false);
  /** Whether the chosen adapter was trained through the chat template; null: none chosen, or not recorded. */
  trainedWithChatTemplate = $state<boolean | null>(null);
  sampling = $state<SamplingSettings>({ ...DEFAULT_SAMPLING });
  /** The base weights both sides answer with: as stored, or a 4-bit copy (int4 answers fastest on a CPU). */
  baseWeights = $state<QuantizeChoice>('none');
  turns = $state<Turn[]>([]);

  constructor(private readonly api: StudioApi) {}

  /** Talks to `adapter` as it was trained: its record sets the chat-template choice; without one, plain text. */
  chooseAdapter(adapter: Pick<AdapterRecord, 'chatTemplate'> | null): void {
    const trained = adapter?.chatTemplate ?? null;
    this.trainedWithChatTemplate = trained;
    this.useChatTemplate = trained ?? false;
  }

  /** A one-line warning when the chat-template choice differs from how the adapter was trained. */
  get templateWarning(): string | null {
    const trained = this.trainedWithChatTemplate;
    if (trained === null || trained === this.useChatTemplate) return null;
    return `This adapter was trained ${trained ? 'with' : 'without'} the chat template; replies may be poor this way`;
  }

  get running(): boolean {
    return this.turns.some((t) => t.base.running || t.tuned.running);
  }

  /** Sends the message to both sides, each with its own history. */
  async send(modelDir: string, adapterDir: string): Promise<void> {
    const message = this.message.trim();
    const history = [...this.turns];
    this.turns.push({ user: message, base: this.answer(), tuned: this.answer() });
    const turn = this.turns.at(-1)!;
    this.message = '';
    const unsubscribe = this.api.subscribe((event: StudioEvent) => {
      if (event.kind !== 'playground.token') return;
      if (event.requestId === turn.base.requestId) turn.base.text += event.text;
      if (event.requestId === turn.tuned.requestId) turn.tuned.text += event.text;
    });
    try {
      await Promise.all([
        this.generate(turn.base, history, 'base', message, modelDir, null),
        this.generate(turn.tuned, history, 'tuned', message, modelDir, adapterDir),
      ]);
    } finally {
      unsubscribe();
    }
  }

  async stop(): Promise<void> {
    for (const answer of this.turns.flatMap((t) => [t.base, t.tuned])) {
      if (answer.running)
        await this.api.call('playground.stop', { requestId: answer.requestId }).catch(() => undefined);
    }
  }

  clear(): void {
    this.turns = [];
  }

  private answer(): Answer {
    requestCounter += 1;
    return {
      requestId: `playground-${Date.now()}-${requestCounter}`,
      text: '',
      summary: null,
      error: null,
      running: true,
    };
  }

  private async generate(
    answer: Answer,
    history: Turn[],
    side: Side,
    message: string,
    modelDir: string,
    adapterDir: string | null,
  ): Promise<void> {
    const input = conversationInput(history, side, message, this.useChatTemplate);
    const stop = this.useChatTemplate ? [...this.sampling.stop] : [...this.sampling.stop, NEXT_USER_LINE];
    try {
      const summary = await this.api.call('playground.generate', {
        requestId: answer.requestId,
        modelDir,
        adapterDir,
        input,
        sampling: { ...this.sampling, stop },
        quantize: this.baseWeights,
      });
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
