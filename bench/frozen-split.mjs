#!/usr/bin/env node
/**
 * Frozen-prefix split benchmark: one training step (forward, BCE + L2, gradients, Adam update: what
 * src/train/trainer.ts does per batch) of ResNet-152 with the binary head and 148 of 152 layers frozen, with the
 * whole forward under the gradient tape ("unsplit") vs the frozen prefix computed outside it by
 * model.forwardFrozen and only model.forwardTrainable under the tape ("split"). Each mode runs in its own child
 * process so peak RSS (getrusage maxrss) belongs to that mode alone. Prints one JSON object.
 *
 *   npm run build && node bench/frozen-split.mjs [--arch resnet152] [--frozen 148] [--batch 16] [--size 320]
 *       [--steps 1] [--engine native|cpu] [--modes unsplit,split]
 *
 * `tape_bytes` is tf.memory().numBytes right after the forward inside tf.variableGrads: what the tape holds for
 * backward (plus the weights, Adam moments and batch, `state_bytes`). Both modes use the same seed, so `loss` must agree.
 */
import { spawnSync } from 'node:child_process';
import { loadavg, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values: a } = parseArgs({
  options: {
    arch: { type: 'string', default: 'resnet152' },
    frozen: { type: 'string', default: '148' },
    batch: { type: 'string', default: '16' },
    size: { type: 'string', default: '320' },
    steps: { type: 'string', default: '1' },
    engine: { type: 'string', default: 'native' },
    modes: { type: 'string', default: 'unsplit,split' },
    child: { type: 'string' },
  },
});

if (a.child) {
  const dist = new URL('../dist/src/', import.meta.url);
  const { initEngine, engineInfo, tf } = await import(new URL('engine/index.js', dist).href);
  const { createModel } = await import(new URL('models/index.js', dist).href);
  const { Adam } = await import(new URL('train/adam.js', dist).href);
  const { weightedBceMean, l2Penalty } = await import(new URL('train/losses.js', dist).href);
  let fallback = null;
  try {
    await initEngine(a.engine);
  } catch (err) {
    fallback = err.message;
    await initEngine('cpu');
  }
  const split = a.child === 'split';
  const [batch, size] = [Number(a.batch), Number(a.size)];
  const model = createModel(a.arch, { head: 'binary', dropout: 0.5, seed: 1 });
  model.freezeLayers(Number(a.frozen));
  model.reseedDropout('bench');
  const sd = model.stateDict();
  const trainable = new Set(model.trainableVariables());
  const params = [...sd].filter(([, v]) => trainable.has(v)).map(([name, variable]) => ({ name, variable }));
  const adam = new Adam(params, { lr: 1e-5, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
  const x = tf.randomNormal([batch, size, size, 3], 0, 1, 'float32', 3);
  const y = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2));
  const stateBytes = tf.memory().numBytes; // weights, batchnorm buffers, Adam moments, x, y
  const rssBeforeMiB = process.memoryUsage().rss / 2 ** 20;
  const seconds = [];
  const losses = [];
  let tapeBytes = 0;
  let frozenSeconds = 0;
  for (let s = 0; s < Number(a.steps); s++) {
    const t0 = performance.now();
    tf.tidy(() => {
      // The trainer's step, with the frozen prefix out of the tape in split mode.
      const feats = split ? model.forwardFrozen(x) : null;
      if (split) {
        feats.dataSync();
        frozenSeconds = (performance.now() - t0) / 1000;
      }
      const { value, grads } = tf.variableGrads(() => {
        const z = split ? model.forwardTrainable(feats, true) : model.forward(x, true);
        tapeBytes = Math.max(tapeBytes, tf.memory().numBytes);
        return tf.add(weightedBceMean(z, y), l2Penalty(model.regularizedWeights(), 0.1));
      }, params.map((p) => p.variable));
      adam.apply(grads);
      losses.push(value.dataSync()[0]);
    });
    seconds.push((performance.now() - t0) / 1000);
  }
  const out = {
    mode: a.child,
    engine: engineInfo().description,
    ...(fallback ? { engine_fallback: fallback } : {}),
    frozen_prefix_layers: model.frozenPrefixLayers(),
    step_seconds: seconds,
    ...(split ? { frozen_forward_seconds_last_step: frozenSeconds } : {}),
    loss: losses,
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    rss_after_build_mib: Math.round(rssBeforeMiB),
    state_bytes: stateBytes,
    tape_bytes: tapeBytes,
    // Equal to state_bytes unless the step leaked.
    tensor_bytes_after: tf.memory().numBytes,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
const runs = [];
const load = { before: loadavg().map((v) => +v.toFixed(2)) };
for (const mode of a.modes.split(',')) {
  const args = [self, '--child', mode, ...['arch', 'frozen', 'batch', 'size', 'steps', 'engine'].flatMap((k) => [`--${k}`, a[k]])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    throw new Error(`bench child '${mode}' failed with exit code ${r.status}`);
  }
  runs.push(JSON.parse(r.stdout.trim().split('\n').pop()));
  process.stderr.write(`${mode}: ${JSON.stringify(runs.at(-1))}\n`);
}
load.after = loadavg().map((v) => +v.toFixed(2));
console.log(
  JSON.stringify({
    arch: a.arch,
    frozen: Number(a.frozen),
    batch: Number(a.batch),
    size: Number(a.size),
    cpus: cpus().length,
    load_average_1_5_15: load,
    runs,
  }),
);
