/**
 * HTTP over a plain TCP socket, for tests that must send exactly the bytes they mean: fastify's inject and fetch
 * both normalise the request target (percent-escapes, dot segments, absolute form), which is what a server's own
 * checks have to survive.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** True when the server closed the connection (FIN or reset) before the client did. */
  closedByServer: boolean;
}

/** Splits the first HTTP response in `data`; undefined until its headers and (Content-Length) body are all there. */
export function parseResponse(data: Buffer, noBody = false): { status: number; headers: Record<string, string>; body: Buffer } | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = data.subarray(end + 4);
  // An answer to HEAD has a Content-Length but no body.
  if (noBody) body = Buffer.alloc(0);
  else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (body.length < n) return undefined;
    body = body.subarray(0, n);
  } else if (headers['transfer-encoding'] === 'chunked') {
    const out: Buffer[] = [];
    let off = 0;
    for (;;) {
      const nl = body.indexOf('\r\n', off);
      if (nl < 0) return undefined;
      const size = parseInt(body.subarray(off, nl).toString('latin1'), 16);
      if (size === 0) break;
      if (body.length < nl + 2 + size + 2) return undefined;
      out.push(body.subarray(nl + 2, nl + 2 + size));
      off = nl + 2 + size + 2;
    }
    body = Buffer.concat(out);
  }
  return { status: Number(m[1]), headers, body };
}

/**
 * Sends `request` (the whole request, bytes as given) to 127.0.0.1:`port` and resolves with the first response.
 * `then` may keep writing after the first bytes (slow clients); it gets the socket and a `stopped()` that turns true
 * once the server has answered or closed.
 */
export function rawRequest(
  port: number,
  request: string | Buffer,
  opts: { timeoutMs?: number; then?: (socket: Socket, stopped: () => boolean) => void | Promise<void> } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const head = (typeof request === 'string' ? request : request.toString('latin1', 0, 5)).startsWith('HEAD ');
    const chunks: Buffer[] = [];
    let done = false;
    let closedByServer = false;
    const timer = setTimeout(() => finish(new Error(`no response within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const parsed = chunks.length ? parseResponse(Buffer.concat(chunks), head) : undefined;
      socket.destroy();
      if (parsed) resolve({ ...parsed, closedByServer });
      else reject(err ?? new Error(`connection closed without a complete response (${Buffer.concat(chunks).length} bytes)`));
    };
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // Resolve at once unless the caller waits to see the connection close.
      if (parseResponse(Buffer.concat(chunks), head) && !opts.then) finish();
    });
    socket.on('end', () => {
      closedByServer = true;
      finish();
    });
    socket.on('error', (e) => {
      closedByServer = true;
      finish(e);
    });
    socket.on('connect', () => {
      socket.write(request);
      if (opts.then) void Promise.resolve(opts.then(socket, () => done || closedByServer)).catch(() => undefined);
    });
  });
}

/** A plain request: `METHOD target HTTP/1.1`, Host and the given headers, optional body (Content-Length set). */
export function httpRequest(method: string, target: string, port: number, headers: Record<string, string> = {}, body?: Buffer | string): Buffer {
  const b = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const h: Record<string, string> = { host: `127.0.0.1:${port}`, connection: 'close', ...headers };
  if (body !== undefined) h['content-length'] = String(b.length);
  const head = `${method} ${target} HTTP/1.1\r\n` + Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), b]);
}
