// Progress for people on stderr, so stdout stays the result.
import { quotedValuesWarning } from '../../shared/data.js';
import type { EngineEvent } from '../../shared/training.js';

/** One line per event. */
export function printEvent(event: EngineEvent): void {
  switch (event.type) {
    case 'log':
      process.stderr.write(`${event.message}\n`);
      break;
    case 'device':
      process.stderr.write(`device: ${event.device} (${event.reason}), ${event.threads} CPU threads\n`);
      break;
    case 'quantize':
      if (event.cached && event.done === event.total)
        process.stderr.write('4-bit base weights: reused from the cache\n');
      else if (!event.cached && (event.done === 1 || event.done % 50 === 0 || event.done === event.total))
        process.stderr.write(`quantizing base weights to 4 bits: ${event.done}/${event.total} tensors\n`);
      break;
    case 'compile':
      if (event.done === event.total) process.stderr.write(`compiled ${event.total} graphs\n`);
      break;
    case 'dataset': {
      const quoted = quotedValuesWarning(event.stats);
      if (quoted) process.stderr.write(`warning: ${event.file}: ${quoted}\n`);
      break;
    }
    case 'checkpoint':
      process.stderr.write(`checkpoint of step ${event.step} written\n`);
      break;
    case 'eval':
      process.stderr.write(
        `validation after step ${event.step}: loss ${event.loss.toFixed(4)}, perplexity ${event.perplexity.toFixed(3)} over ${event.tokens} tokens\n`,
      );
      break;
    case 'step': {
      const width = 24;
      const filled = Math.round((event.step / event.totalSteps) * width);
      process.stderr.write(
        `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${event.step}/${event.totalSteps} loss ${event.loss.toFixed(4)} lr ${event.learningRate.toExponential(2)} ${event.tokensPerSecond.toFixed(1)} tok/s\n`,
      );
      break;
    }
  }
}
