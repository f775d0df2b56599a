/**
 * The server's error classes are NextrayErrors (one base: stable code, exit status, `instanceof`), each carrying the
 * HTTP status the API answers with; the queue's errors come out of BoundedQueue as such, and the server answers
 * them with that status.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NextrayError, EXIT_FAILURE, EXIT_USAGE } from '../../src/util/errors.js';
import { BoundedQueue, QueueFullError, QueueTimeoutError } from '../../src/serve/queue.js';
import { InputError, INPUT_STATUS, type Predictor } from '../../src/serve/predictor.js';
import { buildServer, HttpError } from '../../src/serve/server.js';

test('QueueFullError, QueueTimeoutError, InputError and HttpError are NextrayErrors with their HTTP status', () => {
  const cases: [Error, string, string, number, number][] = [
    [new QueueFullError(3), 'QueueFullError', 'ERR_SERVER_BUSY', 503, EXIT_FAILURE],
    [new QueueTimeoutError(250), 'QueueTimeoutError', 'ERR_QUEUE_TIMEOUT', 503, EXIT_FAILURE],
    [new InputError('empty', 'empty file'), 'InputError', 'ERR_INPUT', 400, EXIT_USAGE],
    [new InputError('not-an-image', 'x'), 'InputError', 'ERR_INPUT', 415, EXIT_USAGE],
    [new InputError('unsupported', 'x'), 'InputError', 'ERR_INPUT', 415, EXIT_USAGE],
    [new InputError('too-large', 'x'), 'InputError', 'ERR_INPUT', 413, EXIT_USAGE],
    [new InputError('corrupt', 'x'), 'InputError', 'ERR_INPUT', 422, EXIT_USAGE],
    [new HttpError(401, 'missing token'), 'HttpError', 'ERR_HTTP', 401, EXIT_FAILURE],
  ];
  for (const [err, name, code, status, exit] of cases) {
    assert.ok(err instanceof NextrayError, `${name} is a NextrayError`);
    assert.equal(err.name, name);
    const e = err as NextrayError & { statusCode: number };
    assert.equal(e.code, code, name);
    assert.equal(e.statusCode, status, `${name}: HTTP status`);
    assert.equal(e.exitStatus, exit, `${name}: exit status`);
  }
  assert.deepEqual(INPUT_STATUS, { empty: 400, 'not-an-image': 415, unsupported: 415, 'too-large': 413, corrupt: 422 });
  assert.match(new QueueFullError(3).message, /server busy: 3 requests already waiting/);
  assert.match(new QueueTimeoutError(250).message, /waited 250 ms/);
});

test('the queue rejects with them, and the API answers each with its status and a JSON error', async () => {
  const q = new BoundedQueue(1, 0, 0);
  let release!: () => void;
  const running = q.run(() => new Promise<void>((r) => (release = r)));
  await assert.rejects(q.run(async () => 1), (e: unknown) => e instanceof QueueFullError && e instanceof NextrayError);
  release();
  await running;
  const q2 = new BoundedQueue(1, 1, 20);
  let release2!: () => void;
  const running2 = q2.run(() => new Promise<void>((r) => (release2 = r)));
  await assert.rejects(q2.run(async () => 1), (e: unknown) => e instanceof QueueTimeoutError && e instanceof NextrayError);
  release2();
  await running2;

  // A predictor that throws what it is told to: the server maps the class to the status.
  let toThrow: Error = new Error('unset');
  const predictor: Predictor = {
    model: { name: 'm', sha256: 'x', arch: 'fake', preprocessing: {} as never, threshold: 0.5, engine: 'fake', outputs: [], metadata: {}, inputSize: 8 },
    onnx: { bytes: new Uint8Array(1) },
    predict: async () => {
      throw toThrow;
    },
    release: async () => {},
  };
  const s = await buildServer({ predictor, appDir: '/nonexistent', log: () => {} });
  try {
    for (const [err, status] of [
      [new InputError('corrupt', 'damaged PNG'), 422],
      [new InputError('too-large', 'too large: 9 px'), 413],
      [new QueueFullError(5), 503],
      [new QueueTimeoutError(7), 503],
    ] as const) {
      toThrow = err;
      const r = await s.inject({ method: 'POST', url: '/v1/predict', payload: Buffer.from([1, 2, 3]), headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(r.statusCode, status, `${err.name}: ${r.body}`);
      assert.deepEqual(r.json(), { error: err.message });
      if (status === 503) assert.equal(r.headers['retry-after'], '1');
    }
  } finally {
    await s.close();
  }
});
