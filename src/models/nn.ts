/**
 * A tiny PyTorch-like module system over @tensorflow/tfjs-core: modules with named children and named
 * parameters/buffers, so a model's state is addressed by exactly the keys torchvision uses in its state_dict
 * (`layer4.2.bn3.running_var`, `features.denseblock1.denselayer1.norm1.weight`). The layers reproduce PyTorch's
 * numerics (symmetric explicit padding, -inf max-pool padding, BatchNorm eps/momentum and unbiased running variance)
 * so torchvision weights give torchvision's logits.
 *
 * Layout: activations are NHWC (TF.js's native layout); conv kernels are stored HWIO and Linear kernels [in, out].
 * Converting from PyTorch's OIHW / [out, in] happens once, at import (see import.ts).
 *
 * Building is two-phase on purpose: constructing a module tree only records parameter shapes (cheap: a ResNet-152
 * spec costs nothing), and `materialize(seed)` allocates the tf.Variables. Parameter counts and metadata are
 * therefore available without allocating 240 MB of weights.
 *
 * Only '@tensorflow/tfjs-core' is imported: the backend (pure-JS CPU, native oneDNN kernels, WebGL in a browser)
 * is chosen by src/engine, never here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng, type Seed } from '../util/rng.js';
import { addRelu, batchNormTraining, convBnFused, convBnFusedAvailable } from '../engine/fused-ops.js';

/** How a parameter's initial values are drawn (torchvision's defaults, reproduced with the project's seeded Rng). */
export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; bound: number };

/**
 * One named tensor of a module: a learnable parameter (counted by parameterCount, like PyTorch's
 * `model.parameters()`) or a buffer (BatchNorm running statistics and num_batches_tracked: in the state_dict but
 * never trained).
 */
export class Param {
  /** Set by materialize(); null while the module tree is only a shape specification. */
  variable: tf.Variable | null = null;
  /** Whether the optimiser may change it (false for buffers and for frozen layers). */
  trainable: boolean;

  constructor(
    readonly shape: readonly number[],
    readonly kind: 'param' | 'buffer',
    readonly init: Init,
    readonly dtype: 'float32' | 'int32' = 'float32',
  ) {
    this.trainable = kind === 'param';
  }

  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** The live variable; throws a clear error if the model was never materialised or was disposed. */
  get v(): tf.Variable {
    if (!this.variable) throw new Error('model parameters are not allocated (model disposed, or built as a shape spec only)');
    return this.variable;
  }

  setTrainable(on: boolean): void {
    this.trainable = this.kind === 'param' && on;
    if (this.variable) this.variable.trainable = this.trainable;
  }
}

let modelCounter = 0;

function initValues(p: Param, rng: Rng): Float32Array | Int32Array {
  const n = p.size;
  if (p.dtype === 'int32') return new Int32Array(n);
  const out = new Float32Array(n);
  switch (p.init.kind) {
    case 'zeros':
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'normal':
      for (let i = 0; i < n; i++) out[i] = rng.normal(0, p.init.std);
      break;
    case 'uniform': {
      const b = p.init.bound;
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-b, b);
      break;
    }
  }
  return out;
}

/** Base class: named parameters and children, in registration order (= PyTorch's state_dict order). */
export abstract class Module {
  private readonly _params = new Map<string, Param>();
  private readonly _children = new Map<string, Module>();

  protected param(name: string, shape: number[], init: Init): Param {
    const p = new Param(shape, 'param', init);
    this._params.set(name, p);
    return p;
  }

  protected buffer(name: string, shape: number[], init: Init, dtype: 'float32' | 'int32' = 'float32'): Param {
    const p = new Param(shape, 'buffer', init, dtype);
    this._params.set(name, p);
    return p;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  children(): Array<[string, Module]> {
    return [...this._children];
  }

  /** This module and every descendant, depth first, with their state_dict prefixes ('' for this one). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, c] of this._children) out.push(...c.namedModules(`${prefix}${n}.`));
    return out;
  }

  /** Every parameter and buffer under this module, keyed by its torchvision state_dict name. */
  namedParams(prefix = ''): Array<[string, Param]> {
    const out: Array<[string, Param]> = [];
    for (const [n, p] of this._params) out.push([prefix + n, p]);
    for (const [n, c] of this._children) out.push(...c.namedParams(`${prefix}${n}.`));
    return out;
  }

  /**
   * Allocate every variable, each drawn from its own stream forked by name so values do not depend on order.
   * `random: false` skips the random draws (zeros instead) for a model whose weights are loaded right after.
   */
  materialize(seed: Seed, label = 'model', opts: { random?: boolean } = {}): void {
    const root = new Rng(seed);
    const id = modelCounter++;
    const random = opts.random ?? true;
    for (const [name, p] of this.namedParams()) {
      if (p.variable) continue;
      // Without random init (weights about to be loaded) random draws become zeros: ResNet-152's 60M normals
      // cost ~7 s of pure JS otherwise.
      const vals = random || p.init.kind === 'ones' ? initValues(p, root.fork(name)) : new Float32Array(p.size);
      const t = tf.tensor(vals, [...p.shape], p.dtype);
      // Variable names are global in the TF.js engine: make them unique per model instance.
      p.variable = tf.variable(t, p.trainable, `${label}#${id}/${name}`, p.dtype);
      t.dispose();
    }
  }

  /** Free every variable of this module tree (and anything a module derived from them, e.g. folded weights). */
  dispose(): void {
    for (const [, m] of this.namedModules()) m.releaseDerived();
    for (const [, p] of this.namedParams()) {
      p.variable?.dispose();
      p.variable = null;
    }
  }

  /** Frees tensors a module computed from its parameters and keeps between calls (none by default). */
  protected releaseDerived(): void {}
}

/** The tfjs-core explicit padding form for a symmetric PyTorch `padding=p`. */
function explicitPad(p: number): [[number, number], [number, number], [number, number], [number, number]] {
  return [
    [0, 0],
    [p, p],
    [p, p],
    [0, 0],
  ];
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  bias?: boolean;
  /** 'fan_out' is torchvision ResNet's kaiming_normal_(mode='fan_out'); 'fan_in' is DenseNet's kaiming_normal_(). */
  initMode?: 'fan_in' | 'fan_out';
}

/**
 * nn.Conv2d: kernel HWIO `[k, k, in, out]`, symmetric zero padding exactly like PyTorch (TF's 'same' pads the
 * extra pixel at the bottom/right at stride 2, which shifts every feature map by half a pixel vs. torchvision).
 */
export class Conv2d extends Module {
  readonly weight: Param;
  readonly bias: Param | null;
  readonly stride: number;
  readonly padding: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: Conv2dOptions = {},
  ) {
    super();
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    const k = kernelSize;
    const fan = (opts.initMode ?? 'fan_out') === 'fan_out' ? outChannels * k * k : inChannels * k * k;
    // kaiming_normal_ with nonlinearity='relu': gain sqrt(2).
    this.weight = this.param('weight', [k, k, inChannels, outChannels], { kind: 'normal', std: Math.sqrt(2 / fan) });
    this.bias = opts.bias ? this.param('bias', [outChannels], { kind: 'zeros' }) : null;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const pad = this.padding === 0 ? 'valid' : explicitPad(this.padding);
      let y = tf.conv2d(x, this.weight.v as tf.Tensor4D, this.stride, pad);
      if (this.bias) y = tf.add(y, this.bias.v);
      return y;
    });
  }
}

/**
 * nn.BatchNorm2d (eps 1e-5, momentum 0.1, affine, track_running_stats). In training mode it normalises with the
 * batch's biased variance and updates the running mean and the *unbiased* running variance, as PyTorch does;
 * `num_batches_tracked` is kept so checkpoints round-trip. A frozen BatchNorm (`frozen = true`) always uses its
 * running statistics and never updates them, even during a training forward.
 */
export class BatchNorm2d extends Module {
  readonly weight: Param;
  readonly bias: Param;
  readonly runningMean: Param;
  readonly runningVar: Param;
  readonly numBatchesTracked: Param;
  frozen = false;

  constructor(
    readonly numFeatures: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.weight = this.param('weight', [numFeatures], { kind: 'ones' });
    this.bias = this.param('bias', [numFeatures], { kind: 'zeros' });
    this.runningMean = this.buffer('running_mean', [numFeatures], { kind: 'zeros' });
    this.runningVar = this.buffer('running_var', [numFeatures], { kind: 'ones' });
    this.numBatchesTracked = this.buffer('num_batches_tracked', [], { kind: 'zeros' }, 'int32');
  }

  private affineCache: { sources: object[]; scale: tf.Tensor1D; shift: tf.Tensor1D } | null = null;
  private fold: { scale: tf.Tensor1D; from: object; filter: tf.Tensor4D; bias: tf.Tensor1D } | null = null;

  /**
   * This batch norm in inference mode, with the preceding convolution's bias, as y = conv(x) * scale + shift per
   * channel: scale = gamma / sqrt(var + eps), shift = beta - mean * scale (+ bias * scale). Cached until a source
   * tensor changes (weights loaded, a training step).
   */
  affine(conv: Conv2d): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    const srcs = [conv.bias, this.weight, this.bias, this.runningMean, this.runningVar].map((p) => (p ? p.v.dataId : null));
    const sources = srcs.filter((d): d is object => d !== null);
    const c = this.affineCache;
    if (c && c.sources.length === sources.length && c.sources.every((d, i) => d === sources[i])) return c;
    this.releaseDerived();
    const a = tf.tidy(() => {
      const scale = tf.div(this.weight.v, tf.sqrt(tf.add(this.runningVar.v, this.eps))) as tf.Tensor1D;
      let shift = tf.sub(this.bias.v, tf.mul(this.runningMean.v, scale));
      if (conv.bias) shift = tf.add(shift, tf.mul(conv.bias.v, scale));
      return { scale: tf.keep(scale), shift: tf.keep(shift as tf.Tensor1D) };
    });
    this.affineCache = { sources, ...a };
    return this.affineCache;
  }

  /**
   * The preceding convolution with this batch norm folded in, as a filter and bias (see convBn; backends without
   * the fused kernel); cached until a source changes.
   */
  folded(conv: Conv2d): { filter: tf.Tensor4D; bias: tf.Tensor1D } {
    const { scale, shift } = this.affine(conv);
    const from = conv.weight.v.dataId;
    if (this.fold && this.fold.scale === scale && this.fold.from === from) return this.fold;
    this.fold?.filter.dispose();
    const filter = tf.tidy(() => tf.keep(tf.mul(conv.weight.v, scale) as tf.Tensor4D)); // HWIO: scale broadcasts over O
    this.fold = { scale, from, filter, bias: shift };
    return this.fold;
  }

  protected override releaseDerived(): void {
    this.fold?.filter.dispose(); // its bias is the affine shift, freed below
    this.fold = null;
    if (!this.affineCache) return;
    this.affineCache.scale.dispose();
    this.affineCache.shift.dispose();
    this.affineCache = null;
  }

  /** `relu`: apply ReLU to the output (one fused kernel in training where the backend has it). */
  forward(x: tf.Tensor4D, training: boolean, relu = false): tf.Tensor4D {
    if (!training || this.frozen) {
      return tf.tidy(() => {
        const y = tf.batchNorm4d(
          x,
          this.runningMean.v as tf.Tensor1D,
          this.runningVar.v as tf.Tensor1D,
          this.bias.v as tf.Tensor1D,
          this.weight.v as tf.Tensor1D,
          this.eps,
        );
        return relu ? tf.relu(y) : y;
      });
    }
    return tf.tidy(() => {
      // Statistics, normalisation (and ReLU) as one differentiable op: src/engine/fused-ops.ts.
      const { y, mean, variance } = batchNormTraining(x, this.weight.v as tf.Tensor1D, this.bias.v as tf.Tensor1D, this.eps, relu);
      const n = x.shape[0] * x.shape[1] * x.shape[2];
      // The running-stat update must not enter the gradient tape's dependency on the optimiser's loss; it is a
      // side effect computed from detached copies of the batch statistics.
      const m = this.momentum;
      const unbiased = n > 1 ? n / (n - 1) : 1;
      const newMean = tf.tidy(() => tf.add(tf.mul(this.runningMean.v, 1 - m), tf.mul(tf.clone(mean), m)));
      const newVar = tf.tidy(() => tf.add(tf.mul(this.runningVar.v, 1 - m), tf.mul(tf.clone(variance), m * unbiased)));
      this.runningMean.v.assign(newMean);
      this.runningVar.v.assign(newVar);
      this.numBatchesTracked.v.assign(tf.add(this.numBatchesTracked.v, tf.scalar(1, 'int32')));
      return y;
    });
  }
}

/**
 * conv -> batch norm [-> ReLU], the unit every ResNet and DenseNet layer is made of. While the batch norm uses its
 * running statistics (inference, or a frozen layer during training) it is folded into the convolution:
 * y = conv(x, w * s) + (beta - mean * s (+ bias * s)) with s = gamma / sqrt(var + eps), run as one fused
 * convolution with ReLU. That is one kernel instead of three full passes over the activation (the batch norm and
 * ReLU took as long as the convolutions in ResNet-152 inference), and what PyTorch's frozen TorchScript and ONNX
 * Runtime do. On the native engine the fold happens inside the addon, as the filter is reordered into oneDNN's
 * layout (CONV_BN in src/engine/fused-ops.ts), so no folded copy of the weights is kept: for ResNet-152 that is
 * 230 MB less. Elsewhere the folded filter is kept on the batch norm. Either way the cache follows the source
 * tensors (weights loaded, a training step). Folding is not differentiable in the weights, so in training mode a
 * layer whose convolution or batch norm is still being trained runs unfolded. In inference mode (training=false)
 * every layer folds: gradients to activations and inputs flow (Grad-CAM), gradients to the weights do not (the
 * native kernel refuses with a message saying to use training=true).
 */
export function convBn(conv: Conv2d, bn: BatchNorm2d, x: tf.Tensor4D, training: boolean, relu = false): tf.Tensor4D {
  return convBnUnit(conv, bn, x, training, relu, undefined);
}

/**
 * relu(batch norm(conv(x)) + residual): the last unit of a residual block. Folded (see convBn), the residual is
 * added inside the convolution on the native engine, so the block's pre-residual output never exists.
 */
export function convBnAddRelu(conv: Conv2d, bn: BatchNorm2d, x: tf.Tensor4D, residual: tf.Tensor4D, training: boolean): tf.Tensor4D {
  return convBnUnit(conv, bn, x, training, true, residual);
}

function convBnUnit(conv: Conv2d, bn: BatchNorm2d, x: tf.Tensor4D, training: boolean, relu: boolean, residual: tf.Tensor4D | undefined): tf.Tensor4D {
  // Folding freezes the arithmetic: only when nothing in the unit is being trained.
  const fold = !training || (bn.frozen && ![conv.weight, conv.bias, bn.weight, bn.bias].some((p) => p?.trainable));
  return tf.tidy(() => {
    if (!fold) {
      if (!residual) return bn.forward(conv.forward(x), training, relu);
      return addRelu(bn.forward(conv.forward(x), training, false), residual);
    }
    const pad = conv.padding === 0 ? 'valid' : explicitPad(conv.padding);
    const strides: [number, number] = [conv.stride, conv.stride];
    if (convBnFusedAvailable() && x.dtype === 'float32') {
      const { scale, shift } = bn.affine(conv);
      return convBnFused(x, conv.weight.v as tf.Tensor4D, scale, shift, { strides, pad, relu }, residual);
    }
    const { filter, bias } = bn.folded(conv);
    const y = tf.fused.conv2d({ x, filter, bias, strides, pad, activation: relu && !residual ? 'relu' : 'linear' });
    return residual ? addRelu(y, residual) : y;
  });
}

/**
 * nn.Linear: kernel stored `[in, out]` (so forward is one matMul without a transpose); torchvision's default
 * init, kaiming_uniform_(a=sqrt(5)), amounts to U(-1/sqrt(in), 1/sqrt(in)) for the weight; the bias is
 * U(-1/sqrt(in), 1/sqrt(in)) too unless `zeroBias` (DenseNet initialises its classifier bias to 0).
 */
export class Linear extends Module {
  readonly weight: Param;
  readonly bias: Param;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { zeroBias?: boolean } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param('weight', [inFeatures, outFeatures], { kind: 'uniform', bound });
    this.bias = this.param('bias', [outFeatures], opts.zeroBias ? { kind: 'zeros' } : { kind: 'uniform', bound });
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(x, this.weight.v as tf.Tensor2D), this.bias.v) as tf.Tensor2D);
  }
}

/**
 * nn.Dropout: zeroes each element with probability p and scales the rest by 1/(1-p), in training only. The mask
 * comes from the project's seeded Rng (a fresh draw per call, reproducible from the seed), not from TF.js's global
 * random state, so a training run replays exactly.
 */
export class Dropout extends Module {
  private rng: Rng;

  constructor(
    readonly p: number,
    seed: Seed = 0,
  ) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`dropout probability must be in [0, 1), got ${p}`);
    this.rng = new Rng(seed).fork('dropout');
  }

  /** Restart the mask stream from `seed` (a resumed run reseeds per epoch so masks do not depend on history). */
  reseed(seed: Seed): void {
    this.rng = new Rng(seed).fork('dropout');
  }

  forward<T extends tf.Tensor>(x: T, training: boolean): T {
    if (!training || this.p === 0) return tf.clone(x);
    const n = x.size;
    const keep = 1 - this.p;
    const mask = new Float32Array(n);
    for (let i = 0; i < n; i++) mask[i] = this.rng.next() < keep ? 1 / keep : 0;
    return tf.tidy(() => tf.mul(x, tf.tensor(mask, x.shape, 'float32')) as T);
  }
}

/** ReLU (stateless; a function, since it has no parameters). */
export function relu<T extends tf.Tensor>(x: T): T {
  return tf.relu(x);
}

/**
 * nn.MaxPool2d(kernel, stride, padding) with PyTorch semantics: padded cells count as -inf (never selected) and
 * the output size is floor((H + 2p - k) / s) + 1. tfjs-core's numeric `pad` has exactly these semantics (the
 * window only visits in-bounds cells, floor rounding).
 */
export function maxPool2d(x: tf.Tensor4D, kernel: number, stride: number, padding = 0): tf.Tensor4D {
  return tf.maxPool(x, kernel, stride, padding, 'floor');
}

/** nn.AvgPool2d(kernel, stride) without padding (DenseNet transitions: 2x2, stride 2, floor). */
export function avgPool2d(x: tf.Tensor4D, kernel: number, stride: number): tf.Tensor4D {
  return tf.avgPool(x, kernel, stride, 0, 'floor');
}

/** AdaptiveAvgPool2d((1, 1)) + flatten: NHWC -> [N, C]. Works for any input size. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  return tf.mean(x, [1, 2]) as tf.Tensor2D;
}

/** Sum of element counts of the learnable parameters (not buffers), like `sum(p.numel() for p in m.parameters())`. */
export function countParams(m: Module, which: 'all' | 'trainable' = 'all'): number {
  let n = 0;
  for (const [, p] of m.namedParams()) {
    if (p.kind !== 'param') continue;
    if (which === 'trainable' && !p.trainable) continue;
    n += p.size;
  }
  return n;
}

/**
 * A classifier head: the module registered under `fc` (ResNet) or `classifier` (DenseNet), mapping pooled
 * features [N, C] to logits [N, K]. Its parameters must be named `weight` and `bias` so checkpoints keep
 * torchvision's keys.
 */
export interface HeadModule extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: tf.Tensor2D, training: boolean): tf.Tensor2D;
}

/** Builds the head once the backbone knows its feature width (2048 for ResNet-152, 1024 for DenseNet-121...). */
export type HeadFactory = (inFeatures: number) => HeadModule;

/**
 * One "layer" in the sense of freezeLayers(n): a weight layer on the main path (a conv, or the classifier) plus
 * the modules that freeze together with it (its batchnorm; a residual block's downsample branch). `batchNorms`
 * are switched to inference mode when the unit is frozen.
 */
export interface LayerUnit {
  /** The state_dict prefix of the unit's weight layer, e.g. `layer4.2.conv3` or `features.transition1.conv`. */
  name: string;
  modules: Module[];
  batchNorms: BatchNorm2d[];
}

/**
 * One step of a network's convolutional trunk, at the granularity at which the forward can be cut at the frozen
 * boundary: the stem, a whole residual block, a dense layer (its new features concatenated to its input), a
 * transition. A step is "frozen" when every layer unit it contains is frozen, i.e. when freezeLayers(n) was
 * called with n >= `unitsEnd`; a frozen step's output then does not depend on `training` (its batchnorms use
 * their running statistics either way, and a trunk step holds no dropout), which is what lets the frozen prefix
 * run in inference mode, outside any gradient tape (see NetworkModel.forwardFrozen in head.ts).
 */
export interface TrunkStep {
  /** The step's state_dict prefix (`conv1` for a ResNet stem, `layer4.2`, `features.denseblock2.denselayer4`). */
  readonly name: string;
  /** One past the index, in layerUnits(), of the step's last layer unit (steps cover the units in order). */
  readonly unitsEnd: number;
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D;
}

/**
 * A network's forward written as a chain: trunk steps (4-D activations) then the tail (pooling + head) that maps
 * the last step's output to logits. `Network.forward(x, t)` must be exactly `tail(steps[k-1](...steps[0](x)), t)`
 * — the built-in networks implement forward through this very chain, so the split and unsplit paths run the same
 * ops in the same order.
 */
export interface TrunkChain {
  readonly steps: readonly TrunkStep[];
  tail(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
}

/**
 * Run `steps` in order from `x`, freeing each intermediate output as soon as the next step has consumed it (the
 * input `x` is never freed). Returns `x` itself when `steps` is empty.
 */
export function runSteps(steps: readonly TrunkStep[], x: tf.Tensor4D, training: boolean): tf.Tensor4D {
  let out = x;
  for (const s of steps) {
    const next = s.forward(out, training);
    if (out !== x) out.dispose();
    out = next;
  }
  return out;
}

/** A whole network: backbone + head, the root of the state_dict. */
export interface Network extends Module {
  /** `fc` (ResNet) or `classifier` (DenseNet): the head's state_dict prefix. */
  readonly classifierName: 'fc' | 'classifier';
  readonly head: HeadModule;
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
  /** Every freezable layer in forward order, the head last. */
  layerUnits(): LayerUnit[];
  /**
   * Optional: the forward as trunk steps + tail, so a frozen prefix can run outside the gradient tape. A network
   * without it (e.g. a custom one) still trains, with its whole forward under the tape (nothing is split off).
   */
  trunk?(): TrunkChain;
}
