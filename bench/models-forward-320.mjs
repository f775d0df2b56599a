#!/usr/bin/env node
// ResNet-152 (binary head) forward at the published input size, 320x320, batch 1: time and tensor-leak check.
// Too slow for the unit tests on the pure-JS cpu backend (418 s for one image measured on the shared, busy 2-core
// dev machine; about 26 s with the native oneDNN engine), so the tests check leaks at 64x64 and this pass lives here.
// Usage: npm run build && node bench/models-forward-320.mjs [--engine cpu|native|auto] [--size 320] [--runs 2]
import { fileURLToPath } from 'node:url';
import { option } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => option(argv, name, dflt);
const size = Number(opt('size', '320'));
const runs = Number(opt('runs', '2'));

const { initEngine, tf } = await import(`${root}dist/src/engine/index.js`);
const { createModel } = await import(`${root}dist/src/models/index.js`);
const engine = await initEngine(opt('engine', 'auto'));

const model = createModel('resnet152', { head: 'binary', init: 'none' });
model.freezeLayers(148);
const x = tf.randomNormal([1, size, size, 3]);
const before = tf.memory().numTensors;
const times = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const p = model.predictProba(x);
  p.dataSync();
  p.dispose();
  times.push((performance.now() - t0) / 1000);
}
const leaked = tf.memory().numTensors - before;
x.dispose();
model.dispose();
console.log(JSON.stringify({ arch: 'resnet152', size, batch: 1, engine: engine.description, seconds: times, leaked_tensors: leaked }));
process.exit(leaked === 0 ? 0 : 1);
