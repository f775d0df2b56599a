/**
 * `nextray serve`'s REST API through fastify.inject (and one real process for the CLI, SIGTERM and the log lines):
 * predictions equal the library's on the same file, every bad input gets its 4xx and a JSON error, the token rules
 * (more of them, over raw sockets, in security.test.ts),
 * the bounded queue (503 + Retry-After), and the cross-origin-isolation headers on the page.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { buildServer, type ServeOptions } from '../../src/serve/server.js';
import { openPredictor, type Predictor } from '../../src/serve/predictor.js';
import { preprocessImage } from '../../src/data/images.js';
import { OnnxClassifier } from '../../src/inference/node/onnx-session.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { greyPng, writeImages, writeTinyCheckpoint, writeTinyModel } from './fixture.js';
import { cpSync } from 'node:fs';
import { InferenceError } from '../../src/inference/core/model.js';
import { openModel } from '../../src/inference/node/models.js';

const tmp = tempDir('nextray-serve-');
let modelPath: string;
let images: Awaited<ReturnType<typeof writeImages>>;
let predictor: Predictor;
let appDir: string;
const servers: FastifyInstance[] = [];

before(async () => {
  modelPath = await writeTinyModel(tmp.dir, { threshold: 0.5 });
  images = await writeImages(tmp.dir);
  predictor = await openPredictor(modelPath, { threads: 1 });
  appDir = join(tmp.dir, 'app');
  mkdirSync(appDir);
  writeFileSync(join(appDir, 'index.html'), '<!doctype html><title>t</title><p>page</p>');
});
after(async () => {
  for (const s of servers) await s.close();
  await predictor.release();
  tmp.cleanup();
});

async function server(opts: Partial<ServeOptions> = {}): Promise<FastifyInstance> {
  const s = await buildServer({ predictor, modelPath, appDir, log: () => {}, ...opts });
  servers.push(s);
  return s;
}

function multipart(field: string, filename: string, data: Buffer): { payload: Buffer; headers: Record<string, string> } {
  const boundary = '----nextraytest' + field.length;
  const payload = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

test('predict: raw body and multipart give the library probability; decision follows the stored threshold', async () => {
  const s = await server();
  const clf = await OnnxClassifier.create(modelPath, { threads: 1 });
  const want: number[] = [];
  for (const f of [images.png1, images.png2, images.jpeg]) {
    want.push((await clf.run(await preprocessImage(f, clf.info.preprocessing), 1)).probabilities[0]!);
  }
  await clf.release();
  const sha = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
  for (const [i, f] of [images.png1, images.png2, images.jpeg].entries()) {
    const raw = await s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(f), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(raw.statusCode, 200, raw.body);
    const body = raw.json() as { probability: number; decision: string; threshold: number; model: { name: string; sha256: string }; ood: unknown };
    assert.ok(Math.abs(body.probability - want[i]!) <= 1e-6, `${f}: ${body.probability} vs ${want[i]}`);
    assert.equal(body.threshold, 0.5);
    assert.equal(body.decision, want[i]! > 0.5 ? 'abnormal' : 'normal');
    assert.deepEqual(body.model, { name: 'model', sha256: sha });
    const mp = await s.inject({ method: 'POST', url: '/v1/predict', ...multipart('file', 'x.png', readFileSync(f)) });
    assert.equal(mp.statusCode, 200, mp.body);
    assert.equal((mp.json() as { probability: number }).probability, body.probability);
  }
  assert.ok(Math.abs(want[0]! - want[1]!) > 1e-4, 'the two images give different probabilities (not a constant model)');
});

test('health and model describe the loaded model', async () => {
  const s = await server();
  const h = await s.inject('/v1/health');
  assert.equal(h.statusCode, 200);
  assert.equal((h.json() as { status: string }).status, 'ok');
  const m = (await s.inject('/v1/model')).json() as { name: string; sha256: string; arch: string; inputSize: number; threshold: number; outputs: string[]; source?: string };
  assert.equal(m.arch, 'resnet-slim');
  assert.equal(m.inputSize, 64);
  assert.equal(m.threshold, 0.5);
  assert.ok(m.outputs.includes('cam'), 'the heatmap output is listed');
  assert.equal(m.source, undefined, 'the server does not tell its file paths');
  assert.equal(m.sha256, createHash('sha256').update(readFileSync(modelPath)).digest('hex'));
  const file = await s.inject('/model.onnx');
  assert.equal(file.statusCode, 200);
  assert.deepEqual(file.rawPayload, readFileSync(modelPath));
});

test('every bad input gets a 4xx and a JSON error that says what is wrong', async () => {
  const s = await server({ bodyLimit: 64 * 1024, maxPixels: 150 * 150 });
  const png = readFileSync(images.png1);
  const post = (payload: Buffer | string, headers: Record<string, string> = { 'content-type': 'application/octet-stream' }) =>
    s.inject({ method: 'POST', url: '/v1/predict', payload, headers });
  const dicom = Buffer.alloc(300);
  dicom.write('DICM', 128, 'latin1');
  const gif = await sharp(Buffer.alloc(16 * 16, 128), { raw: { width: 16, height: 16, channels: 1 } }).gif().toBuffer();
  const cases: [string, Promise<{ statusCode: number; body: string }>, number, RegExp][] = [
    ['empty raw body', post(Buffer.alloc(0)), 400, /empty|no file/],
    ['empty multipart file', post(...Object.values(multipart('file', 'e.png', Buffer.alloc(0))) as [Buffer, Record<string, string>]), 400, /empty/],
    ['multipart without field file', post(...Object.values(multipart('image', 'x.png', png)) as [Buffer, Record<string, string>]), 400, /field 'file'/],
    ['truncated PNG', post(png.subarray(0, Math.floor(png.length / 2))), 422, /truncated|corrupt|damaged/],
    ['text', post('hello, this is not an image at all', { 'content-type': 'text/plain' }), 415, /not an image/],
    ['GIF', post(gif), 415, /unsupported format.*GIF/],
    ['damaged DICOM', post(dicom), 422, /damaged or truncated DICOM/],
    ['DICOM in an unsupported transfer syntax', post(readFileSync(images.dicomLossless)), 415, /transfer syntax 1\.2\.840\.10008\.1\.2\.4\.201 \(High-Throughput JPEG 2000.*not supported/],
    ['body over the limit', post(Buffer.alloc(65 * 1024, 1)), 413, /too large.*65536/],
    ['image over the pixel limit', post(await greyPng(200, 200, 1)), 413, /too large/],
    ['unknown route', s.inject('/v1/nothing'), 404, /not found/],
    ['GET on predict', s.inject('/v1/predict'), 404, /not found/],
  ];
  for (const [what, res, status, msg] of cases) {
    const r = await res;
    assert.equal(r.statusCode, status, `${what}: ${r.body}`);
    const body = JSON.parse(r.body) as { error: string };
    assert.match(body.error, msg, what);
  }
});

test('with a token every API call, the model file and the page need Authorization: Bearer', async () => {
  const s = await server({ token: 's3cret' });
  for (const url of ['/v1/health', '/v1/model', '/model.onnx', '/']) {
    const none = await s.inject(url);
    assert.equal(none.statusCode, 401, url);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    assert.match((none.json() as { error: string }).error, /token/);
    assert.equal((await s.inject({ url, headers: { authorization: 'Bearer wrong' } })).statusCode, 401, url);
    assert.equal((await s.inject({ url, headers: { authorization: 's3cret' } })).statusCode, 401, `${url}: the Bearer scheme is required`);
    assert.equal((await s.inject({ url, headers: { authorization: 'Bearer s3cret' } })).statusCode, 200, url);
  }
  const p = await s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(images.png1), headers: { 'content-type': 'image/png' } });
  assert.equal(p.statusCode, 401, 'predict is refused before the body is looked at');
  const ok = await s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(images.png1), headers: { 'content-type': 'image/png', authorization: 'Bearer s3cret' } });
  assert.equal(ok.statusCode, 200);
});

test('the page is served cross-origin isolated (COOP/COEP) and may talk to its own origin only', async () => {
  const s = await server();
  const r = await s.inject('/');
  assert.equal(r.statusCode, 200);
  assert.match(r.body, /<p>page<\/p>/);
  assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin');
  assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp');
  assert.match(String(r.headers['content-security-policy']), /default-src 'self'/);
  const api = await s.inject('/v1/health');
  assert.equal(api.headers['cross-origin-embedder-policy'], 'require-corp');
});

test('a full queue answers 503 with Retry-After instead of piling up', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let calls = 0;
  const slow: Predictor = {
    model: predictor.model,
    onnx: predictor.onnx,
    predict: async (file, o) => {
      calls++;
      await gate;
      return predictor.predict(file, o);
    },
    release: async () => {},
  };
  const s = await server({ predictor: slow, concurrency: 1, maxQueue: 1 });
  const send = () => s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(images.png1), headers: { 'content-type': 'image/png' } });
  const first = send();
  const second = send();
  await new Promise((r) => setTimeout(r, 50));
  const third = await send();
  assert.equal(third.statusCode, 503);
  assert.equal(third.headers['retry-after'], '1');
  assert.match((third.json() as { error: string }).error, /busy/);
  release();
  assert.deepEqual([(await first).statusCode, (await second).statusCode], [200, 200]);
  assert.equal(calls, 2, 'the refused request never reached the model');
});

test('CLI: refuses a public host without a token; serves over HTTP with one log line per request; SIGTERM drains and exits 0', async () => {
  const bin = join(REPO_ROOT, 'bin', 'nextray.js');
  const refused = spawnSync(process.execPath, [bin, 'serve', '--model', modelPath, '--host', '0.0.0.0'], { encoding: 'utf8' });
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /refusing to listen on 0\.0\.0\.0 without --token/);

  const child = spawn(process.execPath, [bin, 'serve', '--model', modelPath, '--port', '0', '--threads', '1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve((JSON.parse(line!) as { url: string }).url);
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  const form = new FormData();
  form.append('file', new Blob([readFileSync(images.png2)]), 'view2.png');
  const inflight = fetch(`${url}/v1/predict`, { method: 'POST', body: form });
  const health = await fetch(`${url}/v1/health`);
  assert.equal(health.status, 200);
  const r = await inflight;
  assert.equal(r.status, 200);
  assert.equal(typeof ((await r.json()) as { probability: number }).probability, 'number');
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  const lines = stderr.split('\n').filter((l) => / (GET|POST) \//.test(l));
  assert.equal(lines.length, 2, stderr);
  assert.match(lines.find((l) => l.includes('POST'))!, /POST \/v1\/predict 200 \d+\.\dms$/);
  assert.match(stderr, /SIGTERM: finishing running requests/);
});

test('the heatmap is a PNG of the image (up to 512 px) with the CAM blended in where the library puts it', async () => {
  const s = await server();
  const r = await s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(images.png1), headers: { 'content-type': 'image/png' } });
  const body = r.json() as { heatmap: string | null };
  assert.equal(typeof body.heatmap, 'string');
  const png = Buffer.from(body.heatmap!, 'base64');
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [90, 120], 'the size of view1.png');
  // Independently: the CAM from onnxruntime-node, undone from the letterbox, blended at 0.5 over the grey image.
  const clf = await OnnxClassifier.create(modelPath, { threads: 1 });
  const { decodeGrey } = await import('../../src/data/images.js');
  const { camOnImage } = await import('../../src/inference/core/cam.js');
  const { colourAt } = await import('../../src/inference/core/colormap.js');
  const grey = await decodeGrey(images.png1);
  const run = await clf.run(await preprocessImage(images.png1, clf.info.preprocessing), 1);
  await clf.release();
  const map = camOnImage(run.cam!, run.camSize![0], run.camSize![1], 90, 120, clf.info.preprocessing);
  let coloured = 0;
  let worst = 0;
  for (let i = 0; i < 90 * 120; i++) {
    const c = colourAt(map[i]!);
    for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(data[i * info.channels + k]! - (0.5 * 255 * grey.data[i]! + 0.5 * c[k]!)));
    if (data[i * info.channels]! !== data[i * info.channels + 2]!) coloured++;
  }
  assert.ok(worst <= 1, `overlay differs from grey/2 + viridis(cam)/2 by ${worst}`);
  assert.ok(coloured > 0.5 * 90 * 120, 'the overlay is coloured, not the grey picture');
});

test('with an OOD gate in the model, a colour photograph is flagged and a radiograph-like image is not', async () => {
  const dir = join(tmp.dir, 'ood');
  mkdirSync(dir);
  const path = await writeTinyModel(dir, { fitOod: true });
  const p = await openPredictor(path, { threads: 1 });
  try {
    const s = await server({ predictor: p, modelPath: path });
    const post = async (f: string) =>
      (await s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(f), headers: { 'content-type': 'application/octet-stream' } })).json() as {
        ood: { flagged: boolean; score: number; threshold: number; warning?: string } | null;
        decision: string | null;
      };
    const photo = await post(images.photo);
    assert.equal(photo.ood?.flagged, true);
    assert.equal(photo.decision, null, 'no decision for an image the gate rejects');
    assert.ok(photo.ood!.score > photo.ood!.threshold);
    assert.match(photo.ood!.warning ?? '', /out of distribution/);
    const xray = await post(images.png1);
    assert.equal(xray.ood?.flagged, false);
    assert.match(String(xray.decision), /^(abnormal|normal)$/);
    assert.ok(xray.ood!.score <= xray.ood!.threshold);
    const plain = await (await server()).inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(images.photo), headers: { 'content-type': 'image/jpeg' } });
    assert.equal((plain.json() as { ood: unknown }).ood, null, 'a model without a gate says nothing about OOD');
  } finally {
    await p.release();
  }
});

test('DICOM uploads go through the display pipeline: MONOCHROME2 and inverted MONOCHROME1 give the PNG probability', async () => {
  const s = await server();
  const post = async (f: string) => s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(f), headers: { 'content-type': 'application/dicom' } });
  const png = (await post(images.png1)).json() as { probability: number };
  for (const f of [images.dicom, images.dicomMono1]) {
    const r = await post(f);
    assert.equal(r.statusCode, 200, r.body);
    const b = r.json() as { probability: number; format: string };
    assert.equal(b.format, 'dicom');
    assert.ok(Math.abs(b.probability - png.probability) <= 1e-6, `${f}: ${b.probability} vs PNG ${png.probability}`);
  }
});

test('closing (what SIGTERM does) lets the running request finish and refuses new ones; a request that waits too long gets 503', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: Predictor = {
    model: predictor.model,
    onnx: predictor.onnx,
    predict: async (file, o) => {
      await gate;
      return predictor.predict(file, o);
    },
    release: async () => {},
  };
  const s = await buildServer({ predictor: slow, modelPath, appDir, log: () => {}, concurrency: 1, maxQueue: 4, requestTimeoutMs: 300 });
  const url = await s.listen({ host: '127.0.0.1', port: 0 });
  const send = () => fetch(`${url}/v1/predict`, { method: 'POST', body: readFileSync(images.png1), headers: { 'content-type': 'image/png' } });
  const running = send();
  await new Promise((r) => setTimeout(r, 50));
  const waiting = await send();
  assert.equal(waiting.status, 503, 'waited 300 ms for the model without starting');
  assert.match(((await waiting.json()) as { error: string }).error, /waited 300 ms/);
  const closed = s.close();
  await new Promise((r) => setTimeout(r, 50));
  await assert.rejects(send(), 'no new connections once closing');
  release();
  const r = await running;
  assert.equal(r.status, 200, 'the running request finished');
  assert.equal(typeof ((await r.json()) as { probability: number }).probability, 'number');
  await closed;
});

test('--model may be a checkpoint folder or run directory: exported in memory as predict does, the page gets that ONNX', async () => {
  const ckpt = await writeTinyCheckpoint(tmp.dir, { threshold: 0.5 });
  const run = join(tmp.dir, 'run-dir');
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  cpSync(ckpt, join(run, 'checkpoints', 'best'), { recursive: true });
  const onnx = await server(); // the .onnx export of the same weights (writeTinyModel, same seed)
  const want = ((await onnx.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(images.png2), headers: { 'content-type': 'image/png' } })).json() as { probability: number }).probability;
  for (const spec of [ckpt, run]) {
    const p = await openPredictor(spec, { threads: 1 });
    try {
      const s = await buildServer({ predictor: p, appDir, log: () => {} });
      servers.push(s);
      // The model card and identity are predict's for the same folder.
      const m = await openModel(spec, { engine: 'onnx', threads: 1 });
      const sha = m.card.sha256;
      await m.release();
      const card = (await s.inject('/v1/model')).json() as { sha256: string; arch: string; outputs: string[]; inputSize: number };
      assert.equal(card.sha256, sha);
      assert.deepEqual([card.arch, card.inputSize], ['resnet-slim', 64]);
      assert.ok(card.outputs.includes('cam'), 'exported with the CAM output, as predict exports it');
      const r = await s.inject({ method: 'POST', url: '/v1/predict', payload: readFileSync(images.png2), headers: { 'content-type': 'image/png' } });
      assert.equal(r.statusCode, 200, r.body);
      const body = r.json() as { probability: number; heatmap: string | null; model: { sha256: string } };
      assert.ok(Math.abs(body.probability - want) <= 1e-6, `${spec}: ${body.probability} vs the .onnx export's ${want}`);
      assert.equal(typeof body.heatmap, 'string');
      assert.equal(body.model.sha256, sha);
      // The page's model file: the in-memory export, which ONNX Runtime runs to the same probability.
      const file = await s.inject('/model.onnx');
      assert.equal(file.statusCode, 200);
      const clf = await OnnxClassifier.create(new Uint8Array(file.rawPayload), { threads: 1 });
      const pf = (await clf.run(await preprocessImage(images.png2, clf.info.preprocessing), 1)).probabilities[0]!;
      await clf.release();
      assert.ok(Math.abs(pf - body.probability) <= 1e-6, `/model.onnx gives ${pf}, the API ${body.probability}`);
    } finally {
      await p.release();
    }
  }
  // Bad paths: predict's errors (openModel's), as InferenceErrors.
  for (const bad of [join(tmp.dir, 'no-such-model'), join(tmp.dir, 'app')]) {
    const fromPredict = await openModel(bad, { engine: 'onnx' }).then(
      () => assert.fail(`${bad} opened`),
      (e: Error) => e.message,
    );
    await assert.rejects(openPredictor(bad), (e: unknown) => e instanceof InferenceError && e.message === fromPredict);
  }
});
