#!/usr/bin/env node
/**
 * The frozen-feature cache benchmark (`npm run bench -- --only fcache152`, or directly): the seed report's recipe,
 * ResNet-152 with 148 of 152 layers frozen, 320 px, batch 16, on >= 1,000 synthetic training images (nextray synth
 * data, generated once into --data). Each measurement runs in its own child process, so its peak RSS is its own:
 *
 *   uncached   `train()` with --no-feature-cache, 1 epoch: seconds per training epoch (the frozen prefix in every step)
 *   extract    `train()` with an empty cache folder, 1 epoch: the extraction (both variants of every training image,
 *              as-stored validation images) then one cached epoch; extraction seconds from summary.json
 *   inference  one plain inference pass over the same training images and variants: model.forward on each batch and
 *              on it mirrored, batch 16, decoding on 2 workers (what extraction is measured against)
 *   cached     `train()` over the now complete cache, --epochs epochs: seconds per training epoch from the second on;
 *              first, a few trainable-only steps on random features of the prefix's output shape (what a cached step
 *              cannot avoid), to show where the rest of a cached step goes
 *
 * Prints one JSON object: per mode seconds, images per second and peak RSS; the ratios (uncached / cached epoch,
 * extraction / inference); the cache's record size and index; and the projection for full MURA (36,808 training
 * images, both variants, 2,558 validation images, 10 epochs) on this machine, cached and uncached, from the rates.
 *
 *   npm run build && node bench/feature-cache.mjs [--images 1000] [--epochs 3] [--precision fp16] [--engine native]
 *       [--arch resnet152] [--frozen 148] [--size 320] [--batch 16] [--val 32] [--data DIR] [--cache DIR]
 *       [--weights resnet152.safetensors] [--modes uncached,extract,inference,cached]
 * Without --weights the network is the seeded random init with zero_init_residual (see the parent below).
 * Under an ISA cap: ONEDNN_MAX_CPU_ISA=AVX2 node bench/feature-cache.mjs ... (bench/run.mjs --isa avx2 sets it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, readdirSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { median } from './lib/util.mjs';

const { values: a } = parseArgs({
  options: {
    images: { type: 'string', default: '1000' },
    epochs: { type: 'string', default: '3' },
    precision: { type: 'string', default: 'fp16' },
    engine: { type: 'string', default: 'native' },
    arch: { type: 'string', default: 'resnet152' },
    frozen: { type: 'string', default: '148' },
    size: { type: 'string', default: '320' },
    batch: { type: 'string', default: '16' },
    val: { type: 'string', default: '32' },
    data: { type: 'string' },
    cache: { type: 'string' },
    weights: { type: 'string' },
    modes: { type: 'string', default: 'uncached,extract,inference,cached' },
    child: { type: 'string' },
    run: { type: 'string' },
  },
});
const dist = new URL('../dist/src/', import.meta.url);
const mib = () => Math.round(process.resourceUsage().maxRSS / 1024);

/** The training config every mode shares (the report's recipe on the bench data). */
function trainConfig(extra) {
  return {
    data: a.data,
    weights: a.weights,
    arch: a.arch,
    frozenLayers: Number(a.frozen),
    inputSize: Number(a.size),
    batchSize: Number(a.batch),
    lr: 1e-5,
    l2: 0.1,
    dropout: 0.5,
    hflip: true,
    seed: 0,
    engine: a.engine,
    workers: 2,
    // All training images (the data is generated with just over --images of them); a small validation sample.
    maxTrainImages: Number(a.images),
    maxValImages: Number(a.val),
    plateauPatience: 0,
    earlyStopPatience: 0,
    featurePrecision: a.precision,
    ...extra,
  };
}

async function trainChild(extra, runDir) {
  const { resolveConfig } = await import(new URL('train/config.js', dist).href);
  const { train } = await import(new URL('train/trainer.js', dist).href);
  const lines = [];
  const res = await train(resolveConfig([{ values: trainConfig(extra), source: 'bench' }]), { runDir, quiet: true, echo: (l) => lines.push(l) });
  const history = res.state.history;
  const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
  return {
    engine: res.engine.description,
    epochs: history.map((m) => ({
      epoch: m.epoch,
      train_images: m.train_images,
      train_seconds: +(m.train_images / m.images_per_second).toFixed(2),
      epoch_seconds: +m.seconds.toFixed(2),
      val_images: m.val_images,
      features_cached: m.features_cached,
      features_computed: m.features_computed,
      train_loss: m.train_loss,
    })),
    feature_cache: summary.feature_cache,
    log: lines.filter((l) => /feature cache|frozen prefix/.test(l)),
  };
}

/**
 * GFLOP per image (2 x multiply-adds of the convs and the classifier) of a ResNet-shaped network (torchvision's
 * ResNets, resnet-slim) at `size`, split at the frozen prefix: { prefix, trainable }; null for other families.
 * The walk follows bench/onnx-inference.mjs; a block belongs to the prefix when its first conv is a prefix unit.
 */
function prefixSplitGflop(model, size) {
  const net = model.network;
  if (!net?.conv1 || !Array.isArray(net.stages)) return null;
  const prefix = new Set(model.frozenPrefixUnits().map((u) => u.name));
  const macs = { prefix: 0, trainable: 0 };
  const conv = (c, hw, side) => {
    const k = c.kernelSize;
    const out = Math.floor((hw + 2 * c.padding - k) / c.stride) + 1;
    macs[side] += k * k * c.inChannels * c.outChannels * out * out;
    return out;
  };
  let hw = conv(net.conv1, size, prefix.has('conv1') ? 'prefix' : 'trainable');
  if (net.stemPool ?? true) hw = Math.floor((hw + 2 - 3) / 2) + 1; // max-pool 3x3/2 pad 1
  net.stages.forEach((stage, i) => {
    stage.blocks.forEach((b, j) => {
      const side = prefix.has(`layer${i + 1}.${j}.conv1`) ? 'prefix' : 'trainable';
      const inHw = hw;
      hw = conv(b.conv2, conv(b.conv1, inHw, side), side);
      if (b.conv3) hw = conv(b.conv3, hw, side);
      if (b.downsample) conv(b.downsample.conv, inHw, side);
    });
  });
  macs.trainable += net.head.inFeatures * net.head.outFeatures;
  return { prefix: (2 * macs.prefix) / 1e9, trainable: (2 * macs.trainable) / 1e9 };
}

/** One measurement in this (child) process: prints its JSON line on stdout. */
async function runChild() {
  const { initEngine, tf, leanVariableGrads } = await import(new URL('engine/index.js', dist).href);
  const info = await initEngine(a.engine);
  let out;
  if (a.child === 'uncached') {
    out = await trainChild({ featureCache: 'off', epochs: 1 }, a.run);
  } else if (a.child === 'extract') {
    out = await trainChild({ featureCache: a.cache, epochs: 1 }, a.run);
  } else if (a.child === 'cached') {
    // The trainable part alone on random features (forwardTrainable + backward + Adam, as trainer.ts trainStep).
    const { createModel } = await import(new URL('models/index.js', dist).href);
    const { Adam, weightedBceMean, l2Penalty } = await import(new URL('train/index.js', dist).href);
    const model = createModel(a.arch, { head: 'binary', dropout: 0.5, seed: 1 });
    model.freezeLayers(Number(a.frozen));
    const shape = tf.tidy(() => model.forwardFrozen(tf.zeros([1, Number(a.size), Number(a.size), 3])).shape.slice(1));
    const b = Number(a.batch);
    const feats = tf.randomUniform([b, ...shape], 0, 2, 'float32', 3);
    const y = tf.tensor1d(Array.from({ length: b }, (_, i) => i % 2));
    const vars = model.trainableVariables();
    const adam = new Adam(vars.map((v, i) => ({ name: String(i), variable: v })), { lr: 1e-5, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    const secs = [];
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      tf.tidy(() => {
        const { value, grads } = leanVariableGrads(() => tf.add(weightedBceMean(model.forwardTrainable(feats, true), y), l2Penalty(model.regularizedWeights(), 0.1)), vars);
        adam.apply(grads);
        value.dataSync();
      });
      if (i) secs.push((performance.now() - t0) / 1000);
    }
    const trainableStep = secs.sort((p, q) => p - q)[1];
    const gflop = prefixSplitGflop(model, Number(a.size));
    adam.dispose();
    model.dispose();
    feats.dispose();
    y.dispose();
    out = { trainable_step_seconds: +trainableStep.toFixed(3), prefix_output_shape: shape, gflop_per_image: gflop, ...(await trainChild({ featureCache: a.cache, epochs: Number(a.epochs) }, a.run)) };
    // What a cached step spends on its features: positioned reads of records (and fp16 decoding) from the store the
    // epochs just used, in a seeded random order like an epoch's, with the page cache as the epochs left it.
    const { FeatureStore } = await import(new URL('train/feature-cache/store.js', dist).href);
    const { Rng } = await import(new URL('util/rng.js', dist).href);
    const fcDir = out.feature_cache?.dir;
    if (fcDir && existsSync(join(fcDir, 'meta.json'))) {
      const { keySet } = JSON.parse(readFileSync(join(fcDir, 'meta.json'), 'utf8'));
      const store = FeatureStore.open(dirname(fcDir), keySet, { readOnly: true });
      try {
        const entries = store.entries();
        const order = new Rng(5).fork('read-bench').shuffle(entries.map((_, i) => i));
        const buf = new Float32Array(b * store.values);
        const t0 = performance.now();
        let reads = 0;
        for (const i of order) {
          const [hash, variant] = entries[i];
          if (store.read(hash, variant, buf, (reads % b) * store.values)) reads++;
        }
        const seconds = (performance.now() - t0) / 1000;
        out.feature_read = { entries: reads, seconds: +seconds.toFixed(3), seconds_per_entry: +(seconds / Math.max(reads, 1)).toFixed(6), record_bytes: store.recordBytes };
      } finally {
        store.close();
      }
    }
  } else if (a.child === 'inference') {
    const { loadMuraDataset } = await import(new URL('data/mura.js', dist).href);
    const { BatchLoader } = await import(new URL('data/loader.js', dist).href);
    const { makePreprocessing } = await import(new URL('data/preprocess.js', dist).href);
    const { createModel } = await import(new URL('models/index.js', dist).href);
    const ds = await loadMuraDataset(a.data);
    // The trainer's selection of at most --images training images (same seeded subset).
    const all = ds.images.filter((r) => r.split === 'train');
    const { Rng } = await import(new URL('util/rng.js', dist).href);
    const max = Number(a.images);
    const records = all.length <= max ? all : new Rng(0).fork('train-subset').shuffle(all.map((_, i) => i)).slice(0, max).sort((p, q) => p - q).map((i) => all[i]);
    const model = createModel(a.arch, { head: 'binary', dropout: 0.5, seed: 0 });
    const { readStateDict } = await import(new URL('models/weights/files.js', dist).href);
    model.loadStateDict(await readStateDict(a.weights), { strict: true, layout: 'auto', ignoreClassifier: true, source: a.weights });
    model.freezeLayers(Number(a.frozen));
    const size = Number(a.size);
    const loader = new BatchLoader(records, { batchSize: Number(a.batch), shuffle: false, augment: false, preprocessing: makePreprocessing({ size }), workers: 2 });
    const t0 = performance.now();
    let n = 0;
    for await (const batch of loader.epoch(0)) {
      tf.tidy(() => {
        const x = tf.tensor4d(batch.x, [batch.n, size, size, 3]);
        model.forward(x, false).dataSync();
        model.forward(tf.reverse(x, 2), false).dataSync();
      });
      n += 2 * batch.n;
    }
    await loader.close();
    const seconds = (performance.now() - t0) / 1000;
    model.dispose();
    out = { engine: info.description, forwards: n, seconds: +seconds.toFixed(2), images_per_second: +(n / seconds).toFixed(2) };
  } else throw new Error(`unknown child mode ${a.child}`);
  out.peak_rss_mib = mib();
  out.engine_isa = info.native?.isa ?? info.engine;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

if (a.child) {
  try {
    await runChild();
  } catch (err) {
    // One readable failure for the parent's summary: the message, the hint only where the error has one, and a
    // stack only for a programming error (a NextrayError is a user-facing refusal and carries its own advice).
    const lines = [`fcache bench (${a.child}): ${err?.message ?? String(err)}`];
    if (typeof err?.hint === 'string' && err.hint) lines.push(`hint: ${err.hint}`);
    if (typeof err?.exitStatus !== 'number' && err?.stack) lines.push(err.stack.split('\n').slice(1, 3).join(' | ').trim());
    process.stderr.write(lines.join('\n') + '\n');
    process.exit(1);
  }
}

// ---- parent ----
const self = fileURLToPath(import.meta.url);
const work = mkdtempSync(join(tmpdir(), 'nextray-fcache-bench-'));
const data = a.data ? resolve(a.data) : join(work, 'data');
const cache = a.cache ? resolve(a.cache) : join(work, 'cache');
const load = { start: loadavg().map((v) => +v.toFixed(2)) };
const report = {
  workload: `${a.arch}, ${a.frozen} frozen, ${a.size} px, batch ${a.batch}, feature cache ${a.precision}`,
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, isa_cap: process.env.ONEDNN_MAX_CPU_ISA ?? null },
  settings: { images: Number(a.images), epochs: Number(a.epochs), val_images: Number(a.val), engine: a.engine },
};
try {
  if (!existsSync(join(data, 'MURA-v1.1'))) {
    process.stderr.write(`fcache bench: generating synthetic MURA data for >= ${a.images} training images in ${data} ...\n`);
    const { generateSyntheticMura } = await import(new URL('data/synth/index.js', dist).href);
    // ~2.7 images per study, 80% of patients in train: studies for a few more training images than asked (12% and
    // 16 studies to spare: small sets vary more around the averages).
    await generateSyntheticMura({ outDir: data, studies: Math.ceil((Number(a.images) / 2.7 / 0.8) * 1.12) + 16, seed: 24, size: Number(a.size) });
  }
  const { loadMuraDataset } = await import(new URL('data/mura.js', dist).href);
  const trainImages = (await loadMuraDataset(data)).images.filter((r) => r.split === 'train').length;
  if (trainImages < Number(a.images)) throw new Error(`${data} has ${trainImages} training images, fewer than --images ${a.images}; remove it (or give another --data) to generate more`);
  report.settings.data = data;
  // Starting weights. Without --weights: the architecture's seeded random init with every residual block's last
  // batchnorm scale at zero (torchvision's zero_init_residual=True). With untrained batchnorm statistics (mean 0,
  // variance 1) and frozen batchnorms, a plain random ResNet-152 doubles its activations' variance in each of its 50
  // residual sums, and its features leave the float16 range; the arithmetic, and so every timing, is the same.
  const weights = a.weights ? resolve(a.weights) : join(work, `${a.arch}-zero-init-residual.safetensors`);
  if (!a.weights) {
    const { createModel } = await import(new URL('models/index.js', dist).href);
    const { writeSafetensorsFile } = await import(new URL('models/weights/files.js', dist).href);
    await (await import(new URL('engine/index.js', dist).href)).initEngine('cpu');
    const m = createModel(a.arch, { head: 'binary', seed: 0 });
    const sd = m.exportStateDict();
    const last = [...sd.keys()].some((k) => /\.bn3\.weight$/.test(k)) ? /^layer\d+\.\d+\.bn3\.weight$/ : /^layer\d+\.\d+\.bn2\.weight$/;
    for (const [k, t] of sd) if (last.test(k)) sd.set(k, { ...t, data: new Float32Array(t.data.length) });
    writeSafetensorsFile(weights, sd);
    m.dispose();
  }
  report.settings.weights = a.weights ? weights : 'seeded random init, zero_init_residual (see the script header)';
  report.settings.train_images_available = trainImages;

  const modes = a.modes.split(',');
  const results = {};
  const child = (mode) => {
    process.stderr.write(`fcache bench: ${mode} ...\n`);
    const run = join(work, `run-${mode}`);
    rmSync(run, { recursive: true, force: true });
    const args = [self, '--child', mode, '--run', run, '--data', data, '--cache', cache, '--weights', weights, ...['images', 'epochs', 'precision', 'engine', 'arch', 'frozen', 'size', 'batch', 'val'].flatMap((k) => [`--${k}`, a[k]])];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26, env: process.env });
    const line = (r.stdout || '').trim().split('\n').filter((l) => l.startsWith('{')).pop();
    if (r.status !== 0 || !line) return { error: `exit ${r.status ?? r.signal}: ${(r.stderr || '').trim().split('\n').slice(-4).join(' | ')}` };
    const res = JSON.parse(line);
    res.load_average_after = loadavg().map((v) => +v.toFixed(2));
    process.stderr.write(`fcache bench: ${mode}: ${JSON.stringify({ ...res, log: undefined })}\n`);
    return res;
  };
  if (modes.includes('extract')) rmSync(cache, { recursive: true, force: true });
  for (const m of ['uncached', 'extract', 'inference', 'cached']) if (modes.includes(m)) results[m] = child(m);
  report.results = results;

  // Derived numbers.
  const u = results.uncached?.epochs?.[0];
  const cachedEpochs = results.cached?.epochs?.slice(1) ?? [];
  const cachedTrain = median(cachedEpochs.map((e) => e.train_seconds));
  const fc = results.extract?.feature_cache ?? results.cached?.feature_cache;
  const derived = {};
  if (u && cachedTrain) {
    derived.uncached_train_seconds_per_epoch = u.train_seconds;
    derived.cached_train_seconds_per_epoch = cachedTrain;
    derived.speedup_cached_over_uncached = +(u.train_seconds / cachedTrain).toFixed(2);
    derived.target_speedup_10x_met = u.train_seconds / cachedTrain >= 10;
    const steps = Math.ceil(cachedEpochs[0].train_images / Number(a.batch));
    const tStep = results.cached.trainable_step_seconds;
    derived.cached_step_seconds = +(cachedTrain / steps).toFixed(3);
    derived.trainable_only_step_seconds = tStep;
    derived.cached_step_overhead_seconds = +(cachedTrain / steps - tStep).toFixed(3);
    derived.uncached_epoch_seconds_with_validation = u.epoch_seconds;
    derived.cached_epoch_seconds_with_validation = median(cachedEpochs.map((e) => e.epoch_seconds));
    // Where the rest goes: the arithmetic bound says how much faster a cached step would be if every FLOP cost the
    // same; the measured parts of a cached step and the FLOP rates of the prefix and of the trainable part say why
    // the measured speedup falls short of it.
    const b = Number(a.batch);
    const uStep = u.train_seconds / Math.ceil(u.train_images / b);
    const cStep = cachedTrain / steps;
    const g = results.cached.gflop_per_image;
    const read = results.cached.feature_read;
    const rest = { uncached_step_seconds: +uStep.toFixed(3), cached_step_seconds: +cStep.toFixed(3), measured_speedup: +(uStep / cStep).toFixed(2) };
    if (g) {
      const uncachedGflop = g.prefix + 3 * g.trainable;
      Object.assign(rest, {
        gflop_per_image: { prefix_forward: +g.prefix.toFixed(2), trainable_forward: +g.trainable.toFixed(3), uncached_step: +uncachedGflop.toFixed(2), cached_step: +(3 * g.trainable).toFixed(3) },
        arithmetic_bound_speedup: +(uncachedGflop / (3 * g.trainable)).toFixed(1),
        assumption: 'a step = the prefix forward (uncached only) + the trainable part forward and backward (backward = 2 x forward)',
        // The prefix's share of an uncached step, and the FLOP rates each part reaches (same batch, same engine).
        uncached_prefix_seconds_per_step: +(uStep - tStep).toFixed(3),
        prefix_gflop_per_second: +((g.prefix * b) / Math.max(uStep - tStep, 1e-9)).toFixed(1),
        trainable_gflop_per_second: +((3 * g.trainable * b) / tStep).toFixed(1),
      });
    }
    Object.assign(rest, {
      cached_step_parts_seconds: {
        trainable_compute: tStep,
        feature_reads: read ? +(read.seconds_per_entry * b).toFixed(4) : null,
        other: read ? +(cStep - tStep - read.seconds_per_entry * b).toFixed(4) : +(cStep - tStep).toFixed(4),
        other_is: 'batch assembly (order, flips), feature tensor upload, loss and accuracy readback, Adam bookkeeping, progress',
      },
    });
    derived.where_the_rest_goes = rest;
  }
  derived.peak_rss_mib = Object.fromEntries(['uncached', 'extract', 'inference', 'cached'].filter((m) => results[m]).map((m) => [m, results[m].peak_rss_mib ?? null]));
  if (results.cached?.feature_read) derived.feature_read = results.cached.feature_read;
  if (results.extract?.feature_cache && results.inference?.seconds) {
    derived.extraction_seconds = +fc.extraction_seconds.toFixed(2);
    derived.extracted_entries = fc.extracted;
    derived.inference_pass_seconds = results.inference.seconds;
    derived.inference_forwards = results.inference.forwards;
    // Extraction also does the validation images (as stored); compare per entry.
    derived.extraction_seconds_per_entry = +(fc.extraction_seconds / fc.extracted).toFixed(4);
    derived.inference_seconds_per_forward = +(results.inference.seconds / results.inference.forwards).toFixed(4);
    derived.ratio_extraction_over_inference_per_image = +(derived.extraction_seconds_per_entry / derived.inference_seconds_per_forward).toFixed(3);
    derived.target_extraction_at_most_inference_met = derived.ratio_extraction_over_inference_per_image <= 1;
  }
  if (fc) {
    derived.record_bytes = fc.record_bytes;
    derived.entry_shape = fc.entry_shape;
    const storeDir = fc.dir;
    if (existsSync(storeDir)) {
      derived.cache_bytes_on_disk = readdirSync(storeDir).reduce((n, f) => n + statSync(join(storeDir, f)).size, 0);
      derived.index_bin_bytes = statSync(join(storeDir, 'index.bin')).size;
    }
    derived.index_log = results.cached?.log?.find((l) => /index /.test(l)) ?? null;
  }
  // Full MURA, the report's configuration: 36,808 training images (both variants), 2,558 validation images
  // (80% of MURA valid), 10 epochs, on this machine at the measured rates.
  if (u && cachedTrain && fc && results.extract && results.cached) {
    const N = 36808;
    const V = 2558;
    const E = 10;
    const perImgUncached = u.train_seconds / u.train_images;
    const uVal = results.uncached.epochs[0];
    const valPerImgUncached = (uVal.epoch_seconds - uVal.train_seconds) / uVal.val_images;
    const perImgCached = cachedTrain / cachedEpochs[0].train_images;
    const cVal = median(cachedEpochs.map((e) => (e.epoch_seconds - e.train_seconds) / e.val_images));
    const perEntry = fc.extraction_seconds / fc.extracted;
    const uncachedH = (E * (N * perImgUncached + V * valPerImgUncached)) / 3600;
    const extractH = ((2 * N + V) * perEntry) / 3600;
    const cachedH = extractH + (E * (N * perImgCached + V * cVal)) / 3600;
    derived.projection_full_mura = {
      assumptions: `${N} training images x 2 variants + ${V} validation images, ${E} epochs, this machine's measured rates (validation included)`,
      uncached_hours: +uncachedH.toFixed(2),
      cached_hours: +cachedH.toFixed(2),
      of_which_extraction_hours: +extractH.toFixed(2),
      cached_epoch_minutes: +(((N * perImgCached + V * cVal) / 60)).toFixed(1),
      uncached_epoch_minutes: +(((N * perImgUncached + V * valPerImgUncached) / 60)).toFixed(1),
      disk_gib: +(((2 * N + V) * fc.record_bytes) / 2 ** 30).toFixed(1),
    };
  }
  report.derived = derived;
} finally {
  load.end = loadavg().map((v) => +v.toFixed(2));
  report.load_average = load;
  // The runs, and the data and cache unless --data / --cache put them elsewhere (kept there for the next run).
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify(report, null, 2));
// A bench whose runs failed must not look like a result to a script: exit 1 when any mode failed.
const failed = Object.entries(report.results ?? {}).filter(([, r]) => r?.error);
if (failed.length) {
  process.stderr.write(`fcache bench: ${failed.length} mode(s) failed: ${failed.map(([m, r]) => `${m}: ${r.error}`).join('; ')}\n`);
  process.exitCode = 1;
}
