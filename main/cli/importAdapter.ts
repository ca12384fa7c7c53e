// peft-studio import: a PEFT adapter trained elsewhere (a folder, a trainer's output folder, or a Hub repo) into the
// studio's library, optionally as the adapter of the run that was handed over (peft-studio handoff).
import fs from 'node:fs';
import path from 'node:path';
import { shellLine } from '../../shared/trainJob.js';
import { hubAccessFromEnv } from '../hub/access.js';
import type { DownloadProgress } from '../hub/download.js';
import { formatBytes } from '../hub/errors.js';
import { importAdapter } from '../studio/services/importAdapter.js';
import { defaultStudioHome } from '../store/home.js';
import { Store } from '../store/store.js';
import { json, positiveInt, str, UsageError, type Command } from './options.js';
import { configuredHome } from './runs.js';

/** A line per file done on stderr. */
function printDownload(p: DownloadProgress): void {
  if (p.fileBytes === p.fileSize)
    process.stderr.write(`fetched ${p.file} ${formatBytes(p.fileSize)} (${p.index}/${p.count})\n`);
}

export const IMPORT_COMMANDS: Record<string, Command> = {
  import: {
    summary: "bring a PEFT adapter trained elsewhere (a folder or a Hub repo) into the library, optionally as a run's",
    usage: 'peft-studio import ADAPTER_DIR|ORG/NAME[@REVISION] [--run ID] [--name NAME] [--home DIR] [--json]',
    positionals: true,
    options: { run: str, name: str, home: str, json },
    async run(values, positionals) {
      if (positionals.length !== 1) throw new UsageError('import takes one adapter folder or Hub repo id');
      const given = positionals[0];
      // A folder that exists wins over a Hub id of the same spelling (org/name is also a relative path).
      const source = fs.existsSync(given) ? path.resolve(given) : given;
      const runId = values.run === undefined ? null : positiveInt(values, 'run', 1);
      const asJson = values.json === true;
      const store = Store.open(configuredHome(values) ?? defaultStudioHome());
      try {
        const { adapter, checkpoint } = await importAdapter(
          store,
          () => hubAccessFromEnv(),
          { source, runId, name: values.name as string | undefined },
          asJson ? () => {} : printDownload,
        );
        if (asJson) return void process.stdout.write(`${JSON.stringify(adapter)}\n`);
        if (checkpoint) process.stderr.write(`no adapter at the top of ${source}: took its newest, ${checkpoint}\n`);
        const base = store.model(adapter.baseModelId);
        const linked = adapter.runId === null ? '' : ` as run ${adapter.runId}'s adapter`;
        process.stdout.write(
          `imported adapter ${adapter.id}${linked} into ${adapter.folder} (${adapter.method === 'lora' ? 'LoRA' : 'prompt tuning'}, base ${base?.location ?? adapter.baseModelId})\n` +
            `try it: ${shellLine(['peft-studio', 'chat', '--model', base?.folder ?? 'MODEL_DIR', '--adapter', adapter.folder])}\n`,
        );
      } finally {
        store.close();
      }
    },
  },
};
