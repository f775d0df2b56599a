/**
 * bf16 training (`--precision bf16`, native/src/conv.cc): on a CPU with avx512_core_bf16 or AMX the convolutions
 * read bfloat16 copies of their inputs and write float32. Checked against by-hand convolutions (float64 loops over
 * NHWC/HWIO arrays): float32 kernels match the exact sums; bf16 kernels match the sums of the inputs rounded to
 * bfloat16 (round to nearest even, as the CPU's conversion does) to float32 accumulation error, and differ from the
 * exact sums by a bf16-rounding-sized amount -- so a bf16 path that silently ran float32 fails here. Forward (with
 * the folded batch norm, residual and ReLU of a ResNet block), backward data, backward weights (float32 by design
 * for strided 3x3 filters: oneDNN 2.6's bf16 kernel is slower there), the implementation names oneDNN reports, a
 * tiny training run through the engine in both precisions (the loss falls alike; no tensor leaks), and the CLI:
 * `train --precision bf16` records bf16, and under ONEDNN_MAX_CPU_ISA=AVX2 (a CPU without bf16) says so in one
 * stderr line and trains in float32. Skipped with the reason where the CPU lacks bf16 (the fallback test still
 * runs there).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine, precision, setPrecision, tf } from '../../src/engine/index.js';
import { loadNativeAddon, type NativeAddon } from '../../src/engine/native-addon.js';
import { nativeSkip } from './require-native.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { writeTinyDataset } from '../train/fixture.js';
import { Rng } from '../../src/util/rng.js';

const skip = nativeSkip();
const load = loadNativeAddon();
const addon: NativeAddon | null = load.ok ? load.addon : null;
const bf16Skip: false | string = skip || (addon!.info().bf16 ? false : 'this CPU (or its ONEDNN_MAX_CPU_ISA cap) lacks bf16 (avx512_core_bf16/AMX)');

/** float32 -> bfloat16 -> float32, round to nearest even (what vcvtneps2bf16 and oneDNN's reorders do). */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16(v: number): number {
  f32[0] = v;
  const b = u32[0]!;
  u32[0] = ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f32[0]!;
}
const roundAll = (a: Float32Array) => Float32Array.from(a, bf16);

interface Geom {
  n: number; h: number; w: number; ci: number; co: number; k: number; s: number; pad: number;
}
const out = (g: Geom) => Math.floor((g.h + 2 * g.pad - g.k) / g.s) + 1;
const geomArray = (g: Geom) => {
  const o = out(g);
  return Int32Array.from([g.n, g.h, g.w, g.ci, o, o, g.co, g.k, g.k, g.s, g.s, g.pad, g.pad, g.pad, g.pad, 1, 1]);
};

/** Visits every (output, input, filter) index triple of the convolution: NHWC activations, HWIO filter. */
function eachTap(g: Geom, f: (yi: number, xi: number, wi: number) => void): void {
  const o = out(g);
  for (let n = 0; n < g.n; n++)
    for (let oy = 0; oy < o; oy++)
      for (let ox = 0; ox < o; ox++)
        for (let ky = 0; ky < g.k; ky++) {
          const iy = oy * g.s - g.pad + ky;
          if (iy < 0 || iy >= g.h) continue;
          for (let kx = 0; kx < g.k; kx++) {
            const ix = ox * g.s - g.pad + kx;
            if (ix < 0 || ix >= g.w) continue;
            for (let c = 0; c < g.ci; c++)
              for (let co = 0; co < g.co; co++)
                f(((n * o + oy) * o + ox) * g.co + co, ((n * g.h + iy) * g.w + ix) * g.ci + c, ((ky * g.k + kx) * g.ci + c) * g.co + co);
          }
        }
}
function convRef(g: Geom, x: Float32Array, w: Float32Array): Float64Array {
  const y = new Float64Array(g.n * out(g) ** 2 * g.co);
  eachTap(g, (yi, xi, wi) => (y[yi] += x[xi]! * w[wi]!));
  return y;
}
function bwdDataRef(g: Geom, dy: Float32Array, w: Float32Array): Float64Array {
  const dx = new Float64Array(g.n * g.h * g.w * g.ci);
  eachTap(g, (yi, xi, wi) => (dx[xi] += dy[yi]! * w[wi]!));
  return dx;
}
function bwdWeightsRef(g: Geom, x: Float32Array, dy: Float32Array): Float64Array {
  const dw = new Float64Array(g.k * g.k * g.ci * g.co);
  eachTap(g, (yi, xi, wi) => (dw[wi] += x[xi]! * dy[yi]!));
  return dw;
}

/** max |a - b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

const rng = new Rng(11);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.uniform(-1, 1));

// bf16: which of forward, backward data, backward weights read bf16 (native/src/conv.cc): not where float32
// Winograd applies (3x3 stride 1, channels in multiples of 16); filter gradients only for outputs of 16x16 or more
// with 64+ channels and not for strided 3x3 filters.
const CASES: { name: string; g: Geom; bf16: [boolean, boolean, boolean] }[] = [
  { name: '3x3 stride 1, 16x16 output, 64 channels', g: { n: 2, h: 16, w: 16, ci: 8, co: 64, k: 3, s: 1, pad: 1 }, bf16: [true, true, true] },
  { name: '3x3 stride 1, small output (8x8, 24 channels)', g: { n: 2, h: 8, w: 8, ci: 8, co: 24, k: 3, s: 1, pad: 1 }, bf16: [true, true, false] },
  { name: '3x3 stride 1 where float32 Winograd applies', g: { n: 2, h: 16, w: 16, ci: 16, co: 64, k: 3, s: 1, pad: 1 }, bf16: [false, false, false] },
  { name: '3x3 stride 2 (a downsampling conv)', g: { n: 2, h: 32, w: 32, ci: 16, co: 64, k: 3, s: 2, pad: 1 }, bf16: [true, true, false] },
  { name: '1x1 stride 2 (a shortcut)', g: { n: 2, h: 8, w: 8, ci: 32, co: 16, k: 1, s: 2, pad: 0 }, bf16: [true, true, false] },
  { name: '7x7 stride 2, 3 input channels (a stem)', g: { n: 1, h: 32, w: 32, ci: 3, co: 64, k: 7, s: 2, pad: 3 }, bf16: [true, true, true] },
];

// Float32 accumulation of up to 7*7*3 or 3*3*32 products: well under 1e-5 of the largest output. bf16 rounding of
// the inputs (8 significant bits, relative 2^-9) moves the sums by about 1e-3..1e-2 of the largest output.
const ACC = 1e-5;
const BF16_LO = 2e-4;
const BF16_HI = 2e-2;

describe('bf16 convolutions against by-hand sums', { skip: bf16Skip }, () => {
  const a = addon!;
  after(() => a.setPrecision!('fp32'));

  for (const { name, g, bf16 } of CASES) {
    it(name, () => {
      const o = out(g);
      const geom = geomArray(g);
      const x = rand(g.n * g.h * g.w * g.ci);
      const w = rand(g.k * g.k * g.ci * g.co);
      const dy = rand(g.n * o * o * g.co);
      const run = (p: 'fp32' | 'bf16') => {
        assert.equal(a.setPrecision!(p), p);
        const y = new Float32Array(dy.length);
        const dx = new Float32Array(x.length);
        const dw = new Float32Array(w.length);
        a.conv2dForward(x, w, null, y, geom, false);
        a.conv2dBackwardData(dy, w, dx, geom);
        a.conv2dBackwardFilter(x, dy, dw, geom);
        return { y, dx, dw, impl: [0, 1, 2].map((k) => a.convImpl(k as 0 | 1 | 2, geom)) };
      };
      const exact = { y: convRef(g, x, w), dx: bwdDataRef(g, dy, w), dw: bwdWeightsRef(g, x, dy) };
      const xr = roundAll(x), wr = roundAll(w), dyr = roundAll(dy);
      const rounded = { y: convRef(g, xr, wr), dx: bwdDataRef(g, dyr, wr), dw: bwdWeightsRef(g, xr, dyr) };

      const f = run('fp32');
      for (const k of ['y', 'dx', 'dw'] as const) assert.ok(relErr(f[k], exact[k]) < ACC, `fp32 ${k}: ${relErr(f[k], exact[k])}`);
      for (const impl of f.impl) assert.ok(!impl.endsWith(' bf16') && !impl.startsWith('ref'), `fp32 kernel ${impl}`);

      const h = run('bf16');
      (['y', 'dx', 'dw'] as const).forEach((k, i) => {
        if (bf16[i]) {
          assert.ok(relErr(h[k], rounded[k]) < ACC, `bf16 ${k} vs the sums of bf16-rounded inputs: ${relErr(h[k], rounded[k])}`);
          const e = relErr(h[k], exact[k]);
          assert.ok(e > BF16_LO && e < BF16_HI, `bf16 ${k} vs the exact sums: ${e} (bf16 rounding expected)`);
        } else assert.ok(relErr(h[k], exact[k]) < ACC, `${k} stays float32: ${relErr(h[k], exact[k])}`);
      });
      assert.deepEqual(h.impl.map((i) => i.endsWith(' bf16')), bf16, `implementations: ${h.impl.join(', ')}`);
      for (const impl of h.impl) assert.ok(!impl.startsWith('ref'), `no reference kernel: ${impl}`);
    });
  }

  it('forward with the folded batch norm, residual and ReLU of a ResNet block', () => {
    const g: Geom = { n: 2, h: 8, w: 8, ci: 16, co: 16, k: 3, s: 1, pad: 1 };
    const geom = geomArray(g);
    const x = rand(g.n * g.h * g.w * g.ci);
    const w = rand(g.k * g.k * g.ci * g.co);
    const scale = Float32Array.from({ length: g.co }, () => rng.uniform(0.5, 1.5));
    const shift = rand(g.co);
    const res = rand(g.n * 64 * g.co);
    assert.equal(a.setPrecision!('bf16'), 'bf16');
    const y = new Float32Array(res.length);
    a.conv2dForwardBn(x, w, scale, shift, res, y, geom, true, null);
    // The scale is folded into the float32 filter, then the product is rounded to bf16.
    const folded = Float32Array.from(w, (v, i) => Math.fround(v * scale[i % g.co]!));
    const ref = convRef(g, roundAll(x), roundAll(folded)).map((v, i) => Math.max(0, v + shift[i % g.co]! + res[i]!));
    const exact = convRef(g, x, folded).map((v, i) => Math.max(0, v + shift[i % g.co]! + res[i]!));
    assert.ok(relErr(y, ref) < ACC, `vs bf16-rounded inputs: ${relErr(y, ref)}`);
    assert.ok(relErr(y, exact) > BF16_LO, 'differs from float32 by bf16 rounding');
    assert.match(a.convImpl(3, geom), / bf16 /);
  });
});

describe('bf16 training through the engine', { skip: bf16Skip }, () => {
  before(async () => {
    await initEngine('native');
  });
  after(() => setPrecision('fp32'));

  /** 12 plain gradient steps of a two-conv net on a fixed batch; the losses. */
  function trainTiny(p: 'fp32' | 'bf16'): { losses: number[]; tensors: number[] } {
    assert.equal(setPrecision(p), p);
    assert.equal(precision(), p);
    const r = new Rng(3);
    const init = (shape: number[]) => tf.variable(tf.tensor(Float32Array.from({ length: shape.reduce((s, d) => s * d, 1) }, () => r.normal() * 0.3), shape));
    const w1 = init([3, 3, 3, 8]) as unknown as tf.Variable<tf.Rank.R4>;
    const w2 = init([3, 3, 8, 8]) as unknown as tf.Variable<tf.Rank.R4>;
    const d = init([8, 1]) as unknown as tf.Variable<tf.Rank.R2>;
    const x = tf.tensor4d(Float32Array.from({ length: 8 * 12 * 12 * 3 }, () => r.uniform(-1, 1)), [8, 12, 12, 3]);
    const y = tf.tensor2d([1, 0, 1, 0, 0, 1, 1, 0], [8, 1]);
    const losses: number[] = [];
    const tensors: number[] = [];
    for (let step = 0; step < 12; step++) {
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => {
          const h1 = tf.relu(tf.conv2d(x, w1, 1, 'same'));
          const h2 = tf.relu(tf.conv2d(h1, w2, 2, 'same'));
          const z = tf.matMul(tf.mean(h2, [1, 2]), d);
          return tf.losses.sigmoidCrossEntropy(y, z) as tf.Scalar;
        });
        losses.push(value.dataSync()[0]!);
        for (const v of [w1, w2, d]) v.assign(tf.sub(v, tf.mul(grads[v.name]!, 2)));
      });
      tensors.push(tf.memory().numTensors);
    }
    for (const t of [w1, w2, d, x, y]) t.dispose();
    return { losses, tensors };
  }

  it('reduces the loss like float32 does, and does not leak tensors', () => {
    const f = trainTiny('fp32');
    const h = trainTiny('bf16');
    const last = (l: number[]) => l[l.length - 1]!;
    assert.ok(last(f.losses) < 0.8 * f.losses[0]!, `fp32 losses ${f.losses.join(', ')}`);
    assert.ok(last(h.losses) < 0.8 * h.losses[0]!, `bf16 losses ${h.losses.join(', ')}`);
    assert.ok(Math.abs(last(h.losses) - last(f.losses)) < 0.05 * last(f.losses), `final loss bf16 ${last(h.losses)} vs fp32 ${last(f.losses)}`);
    assert.notDeepEqual(h.losses, f.losses, 'bf16 must not compute exactly what float32 does');
    for (const run of [f, h]) assert.deepEqual(run.tensors, run.tensors.map(() => run.tensors[0]), `numTensors per step: ${run.tensors.join(', ')}`);
  });
});

describe('nextray train --precision bf16', { skip }, () => {
  const tmp = tempDir('nextray-bf16-');
  const data = join(tmp.dir, 'data');
  // ResNet-18 at 64 px: big enough for bf16 filter gradients (the stem's and layer1's; see CASES).
  const base = ['train', '--data', data, '--arch', 'resnet18', '--input-size', '64', '--frozen', '0', '--lr', '0.003', '--batch-size', '8', '--workers', '0', '--epochs', '1', '--no-trust', '--engine', 'native', '--precision', 'bf16', '--json'];
  before(async () => {
    await writeTinyDataset(data, { trainPatients: 8, validPatients: 8, size: 32 });
  });
  after(() => tmp.cleanup());

  it('on a CPU without bf16 (ONEDNN_MAX_CPU_ISA=AVX2): one stderr line, float32 training, recorded', () => {
    const run = join(tmp.dir, 'avx2');
    const r = runCli([...base, '--out', run], { env: { ONEDNN_MAX_CPU_ISA: 'AVX2' } });
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stderr.split('\n').filter((l) => /bf16/.test(l));
    assert.deepEqual(notes, ['nextray: this CPU lacks bf16 (avx512_core_bf16/AMX); training in float32']);
    const m = JSON.parse(r.stdout.trim().split('\n')[0]!) as { precision: string };
    assert.equal(m.precision, 'fp32');
    assert.equal((JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8')) as { precision: string }).precision, 'fp32');
    assert.equal((JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { precision: string }).precision, 'bf16', 'the config keeps what was asked for');
  });

  it('on this CPU with bf16: trains in bf16 (oneDNN runs bf16 JIT kernels, never a reference one) and records it', { skip: bf16Skip }, () => {
    const run = join(tmp.dir, 'bf16');
    const r = runCli([...base, '--out', run], { env: { ONEDNN_VERBOSE: '1' } });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /lacks bf16/);
    // onednn_verbose,exec,cpu,convolution,<implementation>,<propagation>,<memory descriptors>,...
    const convs = r.stdout.split('\n').filter((l) => l.startsWith('onednn_verbose,exec,cpu,convolution,')).map((l) => l.split(','));
    const bf16Convs = convs.filter((f) => /(src|wei|dst)_bf16/.test(f[6] ?? ''));
    assert.ok(bf16Convs.length > 0 && bf16Convs.some((f) => f[5] === 'backward_data') && bf16Convs.some((f) => f[5] === 'backward_weights'), `bf16 convolutions: ${bf16Convs.length} of ${convs.length}`);
    for (const f of convs) assert.ok(!f[4]!.startsWith('ref'), `reference kernel: ${f.join(',')}`);
    const m = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{'))!) as { precision: string; train_loss: number };
    assert.equal(m.precision, 'bf16');
    assert.ok(Number.isFinite(m.train_loss));
    assert.equal((JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8')) as { precision: string }).precision, 'bf16');
  });
});
