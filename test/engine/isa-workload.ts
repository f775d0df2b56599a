/**
 * Child process of isa-cap.test.ts (not a test file itself): builds small networks of every family the product
 * trains (BasicBlock ResNet, Bottleneck ResNet, DenseNet, the demo's resnet-slim), runs inference, one training
 * step's loss and gradients, then Adam steps and inference again, on the engine NEXTRAY_ENGINE names, and prints
 * one JSON line of results. The parent runs it under ONEDNN_MAX_CPU_ISA caps with ONEDNN_VERBOSE=1 and reads
 * oneDNN's execution lines from the same stdout.
 *
 * Usage: node isa-workload.js <model>[:<size>[:infer]] ... [--steps 2]   (':infer': inference only)
 * Each gradient is summarised by its L2 norm and its dot product with a fixed pseudo-random vector (a gradient
 * in the wrong layout keeps its norm but not that projection).
 */
import { initEngine, leanVariableGrads, tf } from '../../src/engine/index.js';
import { BatchNorm2d, Bottleneck, Conv2d, Downsample, Module, buildDenseNet, convBn, createCustomModel, createModel } from '../../src/models/index.js';
import { Adam, buildModel, weightedBceMean } from '../../src/train/index.js';
import type { HeadFactory, HeadModule, LayerUnit, Model, Network } from '../../src/models/index.js';

export interface WorkloadResult {
  engine: string;
  isa: string | null;
  models: Record<string, ModelResult>;
}

export interface ModelResult {
  size: number;
  /** Logits of the two images in inference mode, before any training. */
  infer: number[];
  /** Loss of the first training step (training-mode batch norm); NaN for inference only. */
  loss: number;
  /** Per trainable variable: [L2 norm, projection] of its first-step gradient. */
  grads: [number, number][];
  /** Logits in inference mode after `steps` Adam steps. */
  inferAfter: number[];
  steps: number;
}

/**
 * torchvision's ResNet with Bottleneck blocks (7x7/2 stem, 3x3/2 max pool, 1x1 reduce, 3x3, 1x1 expand, strided 1x1
 * downsample), one block per stage and an eighth of the widths (planes 8-64): every Bottleneck
 * convolution kind at a cost the pure-JS reference can afford.
 */
class SlimBottleneckResNet extends Module implements Network {
  readonly classifierName = 'fc' as const;
  readonly conv1 = this.child('conv1', new Conv2d(3, 16, 7, { stride: 2, padding: 3, bias: false, initMode: 'fan_out' }));
  readonly bn1 = this.child('bn1', new BatchNorm2d(16));
  readonly blocks: Bottleneck[] = [];
  readonly head: HeadModule;
  constructor(makeHead: HeadFactory) {
    super();
    let inPlanes = 16;
    [8, 16, 32, 64].forEach((planes, i) => {
      const stride = i === 0 ? 1 : 2;
      const out = planes * Bottleneck.expansion;
      this.blocks.push(this.child(`layer${i + 1}`, new Bottleneck(inPlanes, planes, stride, new Downsample(inPlanes, out, stride))));
      inPlanes = out;
    });
    this.head = this.child('fc', makeHead(inPlanes));
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      let out = tf.maxPool(convBn(this.conv1, this.bn1, x, training, true), 3, 2, 1, 'floor');
      for (const b of this.blocks) out = b.forward(out, training);
      return this.head.forward(tf.mean(out, [1, 2]) as tf.Tensor2D, training);
    });
  }
  layerUnits(): LayerUnit[] {
    return [
      { name: 'conv1', modules: [this.conv1, this.bn1], batchNorms: [this.bn1] },
      ...this.blocks.flatMap((b, i) => b.units(`layer${i + 1}.`)),
      { name: 'fc', modules: [this.head], batchNorms: [] },
    ];
  }
}

function build(name: string): Model {
  const opts = { head: 'binary' as const, dropout: 0, seed: 1 };
  if (name === 'bottleneck') {
    return createCustomModel('bottleneck', (h) => new SlimBottleneckResNet(h), opts) as unknown as Model;
  }
  if (name === 'densenet-slim') {
    // torchvision's DenseNet (BN-ReLU-1x1-BN-ReLU-3x3 dense layers, concatenation, avg-pool transitions) with
    // two layers per block and growth 8.
    const cfg = { growthRate: 8, blockConfig: [2, 2, 2, 2], numInitFeatures: 16, bnSize: 4 };
    return createCustomModel('densenet-slim', (h) => buildDenseNet(cfg, h), opts) as unknown as Model;
  }
  if (name === 'resnet-slim') return buildModel(name, { dropout: 0, seed: 1 });
  return createModel(name as Parameters<typeof createModel>[0], opts);
}

/** sum(g * r) with r a fixed pseudo-random vector in [-1, 1] (same on every engine). */
function projection(g: tf.Tensor): number {
  return tf.tidy(() => {
    const n = g.size;
    const r = tf.sin(tf.mul(tf.range(0, n, 1, 'float32'), 12.9898));
    return tf.sum(tf.mul(tf.reshape(g, [n]), r)).dataSync()[0]!;
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const si = args.indexOf('--steps');
  const steps = si >= 0 ? Number(args.splice(si, 2)[1]) : 2;
  const info = await initEngine();
  const out: WorkloadResult = { engine: info.engine, isa: info.native?.isa ?? null, models: {} };
  for (const spec of args) {
    const [name, sizeText, mode] = spec.split(':') as [string, string | undefined, string | undefined];
    const trainSteps = mode === 'infer' ? 0 : steps;
    const size = Number(sizeText ?? 64);
    const model = build(name);
    // Two images of different brightness and contrast, so that even 1x1 feature maps differ between them and
    // training-mode batch norm (over 2 values there) stays well conditioned instead of amplifying rounding.
    const x = tf.tidy(() => {
      const noise = tf.randomUniform([2, size, size, 3], -1, 1, 'float32', 7);
      return tf.add(tf.mul(noise, tf.tensor4d([1, 0.4], [2, 1, 1, 1])), tf.tensor4d([-0.8, 0.9], [2, 1, 1, 1]));
    }) as tf.Tensor4D;
    const labels = tf.tensor1d([1, 0]);
    const infer = Array.from(tf.tidy(() => model.forward(x, false).dataSync()));
    const vars = model.trainableVariables();
    const adam = new Adam(vars.map((v, i) => ({ name: String(i), variable: v })), { lr: 1e-4, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    let loss = NaN;
    let grads: [number, number][] = [];
    for (let s = 0; s < trainSteps; s++) {
      tf.tidy(() => {
        const r = leanVariableGrads(() => weightedBceMean(model.forward(x, true), labels), vars);
        if (s === 0) {
          loss = r.value.dataSync()[0]!;
          grads = vars.map((v) => {
            const g = r.grads[v.name]!;
            return [tf.tidy(() => tf.norm(g).dataSync()[0]!), projection(g)];
          });
        }
        adam.apply(r.grads);
      });
    }
    const inferAfter = trainSteps ? Array.from(tf.tidy(() => model.forward(x, false).dataSync())) : infer;
    out.models[name] = { size, infer, loss, grads, inferAfter, steps: trainSteps };
    tf.dispose([x, labels]);
    model.dispose();
  }
  console.log(JSON.stringify(out));
}

await main();
