#!/usr/bin/env node
/**
 * ONNX Runtime inference benchmark: ResNet-152 (or --arch) with the MURA binary head at 320x320, exported by
 * src/models/onnx/export.ts and run by OnnxClassifier (onnxruntime-node, CPU) — per-image time at batch 1 and
 * batch 8, medians of several runs after warm-up, peak RSS. Prints one JSON object.
 *
 *   npm run build && node bench/onnx-inference.mjs [--arch resnet152] [--size 320] [--threads 2]
 *       [--reps1 7] [--reps8 3] [--warmup 1] [--weights resnet152.pth] [--no-fold] [--spin] [--layout nhwc|nchw]
 *       [--save model.onnx | --onnx model.onnx --gflop G]
 *
 * `--save FILE` only exports (and prints the export's facts); `--onnx FILE` only measures a session made from
 * that file, as a deployment would run it, so its peak RSS holds no TF.js model. `npm run bench` (bench/run.mjs)
 * runs the two in separate processes for its infer1/infer8 entries.
 *
 * Weights: torchvision's with a seeded binary head when --weights is given, else the seeded torchvision-style
 * initialisation (the compute per image does not depend on the values). GFLOP counts 2 x multiply-adds of every
 * conv and the classifier, from the network's own shapes.
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { median } from './lib/util.mjs';

const dist = new URL('../dist/src/', import.meta.url);
const { initEngine } = await import(new URL('engine/index.js', dist).href);
const { createModel } = await import(new URL('models/index.js', dist).href);
const { exportOnnx } = await import(new URL('models/onnx/export.js', dist).href);
const { OnnxClassifier } = await import(new URL('inference/node/onnx-session.js', dist).href);
const { readStateDict } = await import(new URL('models/weights/files.js', dist).href);
const { Bottleneck, BasicBlock, ResNet } = await import(new URL('models/resnet.js', dist).href);
const { Rng } = await import(new URL('util/rng.js', dist).href);

const { values: a } = parseArgs({
  options: {
    arch: { type: 'string', default: 'resnet152' },
    size: { type: 'string', default: '320' },
    threads: { type: 'string', default: '2' },
    reps1: { type: 'string', default: '7' },
    reps8: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    weights: { type: 'string' },
    'no-fold': { type: 'boolean', default: false },
    layout: { type: 'string', default: 'nhwc' },
    spin: { type: 'boolean', default: false },
    save: { type: 'string' },
    onnx: { type: 'string' },
    gflop: { type: 'string' },
  },
});
const size = Number(a.size);
const threads = Number(a.threads);


/** 2 x multiply-adds of a ResNet's convs + classifier at `size` (ResNet only; null for other families). */
function resnetGflop(net, size) {
  if (!(net instanceof ResNet)) return null;
  let macs = 0;
  const conv = (c, hw) => {
    const [k, , cin, cout] = c.weight.shape;
    const out = Math.floor((hw + 2 * c.padding - k) / c.stride) + 1;
    macs += k * k * cin * cout * out * out;
    return out;
  };
  let hw = conv(net.conv1, size);
  hw = Math.floor((hw + 2 - 3) / 2) + 1; // max-pool 3x3/2 pad 1
  for (const stage of net.stages) {
    for (const b of stage.blocks) {
      const inHw = hw;
      if (b instanceof Bottleneck) hw = conv(b.conv3, conv(b.conv2, conv(b.conv1, inHw)));
      else if (b instanceof BasicBlock) hw = conv(b.conv2, conv(b.conv1, inHw));
      if (b.downsample) conv(b.downsample.conv, inHw);
    }
  }
  macs += net.head.inFeatures * net.head.outFeatures;
  return (2 * macs) / 1e9;
}

let source, exported = null, gflop = a.gflop ? Number(a.gflop) : null, buildSeconds = null, exportSeconds = null;
if (a.onnx) {
  source = a.onnx;
} else {
  await initEngine(process.env.NEXTRAY_ENGINE ?? 'auto');
  const t0 = performance.now();
  const model = createModel(a.arch, { head: 'binary', seed: 0, init: a.weights ? 'none' : 'random' });
  if (a.weights) model.loadStateDict(await readStateDict(a.weights), { layout: 'auto', ignoreClassifier: true });
  buildSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  exported = exportOnnx(model, { inputSize: size, foldBatchNorm: !a['no-fold'], inputLayout: a.layout });
  source = exported.toBytes();
  exportSeconds = (performance.now() - t1) / 1000;
  gflop = resnetGflop(model.network, size);
  model.dispose();
  if (a.save) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(a.save, source);
    const facts = {
      saved: a.save, arch: a.arch, input_size: size, input_layout: a.layout, batchnorm: exported.metadata.batchnorm,
      gflop_per_image: gflop === null ? null : Number(gflop.toFixed(2)), onnx_mb: Number((exported.byteLength / 1e6).toFixed(1)),
      build_seconds: Number(buildSeconds.toFixed(2)), export_seconds: Number(exportSeconds.toFixed(2)),
    };
    process.stdout.write(JSON.stringify(facts, null, 2) + '\n');
    process.exit(0);
  }
}

const t2 = performance.now();
// OnnxClassifier's default: idle intra-op threads sleep; --spin restores ONNX Runtime's spin-waiting.
const clf = await OnnxClassifier.create(source, { threads, spinning: a.spin });
const createSeconds = (performance.now() - t2) / 1000;

const rng = new Rng(0);
const x8 = Float32Array.from({ length: 8 * size * size * 3 }, () => rng.normal(0, 1));
const x1 = x8.subarray(0, size * size * 3);

async function measure(n, x, reps) {
  // Warm-up (allocations, first-run kernel selection): at least one run, whatever --warmup says.
  for (let i = 0; i < Math.max(1, Number(a.warmup)); i++) await clf.run(x, n);
  const perImage = [];
  for (let i = 0; i < reps; i++) {
    const r = await clf.run(x, n);
    perImage.push(r.seconds / n);
  }
  return { batch: n, runs: reps, median_s_per_image: Number(median(perImage).toFixed(4)), s_per_image: perImage.map((s) => Number(s.toFixed(4))) };
}

const batch1 = await measure(1, x1, Number(a.reps1));
const batch8 = await measure(8, x8, Number(a.reps8));
await clf.release();

const require = createRequire(import.meta.url);
const result = {
  workload: `${a.arch}@${size} binary-head inference, onnxruntime-node`,
  arch: a.arch,
  input_size: size,
  source: a.onnx ? `file ${a.onnx} (no TF.js model in this process)` : 'exported in this process',
  input_layout: a.layout,
  batchnorm: exported ? exported.metadata.batchnorm : undefined,
  threads,
  spinning: a.spin,
  onnxruntime_node: require('onnxruntime-node/package.json').version,
  weights: a.weights ?? 'seeded random (torchvision-style init)',
  gflop_per_image: gflop === null ? null : Number(gflop.toFixed(2)),
  batch1: { ...batch1, gflops: gflop === null ? null : Number((gflop / batch1.median_s_per_image).toFixed(1)) },
  batch8: { ...batch8, gflops: gflop === null ? null : Number((gflop / batch8.median_s_per_image).toFixed(1)) },
  onnx_mb: exported ? Number((exported.byteLength / 1e6).toFixed(1)) : undefined,
  build_seconds: buildSeconds === null ? undefined : Number(buildSeconds.toFixed(2)),
  export_seconds: exportSeconds === null ? undefined : Number(exportSeconds.toFixed(2)),
  session_create_seconds: Number(createSeconds.toFixed(2)),
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), loadavg_1m: Number(loadavg()[0].toFixed(2)) },
};
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
