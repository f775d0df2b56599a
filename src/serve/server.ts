/**
 * `nextray serve`'s HTTP face (fastify): the offline web app at `/`, the model file it runs at `/model.onnx`, and a
 * small REST API over one loaded model — POST /v1/predict, GET /v1/health, GET /v1/model — and /model.json, the
 * model's SHA-256 and size, by which the page knows whether its offline copy is current.
 *
 * Every input is bounded: body size (413), decoded pixels (413), a request timeout, and a bounded queue in front of
 * inference (503 + Retry-After when full). Every error is JSON `{"error": ...}`. With a token, every API call and the
 * model file need `Authorization: Bearer <token>` (401 otherwise); the page's own files stay public so the page can
 * load and ask for it. Every response carries COOP/COEP so the page is cross-origin isolated (SharedArrayBuffer,
 * hence onnxruntime-web threads) and a CSP that lets it talk to its own origin only.
 *
 * Thin by design: decoding, preprocessing and the session are the inference module's (see predictor.ts).
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, type Predictor } from './predictor.js';
import { NextrayError } from '../util/errors.js';
import { BoundedQueue, QueueFullError, QueueTimeoutError } from './queue.js';
import { describeModel } from './model-description.js';

export interface ServeOptions {
  predictor: Predictor;
  /** Path of the .onnx file the page downloads; default: the one the predictor runs (predictor.onnx). */
  modelPath?: string;
  /** Bearer token required on /v1/* and /model.onnx; none = open (loopback only, see isLoopback). */
  token?: string;
  /** Largest request body in bytes (default 32 MiB). */
  bodyLimit?: number;
  /** Largest decoded image in pixels (default 50 Mpx). */
  maxPixels?: number;
  /** Whole-request timeout in ms (default 30 s). */
  requestTimeoutMs?: number;
  /** Predictions running at once (default 2: decoding of one overlaps inference of another). */
  concurrency?: number;
  /** Requests allowed to wait for a slot (default 32); more get 503. */
  maxQueue?: number;
  /** Folder of the built web app (default: the package's dist/app). */
  appDir?: string;
  /** One line per request goes here (default: stderr). */
  log?: (line: string) => void;
}

export const DEFAULT_BODY_LIMIT = 32 * 1024 * 1024;
export const DEFAULT_MAX_PIXELS = 50_000_000;

/** Where `npm run build` puts the web app, relative to this file (dist/src/serve -> dist/app). */
export function defaultAppDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'app');
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export const SECURITY_HEADERS: Record<string, string> = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // The page may load and connect to its own origin only: no CDN, web font or analytics can sneak in.
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; img-src 'self' data: blob:; " +
    "style-src 'self' 'unsafe-inline'; connect-src 'self' blob: data:; frame-ancestors 'none'",
};

/** A request the API refuses (bad multipart, missing token): answered with `statusCode` and the message. */
export class HttpError extends NextrayError {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message, { code: 'ERR_HTTP' });
    this.name = 'HttpError';
  }
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  // Compare digests so the comparison takes the same time whatever the length or content of the guess.
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/** Builds the server (not listening yet: call `.listen`, or `.inject` in tests). */
export async function buildServer(opts: ServeOptions): Promise<FastifyInstance> {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const queue = new BoundedQueue(opts.concurrency ?? 2, opts.maxQueue ?? 32, opts.requestTimeoutMs ?? 30_000);
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const appDir = opts.appDir ?? defaultAppDir();
  const { predictor } = opts;

  const app = Fastify({
    logger: false,
    bodyLimit,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    connectionTimeout: (opts.requestTimeoutMs ?? 30_000) + 5_000,
    return503OnClosing: true,
  });

  app.addHook('onRequest', async (req, reply) => {
    (req as FastifyRequest & { t0?: bigint }).t0 = process.hrtime.bigint();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    if (opts.token !== undefined) {
      const path = req.url.split('?')[0]!;
      if ((path.startsWith('/v1/') || path === '/model.onnx' || path === '/model.json') && !tokenMatches(req.headers.authorization, opts.token)) {
        reply.header('www-authenticate', 'Bearer');
        throw new HttpError(401, 'missing or wrong token: send Authorization: Bearer <token>');
      }
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    const t0 = (req as FastifyRequest & { t0?: bigint }).t0;
    const ms = t0 === undefined ? 0 : Number(process.hrtime.bigint() - t0) / 1e6;
    log(`${new Date().toISOString()} ${req.ip} ${req.method} ${req.url.split('?')[0]} ${reply.statusCode} ${ms.toFixed(1)}ms`);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply: FastifyReply) => {
    if (err instanceof InputError) return reply.code(err.statusCode).send({ error: err.message });
    if (err instanceof QueueFullError || err instanceof QueueTimeoutError) {
      return reply.code(err.statusCode).header('retry-after', '1').send({ error: err.message });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    let message = err.message;
    if (status === 413) message = `request body too large: the limit is ${bodyLimit} bytes`;
    if (status >= 500) log(`error: ${err.stack ?? err.message}`);
    return reply.code(status).send({ error: status >= 500 && !(err instanceof HttpError) ? 'internal error' : message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `not found: ${req.method} ${req.url.split('?')[0]}` }));

  // Raw uploads: any content type other than multipart is the file itself.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
  await app.register(fastifyMultipart, { limits: { fileSize: bodyLimit, files: 1, fields: 0, parts: 2 } });

  if (existsSync(join(appDir, 'index.html'))) {
    await app.register(fastifyStatic, { root: appDir, prefix: '/', index: ['index.html'], wildcard: false });
  } else {
    app.get('/', async (_req, reply) =>
      reply.code(503).send({ error: `the web app is not built (${appDir}/index.html missing); run npm run build` }),
    );
  }

  const onnx = opts.modelPath !== undefined ? { path: opts.modelPath } : predictor.onnx;
  app.get('/model.onnx', async (_req, reply) =>
    reply
      .header('content-type', 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .send('bytes' in onnx ? Buffer.from(onnx.bytes.buffer, onnx.bytes.byteOffset, onnx.bytes.byteLength) : createReadStream(onnx.path)),
  );
  // What the page stores for offline use is checked against this on every online visit (app/src/store.ts).
  app.get('/model.json', async (_req, reply) =>
    reply.header('cache-control', 'no-store').send(await describeModel(onnx, appDir, predictor.model.name)),
  );
  app.get('/v1/health', async () => ({ status: 'ok', model: predictor.model.name, queue: queue.stats }));
  app.get('/v1/model', async () => predictor.model);

  app.post('/v1/predict', async (req) => {
    let file: Uint8Array;
    if (req.isMultipart()) {
      const part = await req.file();
      if (!part) throw new HttpError(400, "multipart request without a file: send the image in the field 'file'");
      if (part.fieldname !== 'file') throw new HttpError(400, `multipart field '${part.fieldname}': send the image in the field 'file'`);
      file = await part.toBuffer();
    } else {
      if (!Buffer.isBuffer(req.body)) throw new HttpError(400, "no file: send the image as the body or as multipart field 'file'");
      file = req.body;
    }
    if (file.byteLength === 0) throw new InputError('empty', 'empty file (0 bytes)');
    const prediction = await queue.run(() => predictor.predict(file, { maxPixels }));
    return { ...prediction, model: { name: predictor.model.name, sha256: predictor.model.sha256 } };
  });

  // Draining: answers still in flight end their connection, so a keep-alive client cannot hold the exit back
  // for the keep-alive timeout (fastify's is 72 s).
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_req, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onClose', async () => {
    await queue.idle();
  });
  return app;
}
