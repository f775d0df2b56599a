/**
 * `nextray serve`'s HTTP face (fastify): the offline web app at `/`, the model file it runs at `/model.onnx`, and a
 * small REST API over one loaded model — POST /v1/predict, GET /v1/health, GET /v1/model — and /model.json, the
 * model's SHA-256 and size, by which the page knows whether its offline copy is current.
 *
 * Every request target is normalised once, before routing and before the token check (url.ts), so both see the same
 * path whatever its encoding; what cannot be normalised gets 400. With a token, every route needs it — the API, the
 * model and the page's own files — as `Authorization: Bearer <token>` or as the session cookie the login page sets
 * (auth.ts); without one, only loopback Host names are answered (a DNS-rebinding page cannot reach the API) and
 * requests that change something must come from this origin.
 *
 * Every input is bounded: body size (413), decoded pixels (413), a whole-request timer that cuts bodies still
 * arriving at the timeout (408, in the access log), and a bounded queue in front of inference (503 + Retry-After
 * when full). Every error is JSON `{"error": ...}`; only a bug (500) logs a stack. Every response carries COOP/COEP
 * so the page is cross-origin isolated (SharedArrayBuffer, hence onnxruntime-web threads) and a CSP that lets it
 * talk to its own origin only.
 *
 * Thin by design: decoding, preprocessing and the session are the inference module's (see predictor.ts).
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import { createReadStream, existsSync } from 'node:fs';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, type Predictor } from './predictor.js';
import { NextrayError } from '../util/errors.js';
import { BoundedQueue, QueueFullError, QueueTimeoutError } from './queue.js';
import { normalizeRequestTarget } from './url.js';
import {
  isAuthorized,
  isLoopbackHostHeader,
  LOGIN_PATH,
  LOGIN_SCRIPT,
  LOGIN_SCRIPT_PATH,
  loginPage,
  sameSecret,
  sessionCookie,
  tokenFromLoginBody,
} from './auth.js';
import { describeModel } from './model-description.js';

export interface ServeOptions {
  predictor: Predictor;
  /** Path of the .onnx file the page downloads; default: the one the predictor runs (predictor.onnx). */
  modelPath?: string;
  /** Token every route needs (Bearer header or the login cookie, see auth.ts); none = open to loopback Host names only. */
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

/**
 * Whether a request that changes something comes from another site's page (which browsers let post to any
 * server). Browsers say so in Sec-Fetch-Site; older ones only send Origin, compared with the Host the request was
 * sent to (or X-Forwarded-Host, set by a reverse proxy that rewrites Host; a page cannot add that header to a
 * cross-origin request without a CORS preflight, which this server never approves). Programs send neither.
 */
function crossSite(headers: FastifyRequest['headers']): string | undefined {
  const site = headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site ${site}`;
  if (site === 'same-origin' || site === 'none') return undefined;
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return `Origin ${origin}`;
  }
  const forwarded = String(headers['x-forwarded-host'] ?? '').split(',')[0]!.trim().toLowerCase();
  return host === (headers.host ?? '').toLowerCase() || (forwarded !== '' && host === forwarded) ? undefined : `Origin ${origin}`;
}

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

/** Marks a raw request whose target could not be normalised (rewriteUrl cannot answer, only rewrite). */
const BAD_TARGET = Symbol('nextray.badTarget');
const BODY_TIMER = Symbol('nextray.bodyTimer');
type RawWithMark = IncomingMessage & { [BAD_TARGET]?: string; [BODY_TIMER]?: NodeJS.Timeout; originalUrl?: string };

/** The path part of a request target, for log lines (the query may carry secrets). */
function pathOnly(url: string | undefined): string {
  return (url ?? '').split('?')[0]!;
}

/** A request target as it may appear in a log line: no query, at most 200 characters, control characters escaped. */
function loggable(url: string | undefined): string {
  return JSON.stringify(pathOnly(url).slice(0, 200)).slice(1, -1);
}

function wantsHtml(req: FastifyRequest): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && /text\/html/.test(req.headers.accept ?? '');
}

/** Builds the server (not listening yet: call `.listen`, or `.inject` in tests). */
export async function buildServer(opts: ServeOptions): Promise<FastifyInstance> {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const queue = new BoundedQueue(opts.concurrency ?? 2, opts.maxQueue ?? 32, timeoutMs);
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const appDir = opts.appDir ?? defaultAppDir();
  const { predictor, token } = opts;

  const app = Fastify({
    logger: false,
    bodyLimit,
    // Node's own limits: headers must arrive within the timeout (checked every second, not every 30 s); a body is
    // the request timer's (below), and Node's request timeout is only a backstop behind it, after the timer's 408
    // and its grace period for the client to close (Node would reset the connection and log the request twice).
    requestTimeout: timeoutMs + 15_000,
    connectionTimeout: timeoutMs + 5_000,
    http: { headersTimeout: timeoutMs, requestTimeout: timeoutMs + 15_000, connectionsCheckingInterval: Math.min(1000, timeoutMs) },
    return503OnClosing: true,
    rewriteUrl(req) {
      const n = normalizeRequestTarget(req.url ?? '');
      if (n.ok) return n.target;
      (req as RawWithMark)[BAD_TARGET] = n.reason;
      return '/';
    },
    // Requests Node refuses before fastify sees them (headers too slow or too large, garbage): answered as Node
    // would, and logged like any other request.
    clientErrorHandler(err: Error & { code?: string }, socket: Socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify({ error: status === 408 ? `request timeout: the request did not arrive within ${timeoutMs} ms` : `bad request (${err.code ?? 'client error'})` });
      log(`${new Date().toISOString()} ${socket.remoteAddress ?? '-'} - - ${status} (${err.code ?? 'client error'})`);
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy();
    },
  });

  app.addHook('onRequest', async (req, reply) => {
    (req as FastifyRequest & { t0?: bigint }).t0 = process.hrtime.bigint();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    armRequestTimer(req, reply);
    const bad = (req.raw as RawWithMark)[BAD_TARGET];
    if (bad !== undefined) throw new HttpError(400, `bad request target: ${bad}`);
    const path = pathOnly(req.url);
    if (token === undefined) {
      // Open only to this machine: a page on another site that rebinds its DNS name to 127.0.0.1 sends its own name.
      if (!isLoopbackHostHeader(req.headers.host)) throw new HttpError(403, `Host ${JSON.stringify(req.headers.host ?? '')} refused: without --token only localhost, 127.0.0.1 and [::1] are served`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      // Another site's page may post to this server (browsers allow simple cross-origin POSTs): refuse what it sends.
      const foreign = crossSite(req.headers);
      if (foreign !== undefined) throw new HttpError(403, `cross-origin request refused (${foreign})`);
    }
    if (token === undefined) return;
    if (path === LOGIN_PATH || path === LOGIN_SCRIPT_PATH) return;
    if (isAuthorized(req.headers, token)) return;
    reply.header('www-authenticate', 'Bearer');
    if (wantsHtml(req)) {
      // A browser that has not logged in: the login page instead of the app.
      await reply.code(401).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(loginPage());
      return reply;
    }
    throw new HttpError(401, 'missing or wrong token: send Authorization: Bearer <token>, or log in at /auth/login');
  });
  app.addHook('onResponse', async (req, reply) => {
    const t0 = (req as FastifyRequest & { t0?: bigint }).t0;
    const ms = t0 === undefined ? 0 : Number(process.hrtime.bigint() - t0) / 1e6;
    const raw = req.raw as RawWithMark;
    if (raw.complete !== false) clearTimeout(raw[BODY_TIMER]);
    const shown = raw[BAD_TARGET] !== undefined ? loggable(raw.originalUrl) : pathOnly(req.url);
    log(`${new Date().toISOString()} ${req.ip} ${req.method} ${shown} ${reply.statusCode} ${ms.toFixed(1)}ms`);
  });

  /**
   * The whole-request timer: a body still arriving `timeoutMs` after the request began is cut — 408 (logged like
   * any answer), then the connection closes. Node's own requestTimeout is checked only every few seconds and its
   * answer bypasses the access log; an idle timeout never fires for a client sending one byte a second.
   */
  function armRequestTimer(req: FastifyRequest, reply: FastifyReply): void {
    const raw = req.raw as RawWithMark;
    if (raw.complete !== false) return; // whole request already here (inject)
    const timer = setTimeout(() => {
      if (raw.complete !== false) return;
      const socket = raw.socket as Socket | null;
      // Half-close after the answer (FIN), keep reading what the client still sends, and let it close its side; a
      // client that keeps sending anyway is dropped after a grace period. Closing the socket at once (what Node does
      // for 'Connection: close') makes the kernel answer the client's next bytes with a reset, and a client that
      // has not read the 408 yet then loses it (measured in the soak: EPIPE on 2 of 72 slow clients).
      const close = (): void => {
        if (!socket || socket.destroyed) return;
        socket.end();
        socket.once('end', () => socket.destroy());
        setTimeout(() => socket.destroy(), 10_000).unref();
      };
      if (reply.sent) return close();
      reply.raw.once('finish', close);
      void reply.code(408).send({ error: `request timeout: the body did not arrive within ${timeoutMs} ms` });
    }, timeoutMs);
    timer.unref();
    raw[BODY_TIMER] = timer;
    raw.once('end', () => clearTimeout(timer));
    raw.once('close', () => clearTimeout(timer));
  }

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
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `not found: ${req.method} ${pathOnly(req.url)}` }));

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

  if (token !== undefined) {
    app.get(LOGIN_PATH, async (_req, reply) => reply.header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(loginPage()));
    app.get(LOGIN_SCRIPT_PATH, async (_req, reply) => reply.header('content-type', 'text/javascript; charset=utf-8').send(LOGIN_SCRIPT));
    app.post(LOGIN_PATH, { bodyLimit: 4096 }, async (req, reply) => {
      const given = tokenFromLoginBody(req.body);
      const json = !/text\/html/.test(req.headers.accept ?? '');
      if (given === undefined || !sameSecret(given, token)) {
        if (json) throw new HttpError(401, 'wrong token');
        return reply.code(401).header('content-type', 'text/html; charset=utf-8').send(loginPage('Wrong token.'));
      }
      reply.header('set-cookie', sessionCookie(token)).header('cache-control', 'no-store');
      return json ? reply.code(204).send() : reply.code(303).header('location', '/').send();
    });
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
      file = await multipartFile(req);
    } else {
      if (!Buffer.isBuffer(req.body)) throw new HttpError(400, "no file: send the image as the body or as multipart field 'file'");
      file = req.body;
    }
    if (file.byteLength === 0) throw new InputError('empty', 'empty file (0 bytes)');
    const prediction = await queue.run(() => predictor.predict(file, { maxPixels }));
    return { ...prediction, model: { name: predictor.model.name, sha256: predictor.model.sha256 } };
  });

  /** The upload in the multipart field 'file'; a body that is not well-formed multipart is the client's fault (400). */
  async function multipartFile(req: FastifyRequest): Promise<Buffer> {
    try {
      const part = await req.file();
      if (!part) throw new HttpError(400, "multipart request without a file: send the image in the field 'file'");
      if (part.fieldname !== 'file') throw new HttpError(400, `multipart field '${part.fieldname}': send the image in the field 'file'`);
      return await part.toBuffer();
    } catch (err) {
      if (err instanceof NextrayError) throw err;
      const e = err as Error & { statusCode?: number };
      if (e.statusCode === 413) throw e;
      throw new HttpError(400, `malformed multipart body: ${e.message}`);
    }
  }

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
