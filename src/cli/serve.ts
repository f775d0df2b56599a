/**
 * `nextray serve`: the web app and a REST API over one model (an .onnx file, a checkpoint folder or a run
 * directory), on 127.0.0.1 by default. Another host is refused unless a token is given (then every request — API,
 * model, page — needs it: `Authorization: Bearer <token>`, or a browser's login cookie; see docs/serve.md).
 * SIGTERM/SIGINT stop accepting, let running requests finish, and exit 0.
 */
import type { Command } from 'commander';
import { CliError, parseIntOption } from './common.js';
import { EXIT_USAGE } from '../util/errors.js';
import { buildServer, DEFAULT_BODY_LIMIT, DEFAULT_MAX_PIXELS, isLoopback } from '../serve/server.js';
import { openPredictor } from '../serve/predictor.js';

interface ServeFlags {
  model: string;
  port: number;
  host: string;
  token?: string;
  bodyLimit: number;
  maxPixels: number;
  timeout: number;
  concurrency: number;
  maxQueue: number;
  threads?: number;
  json?: boolean;
  onnxCache: boolean;
}

/** A failed listen as the user's problem: which address, why, and what to do (no stack trace). */
export function listenError(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (code === 'EADDRINUSE') return new CliError(`cannot listen on ${where}: the port is in use by another program`, EXIT_USAGE, 'pick another --port (0 = any free port), or stop the other program');
  if (code === 'EACCES') return new CliError(`cannot listen on ${where}: permission denied (ports below 1024 need privileges)`, EXIT_USAGE, 'use a --port of 1024 or more');
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new CliError(`cannot listen on ${where}: no such address on this machine`, EXIT_USAGE, 'use --host 127.0.0.1, or an address of one of this machine\'s interfaces');
  return err;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the offline web app and a REST API (POST /v1/predict, GET /v1/health, GET /v1/model) for one model')
    .requiredOption('--model <path>', 'an .onnx file from nextray export, a checkpoint folder or a run directory (exported to ONNX in memory, as predict does); the page runs the same ONNX')
    .option('--port <n>', 'TCP port (0 = any free port)', parseIntOption('--port', 0, 65535), 8080)
    .option('--host <addr>', 'address to bind; anything but loopback needs --token', '127.0.0.1')
    .option('--token <secret>', 'require the token on every request: Authorization: Bearer <secret>, or a browser logs in once at the page (default: $NEXTRAY_TOKEN)')
    .option('--body-limit <bytes>', 'largest upload (413 beyond)', parseIntOption('--body-limit', 1024, 2 ** 31), DEFAULT_BODY_LIMIT)
    .option('--max-pixels <n>', 'largest decoded image, width x height (413 beyond)', parseIntOption('--max-pixels', 1, 1e9), DEFAULT_MAX_PIXELS)
    .option('--timeout <ms>', 'whole-request timeout: a body still arriving by then is cut (408); also the longest wait for the model', parseIntOption('--timeout', 100, 600_000), 30_000)
    .option('--concurrency <n>', 'predictions at once', parseIntOption('--concurrency', 1, 64), 2)
    .option('--max-queue <n>', 'requests that may wait for the model (503 beyond)', parseIntOption('--max-queue', 0, 10_000), 32)
    .option('--threads <n>', 'ONNX Runtime threads per inference (default: all cores)', parseIntOption('--threads', 1, 256))
    .option('--json', 'print the address as one JSON line once listening')
    .option('--no-onnx-cache', "don't keep or load ONNX Runtime's optimised graph (default: kept in MODEL.onnx.ort-cache/, else ~/.cache/nextray/onnx)")
    .addHelpText(
      'after',
      `
Examples:
  nextray serve --model demo.onnx
  nextray serve --model demo-output/run      # a run directory: its best checkpoint, exported in memory
  # open http://127.0.0.1:8080/ , or:
  curl -F file=@xray.png http://127.0.0.1:8080/v1/predict
  nextray serve --model model.onnx --host 0.0.0.0 --token "$(openssl rand -hex 16)"
  # then open http://HOST:8080/#token=<token> once (the page logs in; see docs/serve.md)

Exit status: 0 stopped by SIGTERM/SIGINT after finishing running requests, 1 a failure while stopping,
2 usage or a model that cannot be opened, or an address that cannot be listened on (port in use).`,
    )
    .action(async (flags: ServeFlags) => {
      const token = flags.token ?? process.env.NEXTRAY_TOKEN;
      if (!isLoopback(flags.host) && !token) {
        throw new CliError(`refusing to listen on ${flags.host} without --token: anyone on the network could use it (use 127.0.0.1, or give --token)`);
      }
      // A model that cannot be opened is an InferenceError (a NextrayError): the CLI's one error mapper reports it.
      const predictor = await openPredictor(flags.model, { ...(flags.threads ? { threads: flags.threads } : {}), onnxCache: flags.onnxCache });
      const app = await buildServer({
        predictor,
        ...(token ? { token } : {}),
        bodyLimit: flags.bodyLimit,
        maxPixels: flags.maxPixels,
        requestTimeoutMs: flags.timeout,
        concurrency: flags.concurrency,
        maxQueue: flags.maxQueue,
      });
      let address: string;
      try {
        address = await app.listen({ port: flags.port, host: flags.host });
      } catch (err) {
        await app.close().catch(() => undefined);
        await predictor.release();
        throw listenError(err, flags.host, flags.port);
      }
      const port = (app.server.address() as { port: number }).port;
      if (flags.json) process.stdout.write(JSON.stringify({ url: address, port, model: predictor.model.name, sha256: predictor.model.sha256 }) + '\n');
      else process.stderr.write(`nextray serve: ${predictor.model.name} (${predictor.model.arch}) on ${address}/  (Ctrl-C to stop)\n`);
      await new Promise<void>((done) => {
        const stop = (sig: string): void => {
          process.stderr.write(`nextray serve: ${sig}: finishing running requests\n`);
          void app
            .close()
            .then(() => predictor.release())
            .then(done, (err: unknown) => {
              process.stderr.write(`nextray serve: ${(err as Error).message}\n`);
              process.exitCode = 1;
              done();
            });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });
}
