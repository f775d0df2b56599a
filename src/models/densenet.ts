/**
 * DenseNet-BC (Huang et al. 2017) exactly as torchvision builds it (`torchvision/models/densenet.py`): growth 32,
 * bn_size 4, 64 initial features, compression 0.5, no dropout inside blocks. Keys match torchvision's state_dict:
 * `features.conv0`, `features.denseblock1.denselayer1.norm1`, `features.transition1.conv`, `features.norm5`,
 * `classifier`. One builder `buildDenseNet(config, head)` and thin public builders densenet121/169/201.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  BatchNorm2d,
  Conv2d,
  Module,
  avgPool2d,
  globalAvgPool,
  maxPool2d,
  relu,
  runSteps,
  type HeadFactory,
  type HeadModule,
  type LayerUnit,
  type Network,
  type TrunkChain,
  type TrunkStep,
} from './nn.js';

/** torchvision DenseNet initialises convs with kaiming_normal_ in its default fan_in mode. */
const conv = (i: number, o: number, k: number, stride = 1, padding = 0): Conv2d =>
  new Conv2d(i, o, k, { stride, padding, bias: false, initMode: 'fan_in' });

/** norm1 -> relu1 -> conv1 (1x1, bn_size*growth) -> norm2 -> relu2 -> conv2 (3x3, growth); returns only new features. */
export class DenseLayer extends Module {
  readonly norm1: BatchNorm2d;
  readonly conv1: Conv2d;
  readonly norm2: BatchNorm2d;
  readonly conv2: Conv2d;

  constructor(numInputFeatures: number, growthRate: number, bnSize: number) {
    super();
    this.norm1 = this.child('norm1', new BatchNorm2d(numInputFeatures));
    this.conv1 = this.child('conv1', conv(numInputFeatures, bnSize * growthRate, 1));
    this.norm2 = this.child('norm2', new BatchNorm2d(bnSize * growthRate));
    this.conv2 = this.child('conv2', conv(bnSize * growthRate, growthRate, 3, 1, 1));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      const bottleneck = this.conv1.forward(this.norm1.forward(x, training, true));
      return this.conv2.forward(this.norm2.forward(bottleneck, training, true));
    });
  }

  units(prefix: string): LayerUnit[] {
    return [
      { name: `${prefix}conv1`, modules: [this.norm1, this.conv1], batchNorms: [this.norm1] },
      { name: `${prefix}conv2`, modules: [this.norm2, this.conv2], batchNorms: [this.norm2] },
    ];
  }
}

/** `denseblockN`: each layer sees the concatenation of the block input and every earlier layer's output. */
export class DenseBlock extends Module {
  readonly layers: DenseLayer[] = [];

  constructor(numLayers: number, numInputFeatures: number, growthRate: number, bnSize: number) {
    super();
    for (let i = 0; i < numLayers; i++) {
      this.layers.push(
        this.child(`denselayer${i + 1}`, new DenseLayer(numInputFeatures + i * growthRate, growthRate, bnSize)),
      );
    }
  }

  /** One dense layer's step: its input with the layer's new features appended (channel axis). */
  static grow(layer: DenseLayer, features: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => tf.concat([features, layer.forward(features, training)], 3));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      let features = x;
      for (const layer of this.layers) {
        const next = DenseBlock.grow(layer, features, training);
        if (features !== x) features.dispose();
        features = next;
      }
      return features;
    });
  }
}

/** `transitionN`: norm -> relu -> conv 1x1 (halves channels) -> avgpool 2x2/2. */
export class Transition extends Module {
  readonly norm: BatchNorm2d;
  readonly conv: Conv2d;

  constructor(numInputFeatures: number, numOutputFeatures: number) {
    super();
    this.norm = this.child('norm', new BatchNorm2d(numInputFeatures));
    this.conv = this.child('conv', conv(numInputFeatures, numOutputFeatures, 1));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => avgPool2d(this.conv.forward(this.norm.forward(x, training, true)), 2, 2));
  }
}

/** The `features` Sequential: conv0, norm0, (relu0, pool0), denseblock1, transition1, ..., denseblock4, norm5. */
class Features extends Module {
  readonly conv0: Conv2d;
  readonly norm0: BatchNorm2d;
  readonly blocks: DenseBlock[] = [];
  readonly transitions: Transition[] = [];
  readonly norm5: BatchNorm2d;
  readonly numFeatures: number;

  constructor(config: DenseNetConfig) {
    super();
    const { growthRate, blockConfig, numInitFeatures, bnSize } = config;
    this.conv0 = this.child('conv0', conv(3, numInitFeatures, 7, 2, 3));
    this.norm0 = this.child('norm0', new BatchNorm2d(numInitFeatures));
    let n = numInitFeatures;
    blockConfig.forEach((numLayers, i) => {
      if (!Number.isInteger(numLayers) || numLayers < 1) {
        throw new RangeError(`DenseNet block ${i + 1} needs at least one layer, got ${numLayers}`);
      }
      this.blocks.push(this.child(`denseblock${i + 1}`, new DenseBlock(numLayers, n, growthRate, bnSize)));
      n += numLayers * growthRate;
      if (i !== blockConfig.length - 1) {
        this.transitions.push(this.child(`transition${i + 1}`, new Transition(n, Math.floor(n / 2))));
        n = Math.floor(n / 2);
      }
    });
    this.norm5 = this.child('norm5', new BatchNorm2d(n));
    this.numFeatures = n;
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => this.norm5.forward(runSteps(this.steps(), x, training), training));
  }

  /**
   * Everything before norm5 as trunk steps (see TrunkChain in nn.ts): the stem (conv0, norm0, relu0, pool0: layer
   * unit 0), one step per dense layer (2 units; its output is the block's running concatenation) and one per
   * transition (1 unit). A dense layer with only its first conv frozen stays on the trainable side.
   */
  steps(): TrunkStep[] {
    if (this.cached) return this.cached;
    const steps: TrunkStep[] = [
      {
        name: 'features.conv0',
        unitsEnd: 1,
        forward: (x, training) => tf.tidy(() => maxPool2d(this.norm0.forward(this.conv0.forward(x), training, true), 3, 2, 1)),
      },
    ];
    let end = 1;
    this.blocks.forEach((b, i) => {
      b.layers.forEach((layer, j) => {
        end += layer.units('').length;
        steps.push({
          name: `features.denseblock${i + 1}.denselayer${j + 1}`,
          unitsEnd: end,
          forward: (x, training) => DenseBlock.grow(layer, x, training),
        });
      });
      const t = this.transitions[i];
      if (t) {
        end += 1;
        steps.push({ name: `features.transition${i + 1}`, unitsEnd: end, forward: (x, training) => t.forward(x, training) });
      }
    });
    this.cached = steps;
    return steps;
  }
  private cached: TrunkStep[] | null = null;
}

export interface DenseNetConfig {
  growthRate: number;
  /** Dense layers per block, e.g. [6, 12, 24, 16] for DenseNet-121. */
  blockConfig: number[];
  numInitFeatures: number;
  bnSize: number;
}

/** torchvision's `DenseNet`: features -> relu -> global average pool -> `classifier`. */
export class DenseNet extends Module implements Network {
  readonly classifierName = 'classifier' as const;
  readonly features: Features;
  readonly head: HeadModule;
  readonly numFeatures: number;

  constructor(
    readonly config: DenseNetConfig,
    makeHead: HeadFactory,
  ) {
    super();
    this.features = this.child('features', new Features(config));
    this.numFeatures = this.features.numFeatures;
    this.head = this.child('classifier', makeHead(this.numFeatures));
  }

  /** Pooled features [N, C] (what the classifier sees). */
  pooled(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => globalAvgPool(relu(this.features.forward(x, training))));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    const chain = this.trunk();
    return tf.tidy(() => chain.tail(runSteps(chain.steps, x, training), training));
  }

  /**
   * The forward as a chain (see TrunkChain in nn.ts): the feature steps up to the last dense layer, then the tail
   * norm5 -> relu -> global average pool -> classifier (norm5 belongs to the classifier's layer unit).
   */
  trunk(): TrunkChain {
    return {
      steps: this.features.steps(),
      tail: (x, training) => tf.tidy(() => this.head.forward(globalAvgPool(relu(this.features.norm5.forward(x, training))), training)),
    };
  }

  layerUnits(): LayerUnit[] {
    const f = this.features;
    const units: LayerUnit[] = [
      { name: 'features.conv0', modules: [f.conv0, f.norm0], batchNorms: [f.norm0] },
    ];
    f.blocks.forEach((b, i) => {
      b.layers.forEach((l, j) => units.push(...l.units(`features.denseblock${i + 1}.denselayer${j + 1}.`)));
      const t = f.transitions[i];
      if (t) units.push({ name: `features.transition${i + 1}.conv`, modules: [t.norm, t.conv], batchNorms: [t.norm] });
    });
    units.push({ name: this.classifierName, modules: [f.norm5, this.head], batchNorms: [f.norm5] });
    return units;
  }
}

export function buildDenseNet(config: DenseNetConfig, makeHead: HeadFactory): DenseNet {
  return new DenseNet(config, makeHead);
}

export const DENSENET_CONFIGS = {
  densenet121: { growthRate: 32, blockConfig: [6, 12, 24, 16], numInitFeatures: 64, bnSize: 4 },
  densenet169: { growthRate: 32, blockConfig: [6, 12, 32, 32], numInitFeatures: 64, bnSize: 4 },
  densenet201: { growthRate: 32, blockConfig: [6, 12, 48, 32], numInitFeatures: 64, bnSize: 4 },
} as const satisfies Record<string, DenseNetConfig>;

export type DenseNetArch = keyof typeof DENSENET_CONFIGS;

// The zoo's DenseNets are built from DENSENET_CONFIGS through registry.ts (createModel('densenet121')).
