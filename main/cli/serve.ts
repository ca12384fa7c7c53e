// peft-studio serve: the studio in a browser. The first stdout line is the URL to open (with its access token).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStudio } from '../studio/studioHost.js';
import { isLoopbackHost, startServer } from '../server/serve.js';
import { serveToken, TOKEN_PATTERN } from '../server/serveToken.js';
import { defaultStudioHome } from '../store/home.js';
import { number, str, UsageError, type Command } from './options.js';

const BUILT_RENDERER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../renderer');

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.once('SIGINT', () => process.exit(130));
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

export const SERVE_COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'the studio in a browser: the UI and its API over HTTP + WebSocket, behind an access token',
    usage:
      'peft-studio serve [--host 127.0.0.1] [--port 7860] [--home DIR] [--token TOKEN] [--allow-remote] [--renderer DIR]',
    options: {
      host: str,
      port: str,
      home: str,
      token: str,
      'allow-remote': { type: 'boolean', default: false },
      renderer: str,
    },
    async run(values) {
      const host = (values.host as string | undefined) ?? '127.0.0.1';
      const port = number(
        values,
        'port',
        7860,
        (n) => Number.isInteger(n) && n >= 0 && n <= 65535,
        'a port number 0-65535 (0 picks a free one)',
      );
      if (!isLoopbackHost(host) && values['allow-remote'] !== true) {
        throw new UsageError(
          `--host ${host} is not a loopback address: other machines could reach the studio (its files, runs and Hub token); add --allow-remote to bind it anyway`,
        );
      }
      const chosen = (values.token as string | undefined) ?? null;
      if (chosen !== null && !TOKEN_PATTERN.test(chosen))
        throw new UsageError('--token: expected 24 to 128 letters, digits, - or _');
      const home = (values.home as string | undefined) ?? defaultStudioHome();
      const api = await startStudio({ home });
      const server = await startServer({
        host,
        port,
        staticDir: (values.renderer as string | undefined) ?? BUILT_RENDERER,
        api,
        token: serveToken(home, chosen),
      }).catch(async (err: NodeJS.ErrnoException) => {
        await api.close();
        if (err.code === 'EADDRINUSE')
          throw new UsageError(`--port ${port} is in use; pick another, or 0 for any free port`);
        throw err;
      });
      process.stdout.write(`${server.url}\n`);
      if (!isLoopbackHost(host))
        process.stderr.write(
          `warning: serving on ${host}, reachable from other machines; anyone with the URL's token controls the studio\n`,
        );
      process.stderr.write('open the URL above in a browser; Ctrl-C stops (running runs pause at a checkpoint)\n');
      const died = await Promise.race([stopSignal().then(() => null), api.stopped]);
      if (died) {
        await server.close();
        throw new Error(`the studio stopped: ${died.message}`);
      }
      process.stderr.write('stopping: pausing running runs after their current step (Ctrl-C again to stop now)\n');
      await server.close();
      await api.close();
    },
  },
};
