/**
 * Classifier heads and the trainable model wrapper.
 *
 * The published MURA setup replaces the ImageNet classifier by dropout(p) -> dense(1) -> sigmoid. Here the head
 * outputs the logit (numerically stable BCE in the trainer) and `predictProba` applies the sigmoid. The head's
 * parameters keep torchvision's names (`fc.weight`/`fc.bias` for ResNet, `classifier.weight`/`classifier.bias`
 * for DenseNet) so checkpoints stay torchvision-like and load in PyTorch with `model.fc = nn.Linear(2048, 1)`.
 *
 * Freezing, precisely. A "layer" is a weight layer on the main path, counted in forward order:
 *   ResNet:   the stem conv (`conv1`), every conv of every residual block's main path (`layerS.B.convK`), the
 *             classifier (`fc`). ResNet-18/34/50/101/152 have 18/34/50/101/152 such layers (hence their names).
 *             Each batchnorm freezes with the conv that feeds it (`bn1` with `conv1`, ...); a block's `downsample`
 *             (conv + bn) freezes with the block's last conv, since both feed the same residual sum.
 *   DenseNet: the stem conv (`features.conv0`), both convs of every dense layer (`...denselayerL.conv1/conv2`),
 *             each transition conv (`features.transitionT.conv`), the classifier. DenseNet-121/169/201 have
 *             121/169/201 such layers. DenseNet is pre-activation, so each batchnorm freezes with the layer it
 *             feeds (`norm1` with `conv1`, a transition's `norm` with its `conv`, `norm5` with the classifier),
 *             except the stem's `norm0`, which follows `conv0` and freezes with it.
 * `freezeLayers(n)` freezes the first n layers (parameters not trainable, their batchnorms in inference mode even
 * during a training forward) and makes every later layer trainable. ResNet-152 with 148 frozen trains the last
 * bottleneck block's three convs (+ their batchnorms) and the head.
 *
 * Splitting the forward at the frozen boundary. A frozen prefix needs no gradients, yet run under a gradient
 * tape it keeps every activation alive for a backward pass that never reaches it (ResNet-152, 148 frozen, batch 16
 * at 320 px: ~10 GB). So `forward(x, training)` is also available as two halves:
 *   forwardFrozen(x)                   the longest prefix of whole trunk steps (stem, residual blocks, dense layers,
 *                                      transitions; see TrunkStep in nn.ts) whose layers are all frozen, run in
 *                                      inference mode inside tf.tidy: only its output survives;
 *   forwardTrainable(features, train)  the rest (a partially frozen block or dense layer included), then the head.
 * `forwardTrainable(forwardFrozen(x), t)` runs exactly the ops of `forward(x, t)` in the same order (the built-in
 * networks implement forward through the same chain), so logits and gradients are bit-identical; a trainer calls
 * forwardFrozen outside tf.variableGrads and only forwardTrainable inside. `frozenPrefixLayers()` says how many
 * layers the prefix covers (<= frozenLayers(); 0 when nothing can be split off: no frozen layer, or a custom
 * network without `trunk()`, for which forwardFrozen returns a copy of x and forwardTrainable is the whole forward).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dropout, Linear, countParams, runSteps, type HeadFactory, type HeadModule, type LayerUnit, type Network, type Param, type TrunkChain } from './nn.js';
import type { StateDict } from './weights/types.js';
import { exportStateDict, loadIntoNetwork, type LoadOptions, type LoadReport } from './import.js';

/** The ImageNet-style head: a plain Linear(in, numClasses) (torchvision's `fc` / `classifier`). */
export class LinearHead extends Linear implements HeadModule {
  override forward(x: tf.Tensor2D, _training = false): tf.Tensor2D {
    return super.forward(x);
  }
}

/** The MURA head: dropout(p) -> Linear(in, 1); outputs the logit. Dropout is seeded and active in training only. */
export class BinaryHead extends Linear implements HeadModule {
  private readonly dropout: Dropout;
  constructor(inFeatures: number, p: number, seed: number, zeroBias = false) {
    super(inFeatures, 1, { zeroBias });
    // Registered as a child so Module walks find it; it has no tensors, so the state_dict keys stay fc.weight/bias.
    this.dropout = this.child('dropout', new Dropout(p, seed));
  }
  get dropoutRate(): number {
    return this.dropout.p;
  }
  override forward(x: tf.Tensor2D, training = false): tf.Tensor2D {
    return tf.tidy(() => super.forward(this.dropout.forward(x, training)));
  }
}

export interface HeadSpec {
  /** 'imagenet': Linear(in, numClasses); 'binary': dropout(p) -> Linear(in, 1). */
  kind: 'imagenet' | 'binary';
  numClasses: number;
  dropout: number;
  seed: number;
  /** DenseNet initialises its classifier bias to 0 (torchvision). */
  zeroBias: boolean;
}

export function headFactory(spec: HeadSpec): HeadFactory {
  return (inFeatures) =>
    spec.kind === 'binary'
      ? new BinaryHead(inFeatures, spec.dropout, spec.seed, spec.zeroBias)
      : new LinearHead(inFeatures, spec.numClasses, { zeroBias: spec.zeroBias });
}

/**
 * A network with its head, ready to train or run: the implementation behind registry's `Model` interface.
 * `A` is the architecture label (an `Arch` for registry models, any string for custom configurations).
 */
export class NetworkModel<A extends string = string> {
  private readonly units: LayerUnit[];
  private readonly chain: TrunkChain | null;
  private frozen = 0;
  /** How many leading trunk steps are entirely frozen (what forwardFrozen runs). */
  private frozenSteps = 0;
  private disposed = false;

  constructor(
    readonly arch: A,
    readonly network: Network,
    readonly headKind: 'imagenet' | 'binary',
  ) {
    this.units = network.layerUnits();
    this.chain = network.trunk ? network.trunk() : null;
    if (this.chain) {
      // A malformed chain would silently freeze-split the wrong layers: check it covers units in order, head excluded.
      let prev = 0;
      for (const s of this.chain.steps) {
        if (!Number.isInteger(s.unitsEnd) || s.unitsEnd <= prev || s.unitsEnd >= this.units.length) {
          throw new Error(
            `${arch}: trunk step ${s.name} ends at layer unit ${s.unitsEnd}; steps must cover increasing unit ranges before the head (${this.units.length} units)`,
          );
        }
        prev = s.unitsEnd;
      }
    }
  }

  /** Logits [N, C] for an NHWC batch [N, H, W, 3] (any H, W large enough for five stride-2 reductions). */
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    this.assertLive();
    this.assertImage(x);
    return tf.tidy(() => this.network.forward(x, training));
  }

  /**
   * The frozen prefix's output for an NHWC batch: the longest run of leading trunk steps whose layers are all
   * frozen, in inference mode (frozen batchnorms use running statistics in either mode, trunks hold no dropout,
   * so this equals the training-mode activations). Only the result survives (tf.tidy): call it outside
   * tf.variableGrads so no activation of the prefix is kept for backward. With nothing to split off
   * (frozenPrefixLayers() === 0) it returns a copy of `x`. The caller disposes the result.
   */
  forwardFrozen(x: tf.Tensor4D): tf.Tensor4D {
    this.assertLive();
    this.assertImage(x);
    const steps = this.chain ? this.chain.steps.slice(0, this.frozenSteps) : [];
    return tf.tidy(() => (steps.length ? runSteps(steps, x, false) : tf.clone(x)));
  }

  /**
   * Logits from forwardFrozen's output: the remaining trunk steps and the head, in `training` mode (batch-statistic
   * batchnorms, dropout). `forwardTrainable(forwardFrozen(x), t)` equals `forward(x, t)` bit for bit, provided the
   * frozen layers did not change in between.
   */
  forwardTrainable(features: tf.Tensor4D, training: boolean): tf.Tensor2D {
    this.assertLive();
    if (!this.chain || this.frozenSteps === 0) return this.forward(features, training);
    if (features.rank !== 4) {
      throw new Error(`${this.arch}: forwardTrainable expects forwardFrozen's 4-D output, got shape [${features.shape.join(', ')}]`);
    }
    const chain = this.chain;
    const rest = chain.steps.slice(this.frozenSteps);
    return tf.tidy(() => chain.tail(runSteps(rest, features, training), training));
  }

  /** How many leading layers forwardFrozen covers (whole trunk steps only; <= frozenLayers()). */
  frozenPrefixLayers(): number {
    return this.frozenSteps ? this.chain!.steps[this.frozenSteps - 1]!.unitsEnd : 0;
  }

  /**
   * The layer units forwardFrozen runs (the first frozenPrefixLayers() of them), with their modules and batchnorms:
   * what a cache of the prefix's output must key on (their tensors) and check (nothing trainable, no dropout).
   */
  frozenPrefixUnits(): LayerUnit[] {
    return this.units.slice(0, this.frozenPrefixLayers());
  }

  /** Sigmoid of the single logit: P(abnormal) per image, [N]. Only for one-output heads (the binary head). */
  predictProba(x: tf.Tensor4D): tf.Tensor1D {
    if (this.numOutputs !== 1) {
      throw new Error(`${this.arch}: predictProba needs a one-output (binary) head; this head has ${this.numOutputs} outputs`);
    }
    return tf.tidy(() => tf.sigmoid(tf.reshape(this.forward(x, false), [-1])) as tf.Tensor1D);
  }

  get numOutputs(): number {
    return this.network.head.outFeatures;
  }

  /**
   * Restart every dropout layer's mask stream from `seed` (each layer forks its own stream by its name), e.g. per
   * epoch from (run seed, epoch) so a resumed run draws the same masks as an uninterrupted one.
   */
  reseedDropout(seed: string | number): void {
    for (const [name, m] of this.network.namedModules()) if (m instanceof Dropout) m.reseed(`${String(seed)}/${name}`);
  }

  /** Names of the layers counted by freezeLayers, in forward order (e.g. `conv1`, `layer1.0.conv1`, ..., `fc`). */
  layerNames(): string[] {
    return this.units.map((u) => u.name);
  }

  layerCount(): number {
    return this.units.length;
  }

  /** How many leading layers are frozen now. */
  frozenLayers(): number {
    return this.frozen;
  }

  freezeLayers(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.units.length) {
      throw new RangeError(`${this.arch}: freezeLayers needs an integer in [0, ${this.units.length}], got ${n}`);
    }
    this.units.forEach((u, i) => {
      const freeze = i < n;
      for (const m of u.modules) for (const [, p] of m.namedParams()) p.setTrainable(!freeze);
      for (const bn of u.batchNorms) bn.frozen = freeze;
    });
    this.frozen = n;
    this.frozenSteps = 0;
    if (this.chain) while (this.frozenSteps < this.chain.steps.length && this.chain.steps[this.frozenSteps]!.unitsEnd <= n) this.frozenSteps++;
  }

  trainableVariables(): tf.Variable[] {
    return this.params()
      .filter(([, p]) => p.kind === 'param' && p.trainable)
      .map(([, p]) => p.v);
  }

  /** The head's dense kernel: what the L2 penalty applies to (the published setup regularises the new dense layer). */
  regularizedWeights(): tf.Variable[] {
    const w = this.network.head.namedParams().find(([n]) => n === 'weight');
    if (!w) throw new Error(`${this.arch}: the head has no weight parameter`);
    return [w[1].v];
  }

  parameterCount(): { total: number; trainable: number } {
    return { total: countParams(this.network, 'all'), trainable: countParams(this.network, 'trainable') };
  }

  /** Every parameter and buffer by torchvision key, in torchvision's order. Conv kernels are HWIO, Linear [in, out]. */
  stateDict(): Map<string, tf.Variable> {
    this.assertLive();
    return new Map(this.params().map(([n, p]) => [n, p.v]));
  }

  /**
   * Copy a state_dict into the model. `layout: 'torch'` (default) expects PyTorch's OIHW conv / [out, in] Linear
   * layout (a torchvision .pth/.safetensors); `'tfjs'` expects this model's own layout (a project checkpoint).
   * Strict by default: any missing, unexpected or mis-shaped key throws, naming every offender.
   */
  loadStateDict(sd: StateDict, opts: LoadOptions = {}): LoadReport {
    this.assertLive();
    return loadIntoNetwork(this.network, sd, opts);
  }

  /**
   * The state as plain tensors for a checkpoint file, in PyTorch's layout by default (OIHW convs, [out, in] Linear,
   * I64 num_batches_tracked) so `torch.load` + `load_state_dict` accept it; `'tfjs'` keeps this model's layout.
   */
  exportStateDict(layout: 'torch' | 'tfjs' = 'torch'): StateDict {
    this.assertLive();
    return exportStateDict(this.network, layout);
  }

  dispose(): void {
    if (this.disposed) return;
    this.network.dispose();
    this.disposed = true;
  }

  private params(): Array<[string, Param]> {
    return this.network.namedParams();
  }

  private assertImage(x: tf.Tensor): void {
    if (x.rank !== 4 || x.shape[3] !== 3) {
      throw new Error(`${this.arch}: expected an NHWC batch [N, H, W, 3], got shape [${x.shape.join(', ')}]`);
    }
  }

  private assertLive(): void {
    if (this.disposed) throw new Error(`${this.arch}: model was disposed`);
  }
}
