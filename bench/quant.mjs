#!/usr/bin/env node
/**
 * fp32 / fp16 / int8 ONNX exports compared: file size, ONNX Runtime latency (onnxruntime-node, CPU) at
 * batch 1 and 8 (the precisions of one model timed interleaved, medians), and — for a trained run — study-level AUC and Cohen's kappa from `nextray evaluate --model RUN
 * --onnx FILE` on a split. Prints one JSON document (and writes the .onnx files under --out).
 *
 *   npm run build && node bench/quant.mjs --run /work/demo/run --data /work/demo/data --out /tmp/quant \
 *       [--archs resnet50,resnet152] [--size 320] [--threads 2] [--reps1 5] [--reps8 2] [--calibration-images 256]
 *       [--method minmax] [--float-layers conv1,fc] [--select] [--split test] [--web] [--web-reps 3]
 *
 * --run: the trained run's best checkpoint is exported at its own input size; int8 is calibrated on --data's
 *   training images. --select first compares int8 variants (calibration method, layers kept in float) on the
 *   *validation* split and reports them (the defaults of `nextray export` were chosen this way).
 * --archs: zoo architectures at --size with seeded torchvision-style random weights and an untrained binary head
 *   (size and speed do not depend on the values; accuracy is not measured), int8 calibrated on 16 images of --data.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { median } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = new URL('../dist/src/', import.meta.url);
const { initEngine } = await import(new URL('engine/index.js', dist).href);
const { createModel } = await import(new URL('models/index.js', dist).href);
const { exportOnnx } = await import(new URL('models/onnx/export.js', dist).href);
const { saveOnnx } = await import(new URL('models/onnx/files.js', dist).href);
const { OnnxClassifier, ort } = await import(new URL('inference/node/onnx-session.js', dist).href);
const { datasetCalibrationImages } = await import(new URL('data/calibration-sample.js', dist).href);
const { applyPrecision } = await import(new URL('models/onnx/precision.js', dist).href);
const { parseCalibrationMethod } = await import(new URL('models/onnx/quantize.js', dist).href);
const { loadTrainedModel } = await import(new URL('inference/node/checkpoint.js', dist).href);
const { Rng } = await import(new URL('util/rng.js', dist).href);

const { values: a } = parseArgs({
  options: {
    run: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string', default: '/tmp/nextray-quant' },
    archs: { type: 'string', default: '' },
    size: { type: 'string', default: '320' },
    threads: { type: 'string', default: '2' },
    reps1: { type: 'string', default: '5' },
    reps8: { type: 'string', default: '2' },
    'calibration-images': { type: 'string', default: '256' },
    method: { type: 'string' },
    'float-layers': { type: 'string' },
    select: { type: 'boolean', default: false },
    split: { type: 'string', default: 'test' },
    web: { type: 'boolean', default: false },
    'web-reps': { type: 'string', default: '3' },
  },
});
const threads = Number(a.threads);
const out = resolve(a.out);
mkdirSync(out, { recursive: true });
await initEngine();

/**
 * Latency of several files of one model, measured interleaved (one run of each file in turn, repeated) so that
 * every precision sees the same load on a shared machine; medians per file.
 */
async function latencies(files, size) {
  const clfs = [];
  for (const f of files) clfs.push(await OnnxClassifier.create(f, { threads }));
  try {
    const rng = new Rng(9).fork('quant-bench');
    const x8 = Float32Array.from({ length: 8 * size * size * 3 }, () => rng.normal(0, 1));
    const res = files.map(() => ({}));
    for (const [batch, reps] of [[1, Number(a.reps1)], [8, Number(a.reps8)]]) {
      const x = x8.subarray(0, batch * size * size * 3);
      for (const clf of clfs) await clf.run(x, batch); // warm-up
      const times = files.map(() => []);
      for (let i = 0; i < reps; i++) {
        for (let k = 0; k < clfs.length; k++) {
          const t0 = performance.now();
          await clfs[k].run(x, batch);
          times[k].push((performance.now() - t0) / 1000);
        }
      }
      times.forEach((t, k) => {
        res[k][`batch${batch}_per_image_s`] = Number((median(t) / batch).toPrecision(4));
        res[k][`batch${batch}_runs_s`] = t.map((v) => Number(v.toPrecision(4)));
      });
    }
    return res;
  } finally {
    for (const c of clfs) await c.release();
  }
}

/**
 * --web: the same files in onnxruntime-web's wasm backend (run here in Node, one thread, as a page without
 * cross-origin isolation gets), batch 1, interleaved medians; max |probability - onnxruntime-node's| on that input.
 * Needs the onnxruntime-web package (the app's dependency).
 */
async function webLatencies(files, size) {
  let web;
  try {
    web = await import('onnxruntime-web');
  } catch (err) {
    return files.map(() => ({ web_error: `onnxruntime-web does not load: ${err.message}` }));
  }
  web.env.wasm.numThreads = 1;
  const rng = new Rng(10).fork('quant-bench-web');
  const x = Float32Array.from({ length: size * size * 3 }, () => rng.normal(0, 1));
  const sessions = [];
  for (const f of files) sessions.push(await web.InferenceSession.create(readFileSync(f)));
  const res = files.map(() => ({}));
  try {
    const outs = [];
    for (const s of sessions) outs.push((await s.run({ input: new web.Tensor('float32', x, [1, size, size, 3]) })).probability.data[0]);
    const times = files.map(() => []);
    for (let i = 0; i < Number(a['web-reps']); i++) {
      for (let k = 0; k < sessions.length; k++) {
        const t0 = performance.now();
        await sessions[k].run({ input: new web.Tensor('float32', x, [1, size, size, 3]) });
        times[k].push((performance.now() - t0) / 1000);
      }
    }
    for (let k = 0; k < files.length; k++) {
      const clf = await OnnxClassifier.create(files[k], { threads: 1 });
      const pn = (await clf.run(x, 1)).probabilities[0];
      await clf.release();
      res[k] = { web_wasm_batch1_s: Number(median(times[k]).toPrecision(4)), web_vs_node_max_abs_diff: Math.abs(outs[k] - pn) };
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  return res;
}

function evaluate(run, file, split) {
  const r = spawnSync(process.execPath, [join(root, 'bin/nextray.js'), 'evaluate', '--model', run, '--onnx', file, '--data', a.data, '--split', split, '--bootstrap', '200', '--json', '-'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) return { error: `evaluate exit ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` };
  const j = JSON.parse(r.stdout);
  const s = j.study.overall;
  const pick = (m) => (m && typeof m === 'object' && 'value' in m ? m.value : m);
  return { study_auc: pick(s.auc), study_kappa: pick(s.kappa ?? s.cohen_kappa), image_auc: pick(j.image.overall.auc), studies: s.count ?? s.n ?? null };
}

function precisionOpts(precision, extra = {}) {
  const o = { precision, threads };
  if (precision === 'int8') {
    o.calibration = datasetCalibrationImages(a.data);
    o.runtime = ort;
    o.calibrationImages = Number(a['calibration-images']);
    if (a.method) o.calibrationMethod = parseCalibrationMethod(a.method);
    if (a['float-layers']) o.floatLayers = a['float-layers'].split(',');
  }
  return { ...o, ...extra };
}

const report = {
  machine: { cpu: cpus()[0]?.model, cores: availableParallelism(), vnni: /avx512_vnni|avx_vnni/.test(readFileSync('/proc/cpuinfo', 'utf8')), load_start: loadavg().map((l) => Number(l.toFixed(2))) },
  threads,
  onnxruntime_node: JSON.parse(readFileSync(join(root, 'node_modules/onnxruntime-node/package.json'), 'utf8')).version,
};

if (a.run) {
  const loaded = loadTrainedModel(a.run, 'best');
  const size = loaded.preprocessing.size;
  const fp32 = exportOnnx(loaded.model, { inputSize: size, preprocessing: loaded.preprocessing, decisionThreshold: loaded.metadata.decisionThreshold ?? 0.5 });
  loaded.model.dispose();
  const demo = { run: a.run, arch: loaded.metadata.arch, input_size: size, split: a.split, precisions: {} };
  if (a.select) {
    // int8 variants on the validation split; the calibration statistics are gathered once per variant run here
    // (applyPrecision), which keeps this script on the public path.
    const P = (m) => ({ calibrationMethod: parseCalibrationMethod(m) });
    const variants = [
      ['minmax', {}],
      ['percentile-99.9', P('percentile-99.9')],
      ['percentile-99.99', P('percentile-99.99')],
      ['percentile-99.999', P('percentile-99.999')],
      ['minmax, conv1 float', { floatLayers: ['conv1'] }],
      ['percentile-99.99, conv1 float', { ...P('percentile-99.99'), floatLayers: ['conv1'] }],
      ['percentile-99.99, conv1+fc float', { ...P('percentile-99.99'), floatLayers: ['conv1', 'fc'] }],
    ];
    const f32file = join(out, 'demo-fp32.onnx');
    saveOnnx(f32file, (await applyPrecision(fp32, { precision: 'fp32' })).exported);
    demo.selection = { split: 'validation', fp32: evaluate(a.run, f32file, 'validation'), int8: {} };
    for (const [name, extra] of variants) {
      const file = join(out, `demo-int8-${name.replace(/[^a-z0-9.]+/gi, '_')}.onnx`);
      const r = await applyPrecision(fp32, precisionOpts('int8', { ...extra }));
      saveOnnx(file, r.exported);
      demo.selection.int8[name] = evaluate(a.run, file, 'validation');
      process.stderr.write(`select ${name}: ${JSON.stringify(demo.selection.int8[name])}\n`);
    }
  }
  for (const precision of ['fp32', 'fp16', 'int8']) {
    const file = join(out, `demo-${precision}.onnx`);
    const t0 = performance.now();
    const r = await applyPrecision(fp32, precisionOpts(precision));
    saveOnnx(file, r.exported);
    const row = { file, bytes: statSync(file).size, export_s: Number(((performance.now() - t0) / 1000).toFixed(2)) };
    if (r.report.calibration) row.calibration = r.report.calibration;
    if (r.report.floatLayers) row.float_layers = r.report.floatLayers;
    Object.assign(row, evaluate(a.run, file, a.split));
    demo.precisions[precision] = row;
    process.stderr.write(`demo ${precision}: ${JSON.stringify(row)}\n`);
  }
  const lat = await latencies(Object.values(demo.precisions).map((r) => r.file), size);
  Object.values(demo.precisions).forEach((r, k) => Object.assign(r, lat[k]));
  if (a.web) {
    const w = await webLatencies(Object.values(demo.precisions).map((r) => r.file), size);
    Object.values(demo.precisions).forEach((r, k) => Object.assign(r, w[k]));
  }
  report.demo = demo;
}

for (const arch of a.archs.split(',').filter(Boolean)) {
  const size = Number(a.size);
  const model = createModel(arch, { head: 'binary', seed: 0 });
  const fp32 = exportOnnx(model, { inputSize: size });
  model.dispose();
  const entry = { arch, input_size: size, weights: 'seeded torchvision-style random initialisation, untrained binary head', precisions: {} };
  for (const precision of ['fp32', 'fp16', 'int8']) {
    const file = join(out, `${arch}-${precision}.onnx`);
    const t0 = performance.now();
    const r = await applyPrecision(fp32, precisionOpts(precision, precision === 'int8' ? { calibrationImages: 16, calibrationBatch: 1 } : {}));
    saveOnnx(file, r.exported);
    const row = { file, bytes: statSync(file).size, export_s: Number(((performance.now() - t0) / 1000).toFixed(1)) };
    entry.precisions[precision] = row;
    process.stderr.write(`${arch} ${precision}: ${JSON.stringify(row)}\n`);
  }
  const lat = await latencies(Object.values(entry.precisions).map((r) => r.file), size);
  Object.values(entry.precisions).forEach((r, k) => Object.assign(r, lat[k]));
  if (a.web) {
    const w = await webLatencies(Object.values(entry.precisions).map((r) => r.file), size);
    Object.values(entry.precisions).forEach((r, k) => Object.assign(r, w[k]));
  }
  process.stderr.write(`${arch}: ${JSON.stringify(entry.precisions)}\n`);
  (report.archs ??= []).push(entry);
}
report.load_end = loadavg().map((l) => Number(l.toFixed(2)));
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
