#!/usr/bin/env node
// Per-primitive float32 vs bf16 convolution times for ResNet-18's training shapes at 320 px, batch 8 (the bench's
// train18): forward, backward data and backward weights of every distinct conv, each timed alone through the addon
// (native/src/conv.cc), bf16 including its float32 -> bf16 conversions, with the oneDNN implementation that ran
// (" bf16" after the name: it read bf16). This is the measurement behind which primitives --precision bf16 runs in
// bf16 (native/src/conv.cc: float32 Winograd where it applies; bf16 filter gradients only for large outputs with
// many channels and never for strided 3x3 filters). Needs the native addon (npm run build:native) and `npm run build`.
// --net slim: the demo's resnet-slim instead (default there: 128 px, batch 32).
// Usage: node bench/conv-precision.mjs [--net resnet18|slim] [--reps 5] [--batch 8] [--size 320]
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { option } from './lib/util.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => Number(option(argv, name, dflt));
const net = argv.includes('--net') ? argv[argv.indexOf('--net') + 1] : 'resnet18';
if (net !== 'resnet18' && net !== 'slim') {
  console.error(`bench: --net ${net}: use resnet18 or slim`);
  process.exit(2);
}
const reps = opt('reps', 5);
const N = opt('batch', net === 'slim' ? 32 : 8);
const S = opt('size', net === 'slim' ? 128 : 320);
const { loadNativeAddon } = await import(new URL('../dist/src/engine/native-addon.js', import.meta.url).href);
const load = loadNativeAddon();
if (!load.ok) {
  console.error(`bench: ${load.reason}`);
  process.exit(2);
}
const a = load.addon;
if (!a.info().bf16) {
  console.error('bench: this CPU lacks bf16 (avx512_core_bf16/AMX): nothing to compare');
  process.exit(2);
}
// [input side, in channels, out channels, kernel, stride, how many in ResNet-18]
const s = (f) => Math.round(S * f);
const SHAPES = net === 'slim' ? [
  [S, 3, 16, 3, 2, 1], [s(1 / 4), 16, 16, 3, 1, 2], [s(1 / 4), 16, 32, 3, 2, 1], [s(1 / 4), 16, 32, 1, 2, 1], [s(1 / 8), 32, 32, 3, 1, 1],
  [s(1 / 8), 32, 64, 3, 2, 1], [s(1 / 8), 32, 64, 1, 2, 1], [s(1 / 16), 64, 64, 3, 1, 1], [s(1 / 16), 64, 128, 3, 2, 1],
  [s(1 / 16), 64, 128, 1, 2, 1], [s(1 / 32), 128, 128, 3, 1, 1],
] : [
  [S, 3, 64, 7, 2, 1], [s(1 / 4), 64, 64, 3, 1, 4], [s(1 / 4), 64, 128, 3, 2, 1], [s(1 / 4), 64, 128, 1, 2, 1], [s(1 / 8), 128, 128, 3, 1, 3],
  [s(1 / 8), 128, 256, 3, 2, 1], [s(1 / 8), 128, 256, 1, 2, 1], [s(1 / 16), 256, 256, 3, 1, 3], [s(1 / 16), 256, 512, 3, 2, 1],
  [s(1 / 16), 256, 512, 1, 2, 1], [s(1 / 32), 512, 512, 3, 1, 3],
];
const KINDS = ['forward', 'backwardData', 'backwardWeights'];
const rnd = (n) => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
const loadStart = loadavg().map((l) => Math.round(l * 100) / 100);
const rows = [];
const total = { fp32: [0, 0, 0], bf16: [0, 0, 0] };
for (const [h, ci, co, k, st, count] of SHAPES) {
  const oh = Math.ceil(h / st);
  const p = Math.floor(k / 2);
  const g = Int32Array.from([N, h, h, ci, oh, oh, co, k, k, st, st, p, p, p, p, 1, 1]);
  const x = rnd(N * h * h * ci), w = rnd(k * k * ci * co), dy = rnd(N * oh * oh * co);
  const y = new Float32Array(dy.length), dx = new Float32Array(x.length), dw = new Float32Array(w.length);
  const row = { conv: `${h}px ${ci}->${co} ${k}x${k}/${st}`, count };
  for (const prec of ['fp32', 'bf16']) {
    a.setPrecision(prec);
    const fns = [() => a.conv2dForward(x, w, null, y, g, false), () => a.conv2dBackwardData(dy, w, dx, g), () => a.conv2dBackwardFilter(x, dy, dw, g)];
    fns.forEach((f, i) => {
      f();
      const t = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        f();
        t.push(performance.now() - t0);
      }
      const ms = t.sort((u, v) => u - v)[Math.floor(t.length / 2)];
      total[prec][i] += ms * count;
      row[`${KINDS[i]}_${prec}_ms`] = Math.round(ms * 10) / 10;
      row[`${KINDS[i]}_${prec}_impl`] = a.convImpl(i, g);
    });
  }
  rows.push(row);
}
a.setPrecision('fp32');
const r2 = (v) => Math.round(v);
console.log(JSON.stringify({
  net, batch: N, size: S, reps, loadAverageAtStart: loadStart, loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  totalMs: Object.fromEntries(Object.entries(total).map(([k, v]) => [k, Object.fromEntries(KINDS.map((n, i) => [n, r2(v[i])]))])),
  rows,
}, null, 2));
