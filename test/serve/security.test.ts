/**
 * The server's token cannot be walked around, over raw sockets (fastify's inject and fetch normalise the target
 * first, hiding the very differences an attacker uses): percent-encoded, dot-segment, double-slash and absolute-form
 * targets reach the same routes as their plain spelling — behind the token like them — or get 400; every route is
 * behind the token, the page and its files included; a browser logs in once and gets an HttpOnly SameSite=Strict
 * cookie; without a token only loopback Host names are served. Also: slow bodies cut at the timeout with a 408 in
 * the access log, and malformed multipart bodies answered 400 with no stack trace.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer, type ServeOptions } from '../../src/serve/server.js';
import type { Predictor } from '../../src/serve/predictor.js';
import { normalizeRequestTarget } from '../../src/serve/url.js';
import { sessionValue } from '../../src/serve/auth.js';
import { tempDir } from '../helpers/paths.js';
import { httpRequest, rawRequest } from '../helpers/raw-http.js';

const TOKEN = 's3cret-token';
const MODEL_BYTES = new Uint8Array([0x08, 0x07, 0x12, 0x03, 0x6f, 0x6e, 0x78]);
const tmp = tempDir('nextray-sec-');
let appDir: string;
const servers: FastifyInstance[] = [];
let predictions = 0;

/** A predictor that answers at once (what is tested here is the HTTP face, not the model). */
const predictor: Predictor = {
  model: { name: 'm', sha256: 'x', arch: 'fake', preprocessing: {} as never, threshold: 0.5, engine: 'fake', outputs: [], metadata: {}, inputSize: 8 },
  onnx: { bytes: MODEL_BYTES },
  predict: async () => {
    predictions++;
    return { probability: 0.25, decision: 'normal', threshold: 0.5, ood: null, heatmap: null, warnings: [], width: 1, height: 1, format: 'png', seconds: 0 };
  },
  release: async () => {},
};

before(() => {
  appDir = join(tmp.dir, 'app');
  mkdirSync(join(appDir, 'assets'), { recursive: true });
  writeFileSync(join(appDir, 'index.html'), '<!doctype html><title>t</title><p>the app</p>');
  writeFileSync(join(appDir, 'assets', 'app.js'), 'console.log("app")');
});
after(async () => {
  for (const s of servers) await s.close();
  tmp.cleanup();
});

async function listen(opts: Partial<ServeOptions> = {}): Promise<{ port: number; lines: string[] }> {
  const lines: string[] = [];
  const s = await buildServer({ predictor, appDir, log: (l) => lines.push(l), ...opts });
  servers.push(s);
  await s.listen({ host: '127.0.0.1', port: 0 });
  return { port: (s.server.address() as { port: number }).port, lines };
}

test('normalizeRequestTarget: one canonical path per spelling, or a reason to refuse', () => {
  const ok: [string, string][] = [
    ['/v1/health', '/v1/health'],
    ['/%76%31/predict', '/v1/predict'],
    ['/model%2eonnx', '/model.onnx'],
    ['/model%2Eonnx', '/model.onnx'],
    ['/%6dodel.onnx', '/model.onnx'],
    ['/./v1/health', '/v1/health'],
    ['//v1/health', '/v1/health'],
    ['/v1//health', '/v1/health'],
    ['/v1/../model.onnx', '/model.onnx'],
    ['/v1/%2e%2e/model.onnx', '/model.onnx'],
    ['/v1/.%2E/model.onnx', '/model.onnx'],
    ['http://127.0.0.1:8080/v1/health', '/v1/health'],
    ['HTTP://evil.example/v1/health?x=1', '/v1/health?x=1'],
    ['http://h', '/'],
    ['http://h?q', '/?q'],
    ['/', '/'],
    ['/.', '/'],
    ['/v1/health/', '/v1/health/'],
    ['/v1/health?a=%2F&b=..', '/v1/health?a=%2F&b=..'],
    // Escapes of reserved or non-ASCII characters stay escaped (upper-case): the router decodes them once.
    ['/a%3ab', '/a%3Ab'],
    ['/%252e', '/%252e'],
    ['/%c3%a9', '/%C3%A9'],
    ['/a%20b', '/a%20b'],
  ];
  for (const [raw, want] of ok) {
    const n = normalizeRequestTarget(raw);
    assert.ok(n.ok, `${raw}: ${n.ok ? '' : n.reason}`);
    assert.equal(n.ok && n.target, want, raw);
  }
  const bad = ['*', 'v1/health', 'ftp://h/v1/health', 'http:///v1/health', '/%2fv1/health', '/v1%2Fhealth', '/v1%5chealth', '/v1\\health', '/v1/health%00',
    '/%', '/%4', '/%zz', '/../v1/health', '/v1/../../model.onnx', '/%2e%2e/model.onnx', '/a b', '/a\u00e9', '/a#frag', '/a"b', '/v1/health?a\u0001'];
  for (const raw of bad) assert.equal(normalizeRequestTarget(raw).ok, false, `${JSON.stringify(raw)} must be refused`);
});

test('with a token, no spelling of a path reaches a route without it (raw sockets)', async () => {
  const { port, lines } = await listen({ token: TOKEN });
  const get = (target: string, headers: Record<string, string> = {}, method = 'GET', body?: Buffer) => rawRequest(port, httpRequest(method, target, port, headers, body));
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
  // Each spelling, without the token: 401 (never the route's answer); with it: the route's answer.
  const routes: [string, string, string, (b: Buffer) => void][] = [
    ['GET', '/v1/health', 'health', (b) => assert.equal((JSON.parse(b.toString()) as { status: string }).status, 'ok')],
    ['GET', '/model.onnx', 'model', (b) => assert.deepEqual(new Uint8Array(b), MODEL_BYTES)],
    ['GET', '/', 'page', (b) => assert.match(b.toString(), /the app/)],
    ['GET', '/assets/app.js', 'asset', (b) => assert.match(b.toString(), /console\.log/)],
    ['POST', '/v1/predict', 'predict', (b) => assert.equal((JSON.parse(b.toString()) as { probability: number }).probability, 0.25)],
  ];
  const spellings: Record<string, string[]> = {
    health: ['/v1/health', '/%76%31/health', '/v1/%68ealth', '/./v1/health', '//v1/health', '/v1//health', '/v1/./health', '/x/../v1/health', `http://127.0.0.1:${port}/v1/health`, 'http://evil.example/v1/health', '/v1/health?x=1'],
    model: ['/model.onnx', '/model%2eonnx', '/%6dodel.onnx', '/v1/../model.onnx', '/v1/%2e%2e/model.onnx', '//model.onnx', `http://127.0.0.1:${port}/model.onnx`, '/./model.onnx'],
    page: ['/', '/.', '//', `http://127.0.0.1:${port}/`, '/index.html', '/%69ndex.html'],
    asset: ['/assets/app.js', '/%61ssets/app.js', '//assets//app.js', '/assets/./app.js', '/x/../assets/app.js'],
    predict: ['/v1/predict', '/%76%31/predict', '/v1/predic%74', '//v1/predict', `http://127.0.0.1:${port}/v1/predict`, '/v1/../v1/predict'],
  };
  const before = predictions;
  for (const [method, , key, check] of routes) {
    for (const target of spellings[key]!) {
      const body = method === 'POST' ? png : undefined;
      const headers: Record<string, string> = method === 'POST' ? { 'content-type': 'application/octet-stream' } : {};
      const none = await get(target, headers, method, body);
      assert.equal(none.status, 401, `${method} ${target} without the token: ${none.status} ${none.body.toString().slice(0, 80)}`);
      const html = await get(target, { ...headers, accept: 'text/html' }, method, body);
      assert.equal(html.status, 401, `${method} ${target} (browser) without the token`);
      const wrong = await get(target, { ...headers, authorization: 'Bearer nope' }, method, body);
      assert.equal(wrong.status, 401, `${method} ${target} with a wrong token`);
      const withToken = await get(target, { ...headers, authorization: `Bearer ${TOKEN}` }, method, body);
      assert.equal(withToken.status, 200, `${method} ${target} with the token: ${withToken.body.toString().slice(0, 120)}`);
      check(withToken.body);
    }
  }
  assert.equal(predictions - before, spellings.predict!.length, 'only the requests with the token reached the model');
  // The log shows the canonical path (so one path has one spelling in it too).
  assert.ok(lines.some((l) => / GET \/model\.onnx 200 /.test(l)));
  assert.ok(!lines.some((l) => /%6d|%2e/i.test(l)), 'no raw spelling in the log');
});

test('targets that cannot be normalised get 400 JSON, with or without the token', async () => {
  for (const token of [TOKEN, undefined]) {
    const { port, lines } = await listen(token ? { token } : {});
    for (const target of ['/%2fv1/health', '/v1%2Fhealth', '/v1\\health', '/v1/health%00', '/%', '/%zz', '/../model.onnx', '/v1/../../model.onnx', '*', 'ftp://x/v1/health', '/a"b']) {
      const r = await rawRequest(port, httpRequest('GET', target, port, token ? { authorization: `Bearer ${token}` } : {}));
      // Node itself refuses some targets before any route (400 from its parser): the same answer.
      assert.equal(r.status, 400, `${target}: ${r.status} ${r.body.toString()}`);
      assert.match((JSON.parse(r.body.toString()) as { error: string }).error, /bad request/, target);
    }
    assert.ok(lines.some((l) => / GET .* 400 /.test(l)), 'the refusals are in the access log');
    assert.ok(!lines.some((l) => /^error:/.test(l)), 'no stack trace');
  }
});

test('a browser logs in once (form or #token) and then everything works with its HttpOnly SameSite=Strict cookie', async () => {
  const { port } = await listen({ token: TOKEN });
  const page = await rawRequest(port, httpRequest('GET', '/', port, { accept: 'text/html' }));
  assert.equal(page.status, 401);
  assert.match(page.headers['content-type'] ?? '', /text\/html/);
  assert.match(page.body.toString(), /<form method="post" action="\/auth\/login"/);
  assert.doesNotMatch(page.body.toString(), /the app/);
  const script = await rawRequest(port, httpRequest('GET', '/auth/login.js', port));
  assert.equal(script.status, 200, 'the login script is public');
  assert.match(script.body.toString(), /#|token=/);
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const wrong = await rawRequest(port, httpRequest('POST', '/auth/login', port, form, 'token=nope'));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['set-cookie'], undefined);
  const ok = await rawRequest(port, httpRequest('POST', '/auth/login', port, form, `token=${encodeURIComponent(TOKEN)}`));
  assert.equal(ok.status, 204);
  const cookie = ok.headers['set-cookie'] ?? '';
  assert.match(cookie, /^nextray_session=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict$/);
  assert.ok(!cookie.includes(TOKEN), 'the cookie does not hold the token itself');
  const asForm = await rawRequest(port, httpRequest('POST', '/auth/login', port, { ...form, accept: 'text/html' }, `token=${TOKEN}`));
  assert.deepEqual([asForm.status, asForm.headers.location], [303, '/'], 'a plain form post goes back to the page');
  const session = cookie.split(';')[0]!;
  for (const target of ['/', '/model.onnx', '/v1/health', '/assets/app.js', '/model%2eonnx']) {
    const r = await rawRequest(port, httpRequest('GET', target, port, { cookie: session }));
    assert.equal(r.status, 200, `${target} with the session cookie`);
  }
  assert.equal((await rawRequest(port, httpRequest('GET', '/v1/health', port, { cookie: `nextray_session=${sessionValue('other')}` }))).status, 401, 'a session of another token');
  // Another site's page cannot log the browser in (login CSRF) nor post with the cookie.
  const csrf = await rawRequest(port, httpRequest('POST', '/auth/login', port, { ...form, origin: 'http://evil.example' }, `token=${TOKEN}`));
  assert.equal(csrf.status, 403);
  const post = await rawRequest(port, httpRequest('POST', '/v1/predict', port, { cookie: session, origin: 'http://evil.example', 'content-type': 'image/png' }, 'x'));
  assert.equal(post.status, 403);
  const same = await rawRequest(port, httpRequest('POST', '/v1/predict', port, { cookie: session, origin: `http://127.0.0.1:${port}`, 'content-type': 'image/png' }, 'x'));
  assert.equal(same.status, 200, 'the page itself may post');
  const fetchMeta = await rawRequest(port, httpRequest('POST', '/v1/predict', port, { cookie: session, 'sec-fetch-site': 'cross-site', 'content-type': 'image/png' }, 'x'));
  assert.equal(fetchMeta.status, 403, 'Sec-Fetch-Site: cross-site');
  // Behind a reverse proxy that rewrites Host: the page's origin is the public name, which the proxy forwards.
  const proxied = await rawRequest(port, httpRequest('POST', '/auth/login', port, { ...form, origin: 'https://xray.example', 'x-forwarded-host': 'xray.example' }, `token=${TOKEN}`));
  assert.equal(proxied.status, 204, 'same origin through a proxy');
  const modern = await rawRequest(port, httpRequest('POST', '/auth/login', port, { ...form, origin: 'https://xray.example', 'sec-fetch-site': 'same-origin' }, `token=${TOKEN}`));
  assert.equal(modern.status, 204, 'Sec-Fetch-Site: same-origin');
});

test('without a token only loopback Host names are served (no DNS rebinding)', async () => {
  const { port } = await listen();
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost']) {
    assert.equal((await rawRequest(port, httpRequest('GET', '/v1/health', port, { host }))).status, 200, host);
  }
  for (const host of ['evil.example', `evil.example:${port}`, '10.0.0.1', 'localhost.evil.example', '127.0.0.1.evil.example']) {
    const r = await rawRequest(port, httpRequest('GET', '/v1/health', port, { host }));
    assert.equal(r.status, 403, host);
    assert.match((JSON.parse(r.body.toString()) as { error: string }).error, /Host/);
  }
});

test('a body still arriving at the timeout is cut with 408, logged; slow headers too', async () => {
  const { port, lines } = await listen({ requestTimeoutMs: 600 });
  let sent = 0;
  const total = 200;
  const r = await rawRequest(
    port,
    `POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${total}\r\n\r\n`,
    {
      timeoutMs: 20_000,
      // One byte every 50 ms: 200 bytes would take 10 s, far beyond the 600 ms timeout, and the socket never idles.
      then: async (socket, stopped) => {
        while (!stopped() && sent < total) {
          await new Promise((res) => setTimeout(res, 50));
          if (!socket.destroyed) socket.write('x', () => undefined);
          sent++;
        }
      },
    },
  );
  assert.equal(r.status, 408);
  assert.match((JSON.parse(r.body.toString()) as { error: string }).error, /did not arrive within 600 ms/);
  assert.ok(r.closedByServer, 'the server closed the connection');
  assert.ok(sent < total, `cut before the client finished (${sent} of ${total} bytes sent)`);
  assert.ok(lines.some((l) => / POST \/v1\/predict 408 /.test(l)), lines.join('\n'));

  // Headers that never finish: Node's header timeout, answered 408 and logged by the server.
  let headerBytes = 0;
  const slowHead = await rawRequest(port, `GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`, {
    timeoutMs: 20_000,
    then: async (socket, stopped) => {
      while (!stopped() && headerBytes < 400) {
        await new Promise((res) => setTimeout(res, 50));
        if (!socket.destroyed) socket.write('X-Slow: 1\r\n', () => undefined);
        headerBytes++;
      }
    },
  });
  assert.equal(slowHead.status, 408);
  assert.ok(headerBytes < 400, 'cut before the client finished its headers');
  assert.ok(lines.some((l) => / 408 \(ERR_HTTP_REQUEST_TIMEOUT\)/.test(l)), lines.join('\n'));
});

test('malformed multipart bodies get 400 JSON, never 500, and no stack trace in the log', async () => {
  const { port, lines } = await listen();
  const b = 'XyZb0undary';
  const part = (headers: string, data: string) => `--${b}\r\n${headers}\r\n\r\n${data}\r\n`;
  const good = part('Content-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png', 'PNGDATA') + `--${b}--\r\n`;
  const cases: [string, string, string][] = [
    ['truncated body', `multipart/form-data; boundary=${b}`, good.slice(0, 60)],
    ['truncated inside the part headers', `multipart/form-data; boundary=${b}`, `--${b}\r\nContent-Disposition: form-da`],
    ['no boundary parameter', 'multipart/form-data', good],
    ['empty boundary', 'multipart/form-data; boundary=', good],
    ['boundary that is not in the body', 'multipart/form-data; boundary=other', good],
    ['part without Content-Disposition', `multipart/form-data; boundary=${b}`, part('Content-Type: image/png', 'x') + `--${b}--\r\n`],
    ['garbage part headers', `multipart/form-data; boundary=${b}`, `--${b}\r\n\u0001\u0002:::\r\nno colon here\r\n\r\nx\r\n--${b}--\r\n`],
    ['no closing delimiter', `multipart/form-data; boundary=${b}`, part('Content-Disposition: form-data; name="file"; filename="x.png"', 'PNG')],
    ['empty body', `multipart/form-data; boundary=${b}`, ''],
  ];
  for (const [what, type, body] of cases) {
    const r = await rawRequest(port, httpRequest('POST', '/v1/predict', port, { 'content-type': type }, body));
    assert.equal(r.status, 400, `${what}: ${r.status} ${r.body.toString()}`);
    assert.equal(typeof (JSON.parse(r.body.toString()) as { error: string }).error, 'string', what);
  }
  assert.ok(!lines.some((l) => /^error:|\n\s+at /.test(l)), `no stack trace in the log:\n${lines.join('\n')}`);
});
