/**
 * `nextray forward --engine onnx|tfjs|auto` through the real CLI on the shared torchvision ResNet-18 fixture
 * (logits computed by torchvision itself): ONNX Runtime and TF.js both match torchvision to 1e-4 relative, the
 * summary names the engine that ran; auto picks ONNX Runtime; a bad engine name is a usage error (exit 2).
 * Needs `npm run build` first (runCli runs dist/).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readNpyFile } from '../../src/models/weights/files.js';
import { runCli } from '../helpers/cli.js';
import { TORCHVISION_FIXTURES, tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-forward-engine-');
after(() => tmp.cleanup());
const fx = (f: string) => join(TORCHVISION_FIXTURES, f);

test('forward: ONNX Runtime and TF.js both give torchvision logits; the engine is reported', async () => {
  const want = (await readNpyFile(fx('resnet18.logits.npy'))).data as Float32Array;
  let ref = 0;
  for (const v of want) ref = Math.max(ref, Math.abs(v));
  for (const [engine, ran, pattern] of [
    ['onnx', 'onnx', /^onnxruntime-node \d+\.\d+\.\d+ \(CPU, 1 thread\)$/],
    ['auto', 'onnx', /^onnxruntime-node /],
    ['tfjs', 'tfjs', /^TF\.js: /],
  ] as const) {
    const out = join(tmp.dir, `y-${engine}.npy`);
    const r = runCli(['forward', '--arch', 'resnet18', '--weights', fx('resnet18.pth'), '--input', fx('resnet18.input.npy'),
      '--output', out, '--batch', '1', '--threads', '1', '--engine', engine, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { engine: string; engine_description: string; output_shape: number[]; seconds: number; setup_seconds: number };
    assert.equal(s.engine, ran, engine);
    assert.match(s.engine_description, pattern);
    assert.deepEqual(s.output_shape, [2, 1000]);
    assert.ok(s.seconds > 0 && s.setup_seconds >= 0);
    const got = (await readNpyFile(out)).data as Float32Array;
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    assert.ok(diff / ref < 1e-4, `${engine}: relative error ${diff / ref}`);
  }
  const bad = runCli(['forward', '--arch', 'resnet18', '--weights', fx('resnet18.pth'), '--input', fx('resnet18.input.npy'),
    '--output', join(tmp.dir, 'z.npy'), '--engine', 'gpu']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /'gpu' is invalid/);
});
