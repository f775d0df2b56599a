/**
 * fp16 and int8 post-passes (src/models/onnx/quantize.ts): the scalar maths against hand-computed and NumPy values,
 * one hand-built QDQ graph run by ONNX Runtime against the same quantization done by hand, and a tiny ResNet whose
 * fp16 and int8 exports load in ONNX Runtime (integer kernels fused), stay close to the fp32 export and carry
 * their precision in the metadata.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { initEngine } from '../../../src/engine/index.js';
import { buildModel } from '../../../src/train/archs.js';
import { exportOnnx } from '../../../src/models/onnx/export.js';
import { concatChunks, encodeModel, readModelInfo, type OnnxGraph, type OnnxModelMeta } from '../../../src/models/onnx/graph.js';
import {
  activationParams,
  activationRanges,
  collectActivationStats,
  fakeQuantUint8,
  float16Bits,
  float16Value,
  planInt8,
  quantizeBias,
  quantizeGraphInt8,
  quantizeWeightsPerChannel,
  quantileSorted,
  roundHalfEven,
  toFloat16Graph,
} from '../../../src/models/onnx/quantize.js';
import { Rng } from '../../../src/util/rng.js';
import { tempDir } from '../../helpers/paths.js';

before(async () => {
  await initEngine('cpu');
});

const META: OnnxModelMeta = { producerName: 'test', producerVersion: '0', metadata: {} };

async function runGraph(graph: OnnxGraph, x: Float32Array, dims: number[], out = 'logits', optimizedPath?: string): Promise<Float32Array> {
  const sess = await ort.InferenceSession.create(concatChunks(encodeModel(graph, META)), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    ...(optimizedPath ? { optimizedModelFilePath: optimizedPath } : {}),
  });
  try {
    const r = await sess.run({ [graph.inputs[0]!.name]: new ort.Tensor('float32', x, dims) });
    return Float32Array.from(r[out]!.data as Float32Array);
  } finally {
    await sess.release();
  }
}

test('float16Bits: round to nearest even, subnormals, overflow (values from NumPy np.float16(x).view(np.uint16))', () => {
  const cases: Array<[number, number]> = [
    [1.0, 0x3c00],
    [0.1, 0x2e66],
    [-2.0, 0xc000],
    [1 / 3, 0x3555],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00], // rounds up past the largest half: +inf
    [2049, 0x6800], // tie between 2048 and 2050: even mantissa (2048)
    [2051, 0x6802], // tie between 2050 and 2052: even (2052)
    [0.000061035156, 0x0400], // smallest normal
    [1e-8, 0x0000], // below half the smallest subnormal
    [3e-8, 0x0001], // just above half of 2^-24
    [6e-8, 0x0001],
    [1.5 * 2 ** -24, 0x0002], // subnormal tie: 1.5 -> 2
    [-0, 0x8000],
  ];
  for (const [x, want] of cases) assert.equal(float16Bits(x), want, `float16Bits(${x})`);
  assert.equal(float16Value(0x3555), 0.333251953125);
  assert.equal(float16Value(0x0001), 2 ** -24);
  assert.equal(float16Value(0x7c00), Infinity);
});

test('roundHalfEven, activation parameters and uint8 fake quantization by hand', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven), [0, 2, 2, 0, -2, -2, 2, -3]);
  // [-1, 3]: scale 4/255, zero point round(1 / (4/255)) = round(63.75) = 64.
  const p = activationParams(-1, 3);
  assert.equal(p.scale, Math.fround(4 / 255));
  assert.equal(p.zeroPoint, 64);
  // x = 1: q = round(63.75) + 64 = 128 -> (128 - 64) * 4/255; x = 5 clamps to 255; x = -2 clamps to 0.
  assert.ok(Math.abs(fakeQuantUint8(1, p) - (64 * 4) / 255) < 1e-6);
  assert.ok(Math.abs(fakeQuantUint8(5, p) - (191 * 4) / 255) < 1e-6);
  assert.ok(Math.abs(fakeQuantUint8(-2, p) - (-64 * 4) / 255) < 1e-6);
  // A range not containing 0 is widened to include it: [2, 5] -> [0, 5].
  assert.deepEqual(activationParams(2, 5), { scale: Math.fround(5 / 255), zeroPoint: 0 });
  assert.deepEqual(activationParams(0, 0), { scale: 1, zeroPoint: 0 });
  assert.throws(() => activationParams(1, 0), /bad activation range/);
  // numpy.quantile([1, 2, 3, 4], 0.9) = 3.7 (linear interpolation).
  assert.ok(Math.abs(quantileSorted(Float32Array.of(1, 2, 3, 4), 0.9) - 3.7) < 1e-6);
});

test('per-channel symmetric int8 weights and int32 bias by hand', () => {
  // Conv OIHW [2, 1, 1, 2]: channel 0 = [0.5, -1.27] (scale 1.27/127 = 0.01 -> 50, -127);
  // channel 1 = [0.5, 0.2] (scale 0.5/127 -> 127, round(50.8) = 51).
  const conv = quantizeWeightsPerChannel(Float32Array.of(0.5, -1.27, 0.5, 0.2), [2, 1, 1, 2], 0);
  assert.deepEqual(Array.from(conv.q), [50, -127, 127, 51]);
  assert.ok(Math.abs(conv.scales[0]! - 0.01) < 1e-8 && Math.abs(conv.scales[1]! - 0.5 / 127) < 1e-8);
  // Gemm [in 2, out 2], channels are columns: column 0 = [0.6, -2] (scale 2/127 -> round(38.1) = 38, -127);
  // column 1 = [0.5, 0.1] (scale 0.5/127 -> 127, round(25.4) = 25).
  const gemm = quantizeWeightsPerChannel(Float32Array.of(0.6, 0.5, -2, 0.1), [2, 2], 1);
  assert.deepEqual(Array.from(gemm.q), [38, 127, -127, 25]);
  // An all-zero channel gets scale 1 (never 0: the bias scale divides by it).
  assert.deepEqual(Array.from(quantizeWeightsPerChannel(new Float32Array(2), [2, 1], 0).scales), [1, 1]);
  // Bias: scale = 0.1 * [0.01, 0.002] = [0.001, 0.0002]; q = [0.3 / 0.001, -0.05 / 0.0002] = [300, -250].
  const b = quantizeBias(Float32Array.of(0.3, -0.05), 0.1, Float32Array.of(0.01, 0.002));
  assert.deepEqual(Array.from(b.q), [300, -250]);
});

/**
 * input [1, 2, 2, 2] -> Conv 1x1 (2 -> 2, bias) -> Relu -> Conv 1x1 (2 -> 1, bias) -> logits. With ranges given,
 * ONNX Runtime's result must equal the quantization worked out by hand: input and hidden activations rounded to
 * uint8 at their scales, weights to int8 per channel, biases to int32 at input scale x weight scale.
 */
test('a two-conv QDQ graph in ONNX Runtime equals the quantization done by hand', async () => {
  const w1 = Float32Array.of(0.8, -0.3, 0.25, 0.6); // [out 2, in 2, 1, 1]
  const b1 = Float32Array.of(0.05, -0.1);
  const w2 = Float32Array.of(1.5, -0.7); // [1, 2, 1, 1]
  const b2 = Float32Array.of(0.2);
  const graph: OnnxGraph = {
    name: 'two_conv',
    inputs: [{ name: 'x', elemType: 'float32', shape: [1, 2, 2, 2] }],
    outputs: [{ name: 'logits', elemType: 'float32', shape: [1, 1, 2, 2] }],
    initializers: [
      { name: 'c1.weight', dims: [2, 2, 1, 1], data: w1 },
      { name: 'c1.bias', dims: [2], data: b1 },
      { name: 'c2.weight', dims: [1, 2, 1, 1], data: w2 },
      { name: 'c2.bias', dims: [1], data: b2 },
    ],
    nodes: [
      { opType: 'Conv', inputs: ['x', 'c1.weight', 'c1.bias'], outputs: ['h'], name: 'c1', attrs: { kernel_shape: [1, 1] } },
      { opType: 'Relu', inputs: ['h'], outputs: ['r'], name: 'relu' },
      { opType: 'Conv', inputs: ['r', 'c2.weight', 'c2.bias'], outputs: ['logits'], name: 'c2', attrs: { kernel_shape: [1, 1] } },
    ],
  };
  const plan = planInt8(graph);
  assert.deepEqual(plan.calibrate, ['x', 'r'], 'the input and the Relu output (Relu folded into the first conv) are quantized');
  const ranges = new Map([
    ['x', { min: -1.28, max: 1.27 }], // scale 0.01, zero point 128
    ['r', { min: 0, max: 2.55 }], // scale 0.01, zero point 0
  ]);
  const q = quantizeGraphInt8(graph, ranges);
  assert.deepEqual(q.quantizedLayers, ['c1', 'c2']);
  assert.ok(!q.graph.nodes.some((n) => n.opType === 'Relu'), 'Relu folded into the quantization of the first conv');
  // NCHW input, channel-major: pixel p of channel c at c*4 + p. Values chosen off the rounding ties.
  const x = Float32Array.of(0.123, -0.456, 0.789, 1.5, -0.2, 0.333, -1.5, 0.051);
  const got = await runGraph(q.graph, x, [1, 2, 2, 2]);

  // By hand, in float64 with float32 scales.
  const sx = Math.fround(2.55 / 255);
  const fq = (v: number, s: number, z: number) => (Math.min(255, Math.max(0, roundHalfEven(v / s) + z)) - z) * s;
  const xq = Array.from(x, (v) => fq(v, sx, 128));
  const s1 = [Math.fround(0.8 / 127), Math.fround(0.6 / 127)];
  const w1q = [roundHalfEven(0.8 / s1[0]!), roundHalfEven(Math.fround(-0.3) / s1[0]!), roundHalfEven(0.25 / s1[1]!), roundHalfEven(0.6 / s1[1]!)];
  assert.deepEqual(w1q, [127, -48, 53, 127]);
  const bias1 = [0, 1].map((c) => roundHalfEven(b1[c]! / Math.fround(sx * s1[c]!)) * Math.fround(sx * s1[c]!));
  const sr = Math.fround(2.55 / 255);
  const s2 = Math.fround(1.5 / 127);
  const w2q = [127, roundHalfEven(Math.fround(-0.7) / s2)];
  const bias2 = roundHalfEven(0.2 / Math.fround(sr * s2)) * Math.fround(sr * s2);
  const want: number[] = [];
  for (let p = 0; p < 4; p++) {
    const r = [0, 1].map((c) => fq(w1q[c * 2]! * s1[c]! * xq[p]! + w1q[c * 2 + 1]! * s1[c]! * xq[4 + p]! + bias1[c]!, sr, 0));
    want.push(w2q[0]! * s2 * r[0]! + w2q[1]! * s2 * r[1]! + bias2);
  }
  // ORT's integer kernels requantize with a float multiplier: at most one step (0.01) of the hidden activation
  // may round the other way, which moves the output by at most max|w2| * 0.01 = 0.015.
  for (let p = 0; p < 4; p++) assert.ok(Math.abs(got[p]! - want[p]!) <= 0.0151, `pixel ${p}: ORT ${got[p]} vs by hand ${want[p]}`);
  // The float graph differs from the quantized one by more than that bound somewhere, so this test sees quantization.
  const flt = await runGraph(graph, x, [1, 2, 2, 2]);
  assert.ok(Math.max(...[0, 1, 2, 3].map((p) => Math.abs(flt[p]! - got[p]!))) > 1e-3);
});

function smoothImages(n: number, size: number, seed: string): Float32Array {
  // Smooth random "images" (sums of a few sinusoids per channel) scaled like ImageNet-normalised input.
  const rng = new Rng(11).fork(seed);
  const x = new Float32Array(n * size * size * 3);
  for (let i = 0; i < n; i++) {
    const f = [rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3), rng.uniform(0, 6), rng.uniform(0.5, 1.5)];
    for (let y = 0; y < size; y++)
      for (let xx = 0; xx < size; xx++) {
        const v = f[3]! * Math.sin(f[0]! * xx + f[2]!) * Math.cos(f[1]! * y) + rng.normal(0, 0.1);
        for (let c = 0; c < 3; c++) x[((i * size + y) * size + xx) * 3 + c] = v;
      }
  }
  return x;
}

test('tiny ResNet: fp16 and int8 exports load in ONNX Runtime, stay close to fp32, are smaller, integer kernels fused', async () => {
  const S = 48;
  const model = buildModel('resnet-slim', { dropout: 0, seed: 5, init: 'random' });
  const ex = exportOnnx(model, { inputSize: S });
  model.dispose();
  const nEval = 8;
  const xe = smoothImages(nEval, S, 'eval');
  const dims = [nEval, S, S, 3];
  const ref = await runGraph(ex.graph, xe, dims, 'probability');

  // fp16: every float initializer stored as half; weights rounded at 2^-11 relative, so the probabilities move by
  // well under 1e-3 (measured ~3e-4 here): bound 2e-3.
  const f16 = toFloat16Graph(ex.graph);
  assert.equal(f16.converted, ex.graph.initializers.length);
  assert.deepEqual(f16.keptFloat32, []);
  const f16Bytes = concatChunks(encodeModel(f16.graph, { ...ex.modelMeta, metadata: { ...ex.modelMeta.metadata, precision: 'fp16' } }));
  assert.ok(f16Bytes.byteLength < 0.55 * ex.byteLength, `fp16 file ${f16Bytes.byteLength} vs fp32 ${ex.byteLength}`);
  assert.equal(readModelInfo(f16Bytes).metadata.precision, 'fp16');
  const p16 = await runGraph(f16.graph, xe, dims, 'probability');
  for (let i = 0; i < nEval; i++) assert.ok(Math.abs(p16[i]! - ref[i]!) < 2e-3, `fp16 image ${i}: ${p16[i]} vs ${ref[i]}`);

  // int8: calibrated (min-max) on 16 other images of the same kind.
  const plan = planInt8(ex.graph);
  const { stats, images } = await collectActivationStats(ort, ex.graph, ex.modelMeta, plan.calibrate, [{ x: smoothImages(16, S, 'calib'), n: 16 }], {
    inputDims: (n) => [n, S, S, 3],
    sessionOptions: { intraOpNumThreads: 1 },
  });
  assert.equal(images, 16);
  assert.deepEqual([...stats.keys()], plan.calibrate);
  const q = quantizeGraphInt8(ex.graph, activationRanges(stats, { kind: 'minmax' }));
  assert.equal(q.quantizedLayers.length, 13, '12 convolutions (4 of them downsample branches) + the classifier');
  const int8Bytes = concatChunks(encodeModel(q.graph, { ...ex.modelMeta, metadata: { ...ex.modelMeta.metadata, precision: 'int8' } }));
  assert.ok(int8Bytes.byteLength < 0.3 * ex.byteLength, `int8 file ${int8Bytes.byteLength} vs fp32 ${ex.byteLength}`);
  assert.equal(readModelInfo(int8Bytes).metadata.precision, 'int8');
  const tmp = tempDir('nextray-quant-');
  const optimized = join(tmp.dir, 'optimized.onnx');
  const p8 = await runGraph(q.graph, xe, dims, 'probability', optimized);
  // ORT turned the QDQ groups into integer kernels (U8S8): every conv and the residual adds.
  const text = readFileSync(optimized).toString('latin1');
  assert.equal(text.match(/QLinearConv/g)?.length ?? 0, 12);
  assert.equal(text.match(/QLinearAdd/g)?.length ?? 0, 4);
  // Bound: 13 quantized tensors each add a rounding error of at most half a step (1/510 of the tensor's range), so
  // the output moves by a small fraction of its own spread; measured here the probabilities move by at most 0.0022.
  // 0.006 (under three times that) is also under a fifth of the spread of the fp32 probabilities over these images
  // (0.032), so an output that ignored the image (a constant) would fail it.
  let spread = 0;
  for (let i = 0; i < nEval; i++) for (let j = 0; j < nEval; j++) spread = Math.max(spread, ref[i]! - ref[j]!);
  assert.ok(spread > 0.03, `the images must give different probabilities (spread ${spread})`);
  let maxDiff = 0;
  for (let i = 0; i < nEval; i++) maxDiff = Math.max(maxDiff, Math.abs(p8[i]! - ref[i]!));
  assert.ok(maxDiff < 0.006, `int8 vs fp32 probability: max |diff| ${maxDiff}`);
  assert.ok(maxDiff > 0, 'int8 output is not bit-identical to fp32 (it is quantized)');

  // Keeping the stem conv and the classifier in float: their weights stay float32.
  const qf = quantizeGraphInt8(ex.graph, activationRanges(stats, { kind: 'percentile', percentile: 99.9 }), { floatLayers: ['conv1', 'fc'] });
  assert.equal(qf.quantizedLayers.length, 11);
  assert.ok(qf.graph.initializers.some((t) => t.name === 'conv1.weight' && t.data instanceof Float32Array));
  assert.throws(() => quantizeGraphInt8(ex.graph, new Map(), { floatLayers: ['nope'] }), /float layer 'nope' is not a Conv\/Gemm layer/);
  assert.throws(() => quantizeGraphInt8(ex.graph, new Map()), /no calibrated range/);
  tmp.cleanup();
});

test('planInt8: pools and adds are integer only on the way to an integer op; a statistics branch stays float', () => {
  const f = (n: number) => new Float32Array(n).fill(0.1);
  const graph: OnnxGraph = {
    name: 'branches',
    inputs: [{ name: 'x', elemType: 'float32', shape: [1, 2, 4, 4] }],
    outputs: [
      { name: 'logits', elemType: 'float32', shape: [1, 1] },
      { name: 'stat', elemType: 'float32', shape: [1, 2, 1, 1] },
    ],
    initializers: [
      { name: 'c.weight', dims: [2, 2, 1, 1], data: f(4) },
      { name: 'c.bias', dims: [2], data: f(2) },
      { name: 'fc.weight', dims: [2, 1], data: f(2) },
      { name: 'fc.bias', dims: [1], data: f(1) },
    ],
    nodes: [
      { opType: 'Conv', inputs: ['x', 'c.weight', 'c.bias'], outputs: ['h'], name: 'c' },
      { opType: 'Relu', inputs: ['h'], outputs: ['r'], name: 'relu' },
      { opType: 'GlobalAveragePool', inputs: ['r'], outputs: ['pooled'], name: 'gap' },
      { opType: 'Flatten', inputs: ['pooled'], outputs: ['flat'], name: 'flatten' },
      { opType: 'Gemm', inputs: ['flat', 'fc.weight', 'fc.bias'], outputs: ['logits'], name: 'fc' },
      { opType: 'GlobalAveragePool', inputs: ['r'], outputs: ['mean'], name: 'stat.mean' },
      { opType: 'Mul', inputs: ['mean', 'mean'], outputs: ['stat'], name: 'stat.sq' },
    ],
  };
  const plan = planInt8(graph);
  assert.deepEqual([...plan.quantizedNodes].sort(), [0, 2, 4], 'conv, the classifier pool and the classifier');
  assert.deepEqual(plan.calibrate, ['x', 'r', 'pooled']);
  assert.equal(plan.sharedWith.get('flat'), 'pooled');
  assert.ok(!plan.quantized.has('mean'), 'the statistics pool stays float');
});
