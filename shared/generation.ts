// What a generation request holds besides its model: chat messages, and the sampling settings with their defaults,
// bounds, CLI flags and GUI labels. `peft-studio generate`/`chat` start from SAMPLING_DEFAULTS, set the flags given
// and check with samplingSchema, as the studio API checks playground.generate. Pure TypeScript plus zod.
import { z } from 'zod';
import { fieldProblems, type FieldProblem } from './errors.js';
import { MAX_SEED, numberSchema, oneOf, type FieldNames, type NumberBounds } from './trainJob.js';

/**
 * The most characters a playground prompt (or a conversation's messages together) may hold: over 250k tokens of
 * English, more than any model's context on this engine, and tokenized in about 2 s.
 */
export const MAX_PROMPT_CHARS = 2 ** 20;

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export const chatMessageSchema = z.strictObject({
  role: oneOf(CHAT_ROLES),
  content: z.string({ error: 'must be text' }).max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`),
});
/** One turn of a conversation: a dataset's chat row, a playground message, a chat template's input. */
export type ChatMessage = z.output<typeof chatMessageSchema>;

export const chatMessagesSchema = z
  .array(chatMessageSchema)
  .min(1, 'must hold at least one message')
  .refine(
    (messages) => messages.reduce((chars, m) => chars + m.content.length, 0) <= MAX_PROMPT_CHARS,
    `the messages hold more than ${MAX_PROMPT_CHARS} characters together`,
  );

/** The sampling settings of one answer. */
export interface SamplingSettings {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** 0 = all tokens. */
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
  /** The answer ends before the first of these strings. */
  stop: string[];
}

export const SAMPLING_DEFAULTS: SamplingSettings = {
  maxNewTokens: 128, // a few sentences: enough to judge an answer, quick on a CPU
  temperature: 0, // greedy: the same prompt gives the same answer, so base and adapter compare fairly
  topK: 0, // no cut: temperature and top-p decide when sampling
  topP: 1,
  repetitionPenalty: 1, // off: answers as the model's own distribution has them
  seed: 0,
  stop: [],
};

export const SAMPLING_BOUNDS = {
  // New tokens are decoded one session call each: 4096 is minutes on a CPU already.
  maxNewTokens: { integer: true, min: 1, max: 4096 },
  temperature: { integer: false, min: 0 },
  topK: { integer: true, min: 0 },
  // A share of the probability mass: 0 would keep no token.
  topP: { integer: false, above: 0, max: 1 },
  // Logits are divided or multiplied by it: 0 or less has no meaning.
  repetitionPenalty: { integer: false, above: 0 },
  seed: { integer: true, min: 0, max: MAX_SEED },
} as const satisfies Record<string, NumberBounds>;

export const samplingSchema = z.strictObject({
  maxNewTokens: numberSchema(SAMPLING_BOUNDS.maxNewTokens).default(SAMPLING_DEFAULTS.maxNewTokens),
  temperature: numberSchema(SAMPLING_BOUNDS.temperature).default(SAMPLING_DEFAULTS.temperature),
  topK: numberSchema(SAMPLING_BOUNDS.topK).default(SAMPLING_DEFAULTS.topK),
  topP: numberSchema(SAMPLING_BOUNDS.topP).default(SAMPLING_DEFAULTS.topP),
  repetitionPenalty: numberSchema(SAMPLING_BOUNDS.repetitionPenalty).default(SAMPLING_DEFAULTS.repetitionPenalty),
  seed: numberSchema(SAMPLING_BOUNDS.seed).default(SAMPLING_DEFAULTS.seed),
  stop: z
    .array(z.string().min(1, 'must not be empty').max(1000, 'must be at most 1000 characters'))
    .max(64, 'at most 64 stop strings')
    .default(() => [...SAMPLING_DEFAULTS.stop]),
}) satisfies z.ZodType<SamplingSettings, unknown>;

/** The fields of a generation request, by path: their CLI flags and GUI labels. */
export const GENERATION_FIELDS = {
  maxNewTokens: { flag: '--max-new-tokens', label: 'Max new tokens' },
  temperature: { flag: '--temperature', label: 'Temperature' },
  topK: { flag: '--top-k', label: 'Top-k' },
  topP: { flag: '--top-p', label: 'Top-p' },
  repetitionPenalty: { flag: '--repetition-penalty', label: 'Repetition penalty' },
  seed: { flag: '--seed', label: 'Seed' },
  stop: { flag: '--stop', label: 'Stop strings' },
  // The CLI's choice for a model without a chat template; the studio always allows the plain text.
  plainChat: { flag: '--plain-chat', label: 'Plain chat' },
} as const satisfies Record<string, FieldNames>;

/** Everything wrong with sampling settings, one problem per field; empty when they may be used. */
export function samplingProblems(settings: unknown): FieldProblem[] {
  const checked = samplingSchema.safeParse(settings);
  return checked.success ? [] : fieldProblems(checked.error.issues, Object.keys(GENERATION_FIELDS));
}
