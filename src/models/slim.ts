/**
 * `resnet-slim`: a small ResNet for the CPU demo and fast tests, where a torchvision-width network cannot train in
 * minutes on two cores. torchvision's BasicBlock ResNet shape with one block per stage and widths 16/32/64/128,
 * a 3x3 stride-2 stem followed by torchvision's 3x3 stride-2 max-pool (`stemPool`, on for resnet-slim). About 0.2 M
 * parameters; its freezable layers are counted like the zoo's ResNets (stem conv, each block conv, the classifier):
 * 10 layers. Its state_dict keys follow torchvision's (`conv1`, `layer1.0.conv1`, `fc.weight` ...), and the ONNX
 * exporter handles it like any ResNet.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BatchNorm2d, Conv2d, Module, convBn, runSteps, type HeadFactory, type HeadModule, type LayerUnit, type Network, type TrunkChain, type TrunkStep } from './nn.js';
import { BasicBlock, Downsample } from './resnet.js';

class Stage extends Module {
  readonly blocks: BasicBlock[] = [];
  add(b: BasicBlock): void {
    this.blocks.push(this.child(String(this.blocks.length), b));
  }
}

/** A narrow BasicBlock ResNet (see the module comment). */
export class SlimResNet extends Module implements Network {
  readonly classifierName = 'fc' as const;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly stages: Stage[] = [];
  readonly head: HeadModule;
  private chain: TrunkChain | null = null;

  constructor(
    widths: readonly number[],
    blocks: readonly number[],
    makeHead: HeadFactory,
    readonly stemPool = true,
  ) {
    super();
    this.conv1 = this.child('conv1', new Conv2d(3, widths[0]!, 3, { stride: 2, padding: 1, bias: false, initMode: 'fan_out' }));
    this.bn1 = this.child('bn1', new BatchNorm2d(widths[0]!));
    let inPlanes = widths[0]!;
    widths.forEach((planes, i) => {
      const stage = this.child(`layer${i + 1}`, new Stage());
      for (let b = 0; b < blocks[i]!; b++) {
        const stride = b === 0 && i > 0 ? 2 : 1;
        const down = stride !== 1 || inPlanes !== planes ? new Downsample(inPlanes, planes, stride) : null;
        stage.add(new BasicBlock(inPlanes, planes, stride, down));
        inPlanes = planes;
      }
      this.stages.push(stage);
    });
    this.head = this.child('fc', makeHead(inPlanes));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    const chain = this.trunk();
    return tf.tidy(() => chain.tail(runSteps(chain.steps, x, training), training));
  }

  /**
   * The forward as a chain (TrunkChain in nn.ts), as ResNet's: the stem (conv1, bn1, relu, the optional max-pool:
   * layer unit 0), one step per BasicBlock, then the mean over H and W and the head. forward() runs this very chain,
   * so a frozen prefix can be split off (NetworkModel.forwardFrozen) and cached.
   */
  trunk(): TrunkChain {
    if (this.chain) return this.chain;
    const steps: TrunkStep[] = [
      {
        name: 'conv1',
        unitsEnd: 1,
        forward: (x, training) =>
          tf.tidy(() => {
            const out = convBn(this.conv1, this.bn1, x, training, true);
            return this.stemPool ? tf.maxPool(out, 3, 2, 1, 'floor') : out;
          }),
      },
    ];
    let end = 1;
    this.stages.forEach((stage, i) =>
      stage.blocks.forEach((b, j) => {
        end += b.units('').length;
        steps.push({ name: `layer${i + 1}.${j}`, unitsEnd: end, forward: (x, training) => b.forward(x, training) });
      }),
    );
    this.chain = { steps, tail: (x, training) => tf.tidy(() => this.head.forward(tf.mean(x, [1, 2]) as tf.Tensor2D, training)) };
    return this.chain;
  }

  layerUnits(): LayerUnit[] {
    const units: LayerUnit[] = [{ name: 'conv1', modules: [this.conv1, this.bn1], batchNorms: [this.bn1] }];
    this.stages.forEach((s, i) => s.blocks.forEach((b, j) => units.push(...b.units(`layer${i + 1}.${j}.`))));
    units.push({ name: 'fc', modules: [this.head], batchNorms: [] });
    return units;
  }
}

/** The `resnet-slim` network with the given head. */
export function buildSlimResNet(makeHead: HeadFactory): SlimResNet {
  return new SlimResNet([16, 32, 64, 128], [1, 1, 1, 1], makeHead);
}
