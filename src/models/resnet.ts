/**
 * ResNet (He et al. 2015) exactly as torchvision builds it (`torchvision/models/resnet.py`, "v1.5": the stride of
 * a Bottleneck sits on its 3x3 conv), so torchvision state_dicts load key for key and reproduce its logits.
 * Small blocks -> one private-ish builder `buildResNet(config, head)` -> thin public builders resnet18..resnet152.
 * `buildResNet` also accepts any other stage configuration, e.g. ResNet(Bottleneck, [1, 1, 1, 1]).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  BatchNorm2d,
  Conv2d,
  convBn,
  convBnAddRelu,
  Module,
  globalAvgPool,
  maxPool2d,
  runSteps,
  type HeadFactory,
  type HeadModule,
  type LayerUnit,
  type Network,
  type TrunkChain,
  type TrunkStep,
} from './nn.js';

/** 3x3 convolution with padding 1, no bias (torchvision `conv3x3`). */
function conv3x3(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false, initMode: 'fan_out' });
}

/** 1x1 convolution, no bias (torchvision `conv1x1`). */
function conv1x1(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false, initMode: 'fan_out' });
}

/** The projection shortcut `downsample = Sequential(conv1x1, BatchNorm2d)`: keys `downsample.0.*`, `downsample.1.*`. */
export class Downsample extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inPlanes: number, outPlanes: number, stride: number) {
    super();
    this.conv = this.child('0', conv1x1(inPlanes, outPlanes, stride));
    this.bn = this.child('1', new BatchNorm2d(outPlanes));
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => convBn(this.conv, this.bn, x, training));
  }
}

interface Block extends Module {
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D;
  /** The block's main-path convs as freeze units, in forward order; the downsample joins the last one. */
  units(prefix: string): LayerUnit[];
}

export class BasicBlock extends Module implements Block {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Downsample | null;

  constructor(inPlanes: number, planes: number, stride: number, downsample: Downsample | null) {
    super();
    this.conv1 = this.child('conv1', conv3x3(inPlanes, planes, stride));
    this.bn1 = this.child('bn1', new BatchNorm2d(planes));
    this.conv2 = this.child('conv2', conv3x3(planes, planes));
    this.bn2 = this.child('bn2', new BatchNorm2d(planes));
    this.downsample = downsample ? this.child('downsample', downsample) : null;
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      // Each intermediate is freed as soon as the next exists (the gradient tape keeps its own references), and
      // the last conv adds the shortcut inside its kernel where the engine can (convBnAddRelu).
      const out = convBn(this.conv1, this.bn1, x, training, true);
      const identity = this.downsample ? this.downsample.forward(x, training) : x;
      const y = convBnAddRelu(this.conv2, this.bn2, out, identity, training);
      out.dispose();
      return y;
    });
  }

  units(prefix: string): LayerUnit[] {
    const ds = this.downsample ? [this.downsample] : [];
    const dsBn = this.downsample ? [this.downsample.bn] : [];
    return [
      { name: `${prefix}conv1`, modules: [this.conv1, this.bn1], batchNorms: [this.bn1] },
      { name: `${prefix}conv2`, modules: [this.conv2, this.bn2, ...ds], batchNorms: [this.bn2, ...dsBn] },
    ];
  }
}

export class Bottleneck extends Module implements Block {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Downsample | null;

  constructor(inPlanes: number, planes: number, stride: number, downsample: Downsample | null) {
    super();
    const width = planes; // groups = 1, base_width = 64
    this.conv1 = this.child('conv1', conv1x1(inPlanes, width));
    this.bn1 = this.child('bn1', new BatchNorm2d(width));
    this.conv2 = this.child('conv2', conv3x3(width, width, stride));
    this.bn2 = this.child('bn2', new BatchNorm2d(width));
    this.conv3 = this.child('conv3', conv1x1(width, planes * Bottleneck.expansion));
    this.bn3 = this.child('bn3', new BatchNorm2d(planes * Bottleneck.expansion));
    this.downsample = downsample ? this.child('downsample', downsample) : null;
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      // Each intermediate is freed as soon as the next exists (the gradient tape keeps its own references), and
      // the last conv adds the shortcut inside its kernel where the engine can (convBnAddRelu).
      const out1 = convBn(this.conv1, this.bn1, x, training, true);
      const out2 = convBn(this.conv2, this.bn2, out1, training, true);
      out1.dispose();
      const identity = this.downsample ? this.downsample.forward(x, training) : x;
      const y = convBnAddRelu(this.conv3, this.bn3, out2, identity, training);
      out2.dispose();
      return y;
    });
  }

  units(prefix: string): LayerUnit[] {
    const ds = this.downsample ? [this.downsample] : [];
    const dsBn = this.downsample ? [this.downsample.bn] : [];
    return [
      { name: `${prefix}conv1`, modules: [this.conv1, this.bn1], batchNorms: [this.bn1] },
      { name: `${prefix}conv2`, modules: [this.conv2, this.bn2], batchNorms: [this.bn2] },
      { name: `${prefix}conv3`, modules: [this.conv3, this.bn3, ...ds], batchNorms: [this.bn3, ...dsBn] },
    ];
  }
}

/** A stage (`layer1`..`layer4`): blocks keyed `0`, `1`, ... like nn.Sequential (run block by block by ResNet.trunk). */
class Stage extends Module {
  readonly blocks: Block[] = [];
  add(b: Block): void {
    this.blocks.push(this.child(String(this.blocks.length), b));
  }
}

export type BlockKind = 'basic' | 'bottleneck';

export interface ResNetConfig {
  block: BlockKind;
  /** Blocks per stage, e.g. [3, 8, 36, 3] for ResNet-152. */
  layers: [number, number, number, number];
  /**
   * Planes per stage (default torchvision's 64/128/256/512; the stem has widths[0] channels). Narrower widths make
   * the small parity fixtures in test/fixtures/torchvision-small (torchvision's own blocks, only thinner).
   */
  widths?: readonly [number, number, number, number];
}

/**
 * torchvision's `ResNet` module: stem (conv1 7x7/2, bn1, relu, maxpool 3x3/2), layer1..layer4, global average
 * pool, head `fc`. Weights are initialised like torchvision (kaiming normal fan_out for convs, BN 1/0).
 */
export class ResNet extends Module implements Network {
  readonly classifierName = 'fc' as const;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly stages: Stage[];
  readonly head: HeadModule;
  /** Width of the pooled features fed to the head: widths[3] (512) * expansion. */
  readonly numFeatures: number;
  private chain: TrunkChain | null = null;

  constructor(
    readonly config: ResNetConfig,
    makeHead: HeadFactory,
  ) {
    super();
    const Block = config.block === 'basic' ? BasicBlock : Bottleneck;
    const expansion = Block.expansion;
    const planesPerStage = config.widths ?? [64, 128, 256, 512];
    planesPerStage.forEach((w, i) => {
      if (!Number.isInteger(w) || w < 1) throw new RangeError(`ResNet stage ${i + 1} width must be a positive integer, got ${w}`);
    });
    let inPlanes = planesPerStage[0];
    this.conv1 = this.child('conv1', new Conv2d(3, inPlanes, 7, { stride: 2, padding: 3, bias: false, initMode: 'fan_out' }));
    this.bn1 = this.child('bn1', new BatchNorm2d(inPlanes));
    this.stages = [];
    config.layers.forEach((n, i) => {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`ResNet stage ${i + 1} needs at least one block, got ${n}`);
      const planes = planesPerStage[i]!;
      const stride = i === 0 ? 1 : 2;
      const stage = this.child(`layer${i + 1}`, new Stage());
      for (let b = 0; b < n; b++) {
        const s = b === 0 ? stride : 1;
        const needsDown = b === 0 && (s !== 1 || inPlanes !== planes * expansion);
        const down = needsDown ? new Downsample(inPlanes, planes * expansion, s) : null;
        stage.add(new Block(inPlanes, planes, s, down));
        inPlanes = planes * expansion;
      }
      this.stages.push(stage);
    });
    this.numFeatures = planesPerStage[3] * expansion;
    this.head = this.child('fc', makeHead(this.numFeatures));
  }

  /** Pooled features [N, numFeatures] (what the head sees). */
  features(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => globalAvgPool(runSteps(this.trunk().steps, x, training)));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    const chain = this.trunk();
    return tf.tidy(() => chain.tail(runSteps(chain.steps, x, training), training));
  }

  /**
   * The forward as a chain (see TrunkChain in nn.ts): the stem (conv1, bn1, relu, max-pool: layer unit 0), then
   * one step per residual block (its 2 or 3 units, the downsample included), then global average pool + head.
   * A block is only ever whole in a step, so a partially frozen block stays on the trainable side.
   */
  trunk(): TrunkChain {
    if (this.chain) return this.chain;
    const steps: TrunkStep[] = [
      {
        name: 'conv1',
        unitsEnd: 1,
        forward: (x, training) => tf.tidy(() => maxPool2d(convBn(this.conv1, this.bn1, x, training, true), 3, 2, 1)),
      },
    ];
    let end = 1;
    this.stages.forEach((stage, i) =>
      stage.blocks.forEach((b, j) => {
        end += b.units('').length;
        steps.push({ name: `layer${i + 1}.${j}`, unitsEnd: end, forward: (x, training) => b.forward(x, training) });
      }),
    );
    this.chain = {
      steps,
      tail: (x, training) => tf.tidy(() => this.head.forward(globalAvgPool(x), training)),
    };
    return this.chain;
  }

  layerUnits(): LayerUnit[] {
    const units: LayerUnit[] = [{ name: 'conv1', modules: [this.conv1, this.bn1], batchNorms: [this.bn1] }];
    this.stages.forEach((stage, i) =>
      stage.blocks.forEach((b, j) => units.push(...b.units(`layer${i + 1}.${j}.`))),
    );
    units.push({ name: this.classifierName, modules: [this.head], batchNorms: [] });
    return units;
  }
}

/** The one builder behind every public ResNet constructor (torchvision's `_resnet`). Builds the spec only. */
export function buildResNet(config: ResNetConfig, makeHead: HeadFactory): ResNet {
  return new ResNet(config, makeHead);
}

export const RESNET_CONFIGS = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  resnet101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  resnet152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
} as const satisfies Record<string, ResNetConfig>;

export type ResNetArch = keyof typeof RESNET_CONFIGS;

// The zoo's ResNets are built from RESNET_CONFIGS through registry.ts (createModel('resnet152')); no per-arch
// builder functions here (they had no callers).
