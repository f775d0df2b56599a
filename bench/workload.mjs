#!/usr/bin/env node
// One benchmark workload in its own process (so its peak RSS is its own), run by bench/run.mjs.
// Usage: node bench/workload.mjs <gemm|infer|train> [--arch resnet152] [--batch 8] [--size 320] [--freeze 148]
//        [--warmup 1] [--runs 3] [--engine native|cpu] [--profile] [--precision fp32|bf16]
// Prints one JSON line: { workload, seconds: [...], median, maxRssMB, profile? }.
import { performance } from 'node:perf_hooks';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median, option } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const engineJs = `${root}dist/src/engine/index.js`;
const modelsJs = `${root}dist/src/models/index.js`;
if (!existsSync(engineJs)) {
  console.error(`bench: ${engineJs} missing; run: npm run build`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const kind = argv[0];
const opt = (name, dflt) => option(argv, name, dflt);
const flag = (name) => argv.includes(`--${name}`);
const arch = opt('arch', 'resnet152');
const batch = Number(opt('batch', '1'));
const size = Number(opt('size', '320'));
const freeze = Number(opt('freeze', '0'));
const warmup = Number(opt('warmup', '1'));
const runs = Number(opt('runs', '3'));
const engineName = opt('engine', 'native');
// bf16: the native convolutions on bf16 copies of their inputs (float32 where the CPU lacks bf16; the JSON says which).
const precisionWanted = opt('precision', 'fp32');

const { initEngine, tf, kernelProfile, resetKernelProfile, enableKernelProfile, leanVariableGrads, setPrecision } = await import(engineJs);
const info = await initEngine(engineName);
const precision = setPrecision(precisionWanted, 'benchmarking');


function timeRuns(step) {
  for (let i = 0; i < warmup; i++) step();
  const seconds = [];
  let profile;
  const total = runs + (flag('profile') ? 1 : 0);
  for (let i = 0; i < total; i++) {
    // With --profile one extra, untimed run records per-kernel times (profiling adds a timer per kernel call).
    const profiling = i === runs;
    if (profiling) {
      resetKernelProfile();
      enableKernelProfile(true);
    }
    const t0 = performance.now();
    step();
    const dt = (performance.now() - t0) / 1000;
    if (profiling) {
      enableKernelProfile(false);
      profile = kernelProfile().slice(0, 25).map((s) => ({ ...s, ms: Math.round(s.ms * 10) / 10 }));
    } else seconds.push(dt);
  }
  if (seconds.length === 0) seconds.push(NaN);
  return { seconds, profile };
}

let result;
if (kind === 'gemm') {
  // The machine's practical fp32 peak through the same oneDNN the kernels use: C = A(n x n) B(n x n).
  const { loadNativeAddon } = await import(`${root}dist/src/engine/native-addon.js`);
  const load = loadNativeAddon();
  if (!load.ok) {
    console.log(JSON.stringify({ workload: 'gemm', skipped: load.reason }));
    process.exit(0);
  }
  const n = Number(opt('n', '2048'));
  const a = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const b = new Float32Array(n * n).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  const c = new Float32Array(n * n);
  const dims = Int32Array.from([1, 1, n, n, n, 0, 0]);
  const { seconds } = timeRuns(() => load.addon.matmul(a, b, c, dims, null, false));
  const med = median(seconds);
  // The peak is the fastest run (a median on a shared machine reads below what the kernels can reach, and then
  // whole networks "beat" it); gflopsMedian is the typical rate.
  const best = Math.min(...seconds);
  result = { workload: `sgemm ${n}^3`, seconds, median: med, gflops: (2 * n ** 3) / best / 1e9, gflopsMedian: (2 * n ** 3) / med / 1e9 };
} else {
  const { createModel } = await import(modelsJs);
  const model = createModel(arch, { head: 'binary', seed: 1 });
  if (freeze) model.freezeLayers(freeze);
  const x = tf.tidy(() => tf.randomUniform([batch, size, size, 3], -2, 2, 'float32', 7));
  if (kind === 'infer') {
    const { seconds, profile } = timeRuns(() => tf.tidy(() => model.forward(x, false).dataSync()));
    result = { workload: `${arch} inference`, batch, size, seconds, median: median(seconds), perImage: median(seconds) / batch, profile };
  } else if (kind === 'train') {
    // The product's training step (src/train/trainer.ts): the frozen prefix runs outside the gradient tape, then
    // forward + backward of the trainable part, BCE + the head's L2, and the project's Adam (one fused kernel per
    // parameter on the native engine).
    const { Adam, weightedBceMean, l2Penalty } = await import(`${root}dist/src/train/index.js`);
    const labels = tf.tidy(() => tf.cast(tf.greater(tf.randomUniform([batch], 0, 1, 'float32', 3), 0.5), 'float32'));
    const vars = model.trainableVariables();
    const adam = new Adam(vars.map((v, i) => ({ name: String(i), variable: v })), { lr: 1e-5, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    const step = () => {
      tf.tidy(() => {
        const features = model.forwardFrozen(x);
        const { value, grads } = leanVariableGrads(
          () => tf.add(weightedBceMean(model.forwardTrainable(features, true), labels), l2Penalty(model.regularizedWeights(), 0.1)),
          vars,
        );
        adam.apply(grads);
        value.dataSync();
      });
    };
    const { seconds, profile } = timeRuns(step);
    result = { workload: `${arch} training step`, batch, size, frozenLayers: freeze, trainableVariables: vars.length, seconds, median: median(seconds), profile };
  } else {
    console.error(`bench: unknown workload '${kind}' (gemm, infer, train)`);
    process.exit(2);
  }
}
result.engine = info.description;
result.precision = precision;
result.maxRssMB = Math.round(process.resourceUsage().maxRSS / 1024);
result.numTensors = tf.memory().numTensors;
console.log(JSON.stringify(result));
