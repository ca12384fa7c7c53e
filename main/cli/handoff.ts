// `peft-studio handoff RUN_ID|--recipe FILE --out DIR`: a run or a recipe (a TrainJob JSON file) written out as a
// Hugging Face TRL + accelerate project (main/handoff/), with what TRL does differently said on stderr.
import fs from 'node:fs';
import { UserError } from '../../shared/errors.js';
import { jobProblems, trainJobSchema } from '../../shared/trainJob.js';
import {
  recipeHandoffSource,
  runHandoffSource,
  writeHandoff,
  type HandoffResult,
  type HandoffSource,
} from '../handoff/handoff.js';
import { defaultStudioHome } from '../store/home.js';
import { Store } from '../store/store.js';
import { json, str, UsageError, type Command } from './options.js';
import { configuredHome } from './runs.js';

function recipeSource(file: string): HandoffSource {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: ${code ? `cannot read (${code})` : `not JSON (${(err as Error).message})`}`);
  }
  const problem = jobProblems(value)[0];
  if (problem) throw new UserError(`${file}: ${problem.field}: ${problem.message}`);
  return recipeHandoffSource(trainJobSchema.parse(value));
}

function report(result: HandoffResult, runId: number | null): string {
  const lines = [`wrote ${result.folder} (${result.files.length} files): see its README.md`];
  for (const caveat of result.caveats) lines.push(`note: ${caveat}`);
  lines.push(
    `bring the result back with: peft-studio import ${result.folder}/output${runId === null ? '' : ` --run ${runId}`}`,
  );
  return `${lines.join('\n')}\n`;
}

export const HANDOFF_COMMANDS: Record<string, Command> = {
  handoff: {
    summary: 'write a run or a recipe as a Hugging Face TRL + accelerate project, to train it elsewhere',
    usage: 'peft-studio handoff RUN_ID|--recipe FILE --out DIR [--home DIR] [--json]',
    positionals: true,
    options: { out: str, recipe: str, home: str, json },
    async run(values, positionals) {
      const out = values.out;
      if (typeof out !== 'string' || out === '') throw new UsageError('--out DIR is required');
      const recipe = typeof values.recipe === 'string' ? values.recipe : null;
      if ((recipe === null) === (positionals.length === 0) || positionals.length > 1)
        throw new UsageError('give one run id or --recipe FILE');
      let source: HandoffSource;
      if (recipe !== null) source = recipeSource(recipe);
      else {
        const id = Number(positionals[0]);
        if (!Number.isInteger(id) || id <= 0)
          throw new UsageError(`${positionals[0]}: a run id is a positive whole number`);
        const store = Store.open(configuredHome(values) ?? defaultStudioHome());
        try {
          source = runHandoffSource(store, id);
        } finally {
          store.close();
        }
      }
      const result = await writeHandoff(source, out);
      if (values.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(report(result, source.run?.id ?? null));
    },
  },
};
