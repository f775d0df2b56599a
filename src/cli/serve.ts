/**
 * `nextray serve`: the web app and a REST API over one model (an .onnx file, a checkpoint folder or a run
 * directory), on 127.0.0.1 by default. Another host is refused unless a token is given (then every API call needs
 * `Authorization: Bearer <token>`). SIGTERM/SIGINT stop accepting, let running requests finish, and exit 0.
 */
import type { Command } from 'commander';
import { CliError, parseIntOption } from './common.js';
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

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the offline web app and a REST API (POST /v1/predict, GET /v1/health, GET /v1/model) for one model')
    .requiredOption('--model <path>', 'an .onnx file from nextray export, a checkpoint folder or a run directory (exported to ONNX in memory, as predict does); the page runs the same ONNX')
    .option('--port <n>', 'TCP port (0 = any free port)', parseIntOption('--port', 0, 65535), 8080)
    .option('--host <addr>', 'address to bind; anything but loopback needs --token', '127.0.0.1')
    .option('--token <secret>', 'require Authorization: Bearer <secret> on every API call (default: $NEXTRAY_TOKEN)')
    .option('--body-limit <bytes>', 'largest upload (413 beyond)', parseIntOption('--body-limit', 1024, 2 ** 31), DEFAULT_BODY_LIMIT)
    .option('--max-pixels <n>', 'largest decoded image, width x height (413 beyond)', parseIntOption('--max-pixels', 1, 1e9), DEFAULT_MAX_PIXELS)
    .option('--timeout <ms>', 'request timeout, also the longest wait for the model', parseIntOption('--timeout', 100, 600_000), 30_000)
    .option('--concurrency <n>', 'predictions at once', parseIntOption('--concurrency', 1, 64), 2)
    .option('--max-queue <n>', 'requests that may wait for the model (503 beyond)', parseIntOption('--max-queue', 0, 10_000), 32)
    .option('--threads <n>', 'ONNX Runtime threads per inference (default: all cores)', parseIntOption('--threads', 1, 256))
    .option('--json', 'print the address as one JSON line once listening')
    .option('--no-onnx-cache', "don't keep or load ONNX Runtime's optimised graph (default: kept in MODEL.onnx.ort-cache/, else ~/.cache/nextray/onnx)")
    .addHelpText(
      'after',
      `
Example:
  nextray serve --model runs/demo/model.onnx
  nextray serve --model runs/demo            # a run directory: its best checkpoint, exported in memory
  # open http://127.0.0.1:8080/ , or:
  curl -F file=@xray.png http://127.0.0.1:8080/v1/predict
  nextray serve --model model.onnx --host 0.0.0.0 --token "$(openssl rand -hex 16)"`,
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
      const address = await app.listen({ port: flags.port, host: flags.host });
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
