#!/usr/bin/env node
/**
 * `nextray predict` benchmark, one JSON document on stdout:
 *   - cold start: `nextray predict --model resnet152.onnx one.png` as a whole process (wall time, median of --runs)
 *     beside PyTorch loading the same network (the same weights, saved by PyTorch) and running one image as a whole
 *     process (bench/torch_predict.py); target ours <= 0.5x PyTorch;
 *   - throughput over a folder of --images MURA-sized PNGs (512 px on the long side) at batch 8, seconds per image
 *     after the model is open (predict's --json: seconds - setup_seconds), beside ONNX Runtime's batch-8 inference
 *     alone on the same file (bench/onnx-inference.mjs); target ours <= 1.2x.
 *
 *   npm run build && node bench/predict.mjs [--runs 3] [--images 32] [--no-torch] [--keep DIR] [--folder-only | --cold-only]
 *
 * The cold start is measured with ONNX Runtime's optimised graph cached beside the model (predict's default, after
 * a first run that writes it) and with --no-onnx-cache.
 *
 * Set-up (not timed): PyTorch writes a seeded ResNet-152 (binary head) as a .pth, `nextray export` turns the same
 * file into resnet152.onnx at 320 px, sharp writes the PNGs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { median } from './lib/util.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: a } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    images: { type: 'string', default: '32' },
    'no-torch': { type: 'boolean', default: false },
    keep: { type: 'string' },
    'folder-only': { type: 'boolean', default: false },
    'cold-only': { type: 'boolean', default: false },
  },
});
const runs = Number(a.runs);
const nImages = Number(a.images);
const PYTHON = '/usr/bin/python3';
const dir = a.keep ?? mkdtempSync(join(tmpdir(), 'nextray-bench-predict-'));
mkdirSync(dir, { recursive: true });
const log = (s) => process.stderr.write(`bench predict: ${s}\n`);
const r3 = (x) => Math.round(x * 1000) / 1000;

function timed(cmd, args) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  return { seconds, stdout: r.stdout };
}

const report = { date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadAverageAtStart: loadavg().map(r3) }, settings: { runs, images: nImages, arch: 'resnet152', size: 320, batch: 8, threads: 2 } };
try {
  const pth = join(dir, 'resnet152.pth');
  const onnx = join(dir, 'resnet152.onnx');
  const haveTorch = !a['no-torch'] && spawnSync(PYTHON, ['-c', 'import torch, torchvision, PIL'], { encoding: 'utf8' }).status === 0;
  if (!existsSync(onnx)) {
    if (haveTorch) {
      log('PyTorch writes the seeded ResNet-152 ...');
      timed(PYTHON, ['bench/torch_predict.py', 'save', pth]);
      log('nextray export (the same weights) ...');
      timed(process.execPath, ['bin/nextray.js', 'export', '--arch', 'resnet152', '--weights', pth, '--out', onnx, '--input-size', '320']);
    } else {
      log('no PyTorch: exporting a seeded ResNet-152 from TF.js ...');
      timed(process.execPath, ['bench/onnx-inference.mjs', '--arch', 'resnet152', '--size', '320', '--save', onnx]);
    }
  }
  const imgDir = join(dir, 'pngs');
  if (!existsSync(imgDir)) {
    mkdirSync(imgDir);
    for (let i = 0; i < nImages; i++) {
      // MURA-sized greyscale radiograph stand-ins: 512 px on the long side, varying aspect ratio.
      const w = i % 2 ? 512 : 400 + (i % 5) * 20;
      const h = i % 2 ? 380 + (i % 7) * 18 : 512;
      const px = Buffer.alloc(w * h);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = (x * 3 + y * 5 + ((x * y + i * 97) % 61)) & 255;
      await sharp(px, { raw: { width: w, height: h, channels: 1 } }).png().toFile(join(imgDir, `image${String(i).padStart(3, '0')}.png`));
    }
  }
  const one = join(imgDir, 'image000.png');

  if (!a['folder-only']) {
  // Three ways ours starts, interleaved per round with PyTorch so that all see the same load: the default (ONNX
  // Runtime's optimised graph loaded from resnet152.onnx.ort-cache/, written by the untimed first run), without the
  // cache (--no-onnx-cache: the graph optimised at every start, as before the cache), and the first run that writes it.
  log(`cold start, ours with and without the optimised-model cache${haveTorch ? ', and PyTorch' : ''} (${runs} rounds) ...`);
  const predictArgs = ['bin/nextray.js', 'predict', '--model', onnx, one, '--quiet'];
  timed(process.execPath, [...predictArgs, '--no-onnx-cache']); // warm the page cache
  rmSync(`${onnx}.ort-cache`, { recursive: true, force: true });
  const first = timed(process.execPath, predictArgs).seconds;
  if (haveTorch) timed(PYTHON, ['bench/torch_predict.py', 'predict', pth, one]);
  const ours = [];
  const noCache = [];
  const torch = [];
  for (let i = 0; i < runs; i++) {
    ours.push(timed(process.execPath, predictArgs).seconds);
    noCache.push(timed(process.execPath, [...predictArgs, '--no-onnx-cache']).seconds);
    if (haveTorch) torch.push(timed(PYTHON, ['bench/torch_predict.py', 'predict', pth, one]).seconds);
  }
  report.coldStart = {
    ours: { median: r3(median(ours)), runs: ours.map(r3), command: `nextray predict --model resnet152.onnx one.png (optimised-model cache present)` },
    oursNoCache: { median: r3(median(noCache)), runs: noCache.map(r3), command: `nextray predict --model resnet152.onnx one.png --no-onnx-cache` },
    oursFirstRunWritingCache: { seconds: r3(first), command: `nextray predict --model resnet152.onnx one.png (no cache yet: writes it)` },
    ratioCachedOverNoCache: r3(median(ours) / median(noCache)),
  };
  if (haveTorch) {
    report.coldStart.torch = { median: r3(median(torch)), runs: torch.map(r3), command: 'python3 bench/torch_predict.py predict resnet152.pth one.png' };
    report.coldStart.ratioOursOverTorch = r3(median(ours) / median(torch));
    report.coldStart.ratioNoCacheOverTorch = r3(median(noCache) / median(torch));
  }
  }

  if (!a['cold-only']) {
  // Interleaved (ours, then ONNX Runtime alone, per round) so both see the same machine load.
  log(`folder of ${nImages} PNGs: ours and ONNX Runtime alone, ${runs} interleaved rounds ...`);
  const perImage = [];
  const outside = [];
  const wall = [];
  const ortRuns = [];
  let ortVersion = null;
  for (let i = 0; i < runs; i++) {
    const r = timed(process.execPath, ['bin/nextray.js', 'predict', '--model', onnx, imgDir, '--batch-size', '8', '--json', '--quiet']);
    const j = JSON.parse(r.stdout);
    perImage.push((j.seconds - j.setup_seconds) / j.images);
    outside.push((j.seconds - j.setup_seconds - j.inference_seconds) / j.images);
    wall.push(r.seconds);
    const ort = JSON.parse(timed(process.execPath, ['bench/onnx-inference.mjs', '--onnx', onnx, '--size', '320', '--threads', '2', '--reps1', '1', '--reps8', String(Math.max(2, Math.ceil(nImages / 8))), '--warmup', '1']).stdout);
    ortRuns.push(ort.batch8?.median_s_per_image);
    ortVersion = ort.onnxruntime_node;
  }
  report.folder = {
    ours: {
      sPerImage: r3(median(perImage)),
      runs: perImage.map(r3),
      // Decoding waits, batching and bookkeeping: the time per image not spent inside ONNX Runtime's runs.
      sPerImageOutsideInference: r3(median(outside)),
      wallSeconds: r3(median(wall)),
      command: `nextray predict --model resnet152.onnx pngs/ --batch-size 8 --json`,
    },
    onnxRuntimeBatch8: { sPerImage: r3(median(ortRuns)), runs: ortRuns.map(r3), onnxruntime: ortVersion },
    ratioOursOverOnnxRuntime: r3(median(perImage) / median(ortRuns)),
  };
  }
} catch (err) {
  report.error = String(err.message ?? err);
} finally {
  if (!a.keep) rmSync(dir, { recursive: true, force: true });
}
report.machine.loadAverageAtEnd = loadavg().map(r3);
console.log(JSON.stringify(report, null, 2));
