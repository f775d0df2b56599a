/**
 * The model zoo's front door: architecture name -> builder + metadata (parameter counts with torchvision's
 * 1000-class classifier and with the MURA binary head, layer count for freezing, input size, preprocessing, the
 * torchvision weight files it accepts). `createModel` is the one entry point the trainer, evaluator and CLI use.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { countParams, type HeadFactory, type LayerUnit, type Network } from './nn.js';
import { buildResNet, RESNET_CONFIGS, type ResNetConfig } from './resnet.js';
import { buildDenseNet, DENSENET_CONFIGS, type DenseNetConfig } from './densenet.js';
import { buildSlimResNet } from './slim.js';
import { NetworkModel, headFactory, type HeadSpec } from './head.js';
import type { LoadOptions, LoadReport } from './import.js';
import type { StateDict } from './weights/types.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../data/preprocess.js';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

/** An architecture name the registry does not know (a flag, a config or a checkpoint's metadata). */
export class UnknownArchError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_UNKNOWN_ARCH', exitStatus: EXIT_USAGE, hint: 'nextray models lists the architectures' });
    this.name = 'UnknownArchError';
  }
}

// The names alone live in arch-names.ts (no TF.js), so the CLI can check an --arch before loading the zoo.
import { ALL_ARCHS, ARCHS, isArch, type Arch, type TorchvisionArch } from './arch-names.js';
export { ALL_ARCHS, ARCHS, PROJECT_ARCHS, isArch, isTorchvisionArch, type Arch, type TorchvisionArch } from './arch-names.js';

export interface CreateModelOptions {
  /** 'imagenet' (default): torchvision's Linear classifier with numClasses outputs; 'binary': dropout -> dense(1). */
  head?: 'imagenet' | 'binary';
  /** Outputs of the 'imagenet' head (default 1000). Must be 1 (or omitted) for the binary head. */
  numClasses?: number;
  /** Dropout probability before the binary head's dense layer (default 0.5, the published setup). */
  dropout?: number;
  /** Seeds weight initialisation and the dropout masks (default 0). */
  seed?: number;
  /**
   * 'random' (default): torchvision's initialisation, seeded. 'none': zeros/ones only, much faster (ResNet-152:
   * ~7 s less in pure JS) for a model whose weights are loaded right after with loadStateDict.
   */
  init?: 'random' | 'none';
}

export interface Model {
  arch: Arch;
  /** Logits [N, C] from an NHWC batch [N, H, W, 3] normalised with `preprocessing`. */
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
  /**
   * The frozen prefix's activations (whole trunk steps whose layers are all frozen), inference mode, nothing kept
   * for backward when called outside a gradient tape; a copy of x when nothing is frozen (see head.ts).
   */
  forwardFrozen(x: tf.Tensor4D): tf.Tensor4D;
  /** The rest of the forward from forwardFrozen's output: forwardTrainable(forwardFrozen(x), t) == forward(x, t). */
  forwardTrainable(features: tf.Tensor4D, training: boolean): tf.Tensor2D;
  /** Layers covered by forwardFrozen (<= frozenLayers()). */
  frozenPrefixLayers(): number;
  /** The layer units forwardFrozen runs (their modules and batchnorms). */
  frozenPrefixUnits(): LayerUnit[];
  /** sigmoid(logit) per image (binary head only). */
  predictProba(x: tf.Tensor4D): tf.Tensor1D;
  /** Freeze the first n layers (see head.ts for what a "layer" is). */
  freezeLayers(n: number): void;
  layerCount(): number;
  trainableVariables(): tf.Variable[];
  /** The head's dense kernel (L2 penalty). */
  regularizedWeights(): tf.Variable[];
  parameterCount(): { total: number; trainable: number };
  stateDict(): Map<string, tf.Variable>;
  loadStateDict(sd: StateDict, opts?: LoadOptions): LoadReport;
  /** Plain-tensor copy of the state for checkpoints; PyTorch layout by default (loads in torchvision as is). */
  exportStateDict(layout?: 'torch' | 'tfjs'): StateDict;
  dispose(): void;
  /** Restart every dropout mask stream from `seed` (deterministic resume). */
  reseedDropout(seed: string | number): void;
  /** Names of the freezable layers in forward order. */
  layerNames(): string[];
  frozenLayers(): number;
  /** Outputs of the head (1 for the binary head). */
  readonly numOutputs: number;
  readonly headKind: 'imagenet' | 'binary';
}

/**
 * ImageNet normalisation, as torchvision's pretrained weights expect (RGB, values in [0, 1] before it): what a
 * zoo architecture's *weights* need, with no image size (ArchInfo.defaultInputSize, 224, is torchvision's ImageNet
 * evaluation crop). The MURA pipeline's full spec is data/preprocess.ts DEFAULT_PREPROCESSING: the same mean/std
 * (the networks start from ImageNet weights) but 320 px letterboxed, grey replicated to 3 channels, as in the MURA
 * paper. They differ on purpose: one describes the weights, the other how X-rays are fed to them.
 */
export const IMAGENET_PREPROCESSING = {
  mean: IMAGENET_MEAN as readonly [number, number, number],
  std: IMAGENET_STD as readonly [number, number, number],
  /** Input channel order. */
  channels: 'RGB' as const,
  /** Pixel values are scaled to [0, 1] before the mean/std normalisation. */
  scale: 1 / 255,
};

export interface ArchInfo {
  arch: Arch;
  family: 'resnet' | 'densenet';
  /** Parameters with torchvision's 1000-class classifier (equals torchvision's `num_params`). */
  params: number;
  /** Parameters with the MURA binary head (dropout -> dense(1)). */
  paramsBinaryHead: number;
  /** Layers counted by freezeLayers (see head.ts). */
  layers: number;
  /** Width of the pooled features fed to the classifier. */
  features: number;
  /** torchvision's evaluation crop; any size works (global average pooling). */
  defaultInputSize: number;
  preprocessing: typeof IMAGENET_PREPROCESSING;
  /** torchvision's published ImageNet weight files for this architecture (all load with `loadStateDict`). */
  torchvisionWeights: string[];
}

interface ArchDef {
  family: 'resnet' | 'densenet';
  build(makeHead: HeadFactory): Network;
  zeroBias: boolean;
  weights: string[];
  /** Default input size (224, torchvision's crop, unless set). */
  inputSize?: number;
}

const resnetDef = (c: ResNetConfig, weights: string[]): ArchDef => ({
  family: 'resnet',
  build: (h) => buildResNet({ block: c.block, layers: [...c.layers] }, h),
  zeroBias: false,
  weights,
});
const densenetDef = (c: DenseNetConfig, weights: string[]): ArchDef => ({
  family: 'densenet',
  build: (h) => buildDenseNet({ ...c, blockConfig: [...c.blockConfig] }, h),
  zeroBias: true,
  weights,
});

// File names from torchvision 0.14's weight enums (IMAGENET1K_V1 first, V2 where published) plus the legacy
// pre-0.13 files many projects still have on disk.
const DEFS: Record<Arch, ArchDef> = {
  resnet18: resnetDef(RESNET_CONFIGS.resnet18, ['resnet18-f37072fd.pth', 'resnet18-5c106cde.pth']),
  resnet34: resnetDef(RESNET_CONFIGS.resnet34, ['resnet34-b627a593.pth', 'resnet34-333f7ec4.pth']),
  resnet50: resnetDef(RESNET_CONFIGS.resnet50, ['resnet50-0676ba61.pth', 'resnet50-11ad3fa6.pth', 'resnet50-19c8e357.pth']),
  resnet101: resnetDef(RESNET_CONFIGS.resnet101, ['resnet101-63fe2227.pth', 'resnet101-cd907fc2.pth', 'resnet101-5d3b4d8f.pth']),
  resnet152: resnetDef(RESNET_CONFIGS.resnet152, ['resnet152-394f9c45.pth', 'resnet152-f82ba261.pth', 'resnet152-b121ed2d.pth']),
  densenet121: densenetDef(DENSENET_CONFIGS.densenet121, ['densenet121-a639ec97.pth']),
  densenet169: densenetDef(DENSENET_CONFIGS.densenet169, ['densenet169-b2777c0a.pth']),
  densenet201: densenetDef(DENSENET_CONFIGS.densenet201, ['densenet201-c1103571.pth']),
  'resnet-slim': { family: 'resnet', build: buildSlimResNet, zeroBias: false, weights: [], inputSize: 128 },
};

function resolveHead(arch: Arch, opts: CreateModelOptions): HeadSpec {
  const kind = opts.head ?? 'imagenet';
  const dropout = opts.dropout ?? 0.5;
  if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`dropout must be in [0, 1), got ${dropout}`);
  let numClasses = opts.numClasses ?? (kind === 'binary' ? 1 : 1000);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`numClasses must be a positive integer, got ${numClasses}`);
  if (kind === 'binary' && numClasses !== 1) {
    throw new RangeError(`the binary head has exactly one output; got numClasses ${numClasses} (use head 'imagenet' for ${numClasses} classes)`);
  }
  if (kind === 'binary') numClasses = 1;
  return { kind, numClasses, dropout, seed: opts.seed ?? 0, zeroBias: DEFS[arch].zeroBias };
}

function assertArch(arch: string): asserts arch is Arch {
  if (!isArch(arch)) throw new UnknownArchError(`unknown architecture "${arch}"; known: ${ALL_ARCHS.join(', ')}`);
}

/** The network's module tree with shapes only (no tensors allocated): for counting and metadata. */
export function buildSpec(arch: Arch, opts: CreateModelOptions = {}): Network {
  assertArch(arch);
  return DEFS[arch].build(headFactory(resolveHead(arch, opts)));
}

/** Build `arch` with freshly initialised (seeded, torchvision-style) weights. */
export function createModel(arch: Arch, opts: CreateModelOptions = {}): Model {
  assertArch(arch);
  const head = resolveHead(arch, opts);
  const net = DEFS[arch].build(headFactory(head));
  net.materialize(head.seed, arch, { random: (opts.init ?? 'random') === 'random' });
  return new NetworkModel(arch, net, head.kind);
}

/** Wrap a network built from a custom configuration (e.g. ResNet(Bottleneck, [1, 1, 1, 1])) as a Model-like object. */
export function createCustomModel<A extends string>(
  label: A,
  build: (makeHead: HeadFactory) => Network,
  opts: CreateModelOptions & { zeroBias?: boolean } = {},
): NetworkModel<A> {
  const kind = opts.head ?? 'imagenet';
  const spec: HeadSpec = {
    kind,
    numClasses: kind === 'binary' ? 1 : (opts.numClasses ?? 1000),
    dropout: opts.dropout ?? 0.5,
    seed: opts.seed ?? 0,
    zeroBias: opts.zeroBias ?? false,
  };
  const net = build(headFactory(spec));
  net.materialize(spec.seed, label, { random: (opts.init ?? 'random') === 'random' });
  return new NetworkModel(label, net, kind);
}

const infoCache = new Map<Arch, ArchInfo>();

/** Metadata for one architecture; counts come from the module tree's shapes (nothing is allocated). */
export function archInfo(arch: Arch): ArchInfo {
  assertArch(arch);
  const cached = infoCache.get(arch);
  if (cached) return cached;
  const full = buildSpec(arch, { head: 'imagenet' });
  const binary = buildSpec(arch, { head: 'binary' });
  const info: ArchInfo = {
    arch,
    family: DEFS[arch].family,
    params: countParams(full),
    paramsBinaryHead: countParams(binary),
    layers: full.layerUnits().length,
    features: full.head.inFeatures,
    defaultInputSize: DEFS[arch].inputSize ?? 224,
    preprocessing: IMAGENET_PREPROCESSING,
    torchvisionWeights: [...DEFS[arch].weights],
  };
  infoCache.set(arch, info);
  return info;
}

/** Every architecture (torchvision's, then the project's own). */
export function listArchs(): ArchInfo[] {
  return ALL_ARCHS.map(archInfo);
}

/** The architecture whose torchvision weight file is named `fileName` (basename), if any. */
export function archForWeightFile(fileName: string): Arch | undefined {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  return ALL_ARCHS.find((a) => DEFS[a].weights.includes(base));
}

export { NetworkModel };
export type { LoadOptions, LoadReport, StateDict };
