/**
 * `nextray forward --runtime onnx|tfjs|auto` through the real CLI: ONNX Runtime and TF.js both reproduce the expected
 * logits to 1e-4 relative, the summary names the engine that ran; auto picks ONNX Runtime; a bad engine name is a
 * usage error (exit 2); the old spelling `--engine onnx|tfjs` still runs, with one line saying so. Expected logits: the in-process TF.js forward of a seeded resnet18 (always), and
 * torchvision's own logits on the shared ResNet-18 fixture (when ../shared is present).
 * Needs `npm run build` first (runCli runs dist/).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/index.js';
import { readNpyFile } from '../../src/models/weights/files.js';
import { runCli } from '../helpers/cli.js';
import { writeSeededResnet18 } from '../helpers/torchvision.js';
import { SHARED_FIXTURES_SKIP, SMALL_FIXTURES, TORCHVISION_FIXTURES, tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-forward-engine-');
after(() => tmp.cleanup());
const fx = (f: string) => join(TORCHVISION_FIXTURES, f);
const INPUT = join(SMALL_FIXTURES, 'basic_narrow.input.npy');
const R18 = join(tmp.dir, 'resnet18.safetensors');
let r18Logits: Float32Array;

before(async () => {
  await initEngine('cpu');
  r18Logits = await writeSeededResnet18(R18, 5);
});

async function runEngines(weights: string, input: string, want: Float32Array): Promise<void> {
  let ref = 0;
  for (const v of want) ref = Math.max(ref, Math.abs(v));
  for (const [engine, ran, pattern] of [
    ['onnx', 'onnx', /^onnxruntime-node \d+\.\d+\.\d+ \(CPU, 1 thread\)$/],
    ['auto', 'onnx', /^onnxruntime-node /],
    ['tfjs', 'tfjs', /^TF\.js: /],
  ] as const) {
    const out = join(tmp.dir, `y-${engine}.npy`);
    const r = runCli(['forward', '--arch', 'resnet18', '--weights', weights, '--input', input,
      '--output', out, '--batch', '1', '--threads', '1', '--runtime', engine, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { engine: string; engine_description: string; output_shape: number[]; seconds: number; setup_seconds: number };
    assert.equal(s.engine, ran, engine);
    assert.match(s.engine_description, pattern);
    assert.deepEqual(s.output_shape, [2, 1000]);
    // Timings are reported, not judged here (they belong to the bench).
    assert.ok(Number.isFinite(s.seconds) && Number.isFinite(s.setup_seconds));
    const got = (await readNpyFile(out)).data as Float32Array;
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    assert.ok(diff / ref < 1e-4, `${engine}: relative error ${diff / ref}`);
  }
}

test('forward: ONNX Runtime and TF.js both give the TF.js model\'s logits; the engine is reported', async () => {
  await runEngines(R18, INPUT, r18Logits);
  for (const flag of ['--runtime', '--engine']) {
    const bad = runCli(['forward', '--arch', 'resnet18', '--weights', R18, '--input', INPUT,
      '--output', join(tmp.dir, 'z.npy'), flag, 'gpu']);
    assert.equal(bad.code, 2, flag);
    assert.match(bad.stderr, /'gpu' is invalid/, flag);
  }
  // The old spelling of the runtime: runs that runtime, one line to stderr.
  const old = runCli(['forward', '--arch', 'resnet18', '--weights', R18, '--input', INPUT,
    '--output', join(tmp.dir, 'y-old.npy'), '--batch', '1', '--threads', '1', '--engine', 'tfjs', '--json']);
  assert.equal(old.code, 0, old.stderr);
  assert.equal((JSON.parse(old.stdout) as { engine: string }).engine, 'tfjs');
  assert.match(old.stderr, /^nextray: --engine tfjs is now --runtime tfjs [^\n]*\n$/);
});

test('forward: ONNX Runtime and TF.js both give torchvision logits on the shared resnet18 .pth', { skip: SHARED_FIXTURES_SKIP }, async () => {
  const want = (await readNpyFile(fx('resnet18.logits.npy'))).data as Float32Array;
  await runEngines(fx('resnet18.pth'), fx('resnet18.input.npy'), want);
});
