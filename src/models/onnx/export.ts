/**
 * Model -> ONNX: builds an ONNX graph (opset 17) with the weights of a live model from the zoo (ResNet-18..152,
 * DenseNet-121/169/201, any custom ResNet/DenseNet configuration), or any network built from the same modules in
 * the ResNet layout (e.g. the trainer's `resnet-slim`; see residualStructure), and its head, so inference can run in ONNX
 * Runtime (onnxruntime-node in Node, onnxruntime-web in the browser — the same file).
 *
 * The graph:
 *   input   float32 [batch, H, W, 3] NHWC (our preprocessing's layout; a Transpose to NCHW is the first node), or
 *           [batch, 3, H, W] NCHW with `inputLayout: 'nchw'` (torchvision's layout). `batch` is symbolic (any
 *           batch size); H = W = inputSize unless `dynamicSize` makes them symbolic too.
 *   body    NCHW Conv / Relu / MaxPool (pads, -inf padding semantics like PyTorch) / Add / Concat (DenseNet) /
 *           AveragePool (DenseNet transitions) / GlobalAveragePool / Flatten / Gemm, in the order the TF.js
 *           modules compute them.
 *   outputs `logits` [batch, K]; for the binary (MURA) head also `probability` = Sigmoid(logits) [batch, 1].
 *           Optional (binary head, extras.ts): `cam` [batch, h, w], `ood_score` [batch, 1], and a temperature that
 *           divides the logit before the sigmoid. Optional (any head): `features` [batch, C], the head's input.
 *   Dropout is the identity at inference and is not exported.
 *
 * BatchNorm: every BatchNorm that directly follows a convolution (ResNet: all of them; DenseNet: norm0 and each
 * layer's norm2) is folded into that conv by default: W' = W * g / sqrt(v + eps), b' = beta - m * g / sqrt(v + eps),
 * computed in float64 and rounded once to float32 (differences vs. the unfolded math are ~1e-7 relative). The
 * pre-activation BatchNorms of DenseNet (norm1, transition norms, norm5) follow a Concat, not a conv, and stay
 * `BatchNormalization` nodes (inference mode, running statistics). `foldBatchNorm: false` keeps every one.
 *
 * Initializers keep torchvision's state_dict names (`layer4.2.conv3.weight`, folded bias `layer4.2.conv3.bias`) so
 * the file is easy to inspect (Netron) and compare with PyTorch's.
 *
 * Where the weights come from (ExportWeights): a live model's TF.js variables (`exportOnnx`), or a state_dict read
 * straight into the graph (`exportOnnxFromStateDict`: a network built as a shape spec, no TF.js variables, and a
 * torchvision .pth's OIHW kernels go in as they are, with no transpose either way). One graph builder serves both, so
 * the two give the same file for the same weights.
 *
 * Only '@tensorflow/tfjs-core' is touched (to read the variables), so this module runs in Node and browsers.
 */
import { makePreprocessing, validatePreprocessing, type Preprocessing } from '../../data/preprocess.js';
import { BinaryHead, NetworkModel } from '../head.js';
import { BatchNorm2d, Conv2d, Linear, type Network, type Param } from '../nn.js';
import { BasicBlock, Bottleneck, ResNet } from '../resnet.js';
import { DenseNet } from '../densenet.js';
import { buildSpec, type Arch, type Model } from '../registry.js';
import { matchStateDict } from '../import.js';
import { toFloat32 } from '../weights/dtype.js';
import type { RawTensor, StateDict } from '../weights/types.js';
import { cardToOnnxMetadata, ONNX_CARD_KEY, type ModelCard } from '../card.js';
import {
  ONNX_EXPORT_FORMAT,
  ONNX_EXPORT_FORMAT_VERSION,
  ONNX_INPUT,
  ONNX_LOGITS,
  ONNX_PROBABILITY,
  ONNX_FEATURES,
  featuresMetadata,
  type InputLayout,
  type OnnxExportMetadata,
} from './format.js';
import { emitCam, emitOodScore, oodMetadata, ONNX_CAM, ONNX_OOD_SCORE, type OodStats } from './extras.js';
import { encodeModel, concatChunks, concatChunksInPlace, ONNX_OPSET, type OnnxGraph, type OnnxInitializer, type OnnxModelMeta, type OnnxNode, type OnnxValueInfo } from './graph.js';

export interface OnnxExportOptions {
  /** Height = width of the images the model was trained on (e.g. 320); fixed in the graph unless dynamicSize. */
  inputSize: number;
  /** 'nhwc' (default): [N, H, W, 3] like our preprocessing's output; 'nchw': [N, 3, H, W] like torchvision. */
  inputLayout?: InputLayout;
  /** Leave H and W symbolic ('height', 'width') so any image size runs; inputSize is still recorded. */
  dynamicSize?: boolean;
  /** Fold BatchNorm into the preceding conv where there is one (default true; see the module comment). */
  foldBatchNorm?: boolean;
  /** How images become input (stored as JSON metadata); default: the project's preprocessing at inputSize. */
  preprocessing?: Preprocessing;
  /** Probability at or above which an image is called abnormal (binary head; default 0.5). */
  decisionThreshold?: number;
  /** Recorded as producer_version and metadata `nextray_version` (the Node face fills in the package version). */
  nextrayVersion?: string;
  /** Anything else to store in metadata_props (string values; must not reuse the exporter's own keys). */
  extraMetadata?: Record<string, string>;
  /** Binary head: also output `cam` [batch, h, w], the class activation map (see extras.ts). */
  cam?: boolean;
  /** Binary head: temperature T > 0; `logits` become logit / T (calibrated probabilities). Default 1 (none). */
  temperature?: number;
  /** Binary head: an OOD gate; adds output `ood_score` and metadata `ood` (see extras.ts). */
  ood?: OodStats;
  /**
   * Also output `features` [batch, C]: the head's input (the globally average-pooled last feature map, per image),
   * so hosts can refit or apply another head with the model they already run (site adaptation); metadata
   * `features` describes it. Survives fp16 and int8 post-passes (in int8 it is the dequantized tensor the head reads).
   */
  features?: boolean;
  /**
   * The model card's sections beyond the model's shape (operating point, temperature's provenance, OOD summary,
   * training, dataset, versions, adaptation; src/models/card.ts), stored as metadata `model_card`. The shape and
   * decision fields always come from the export itself.
   */
  card?: Partial<ModelCard>;
}

export interface OnnxExport {
  /** The encoded ModelProto as chunks (large ones are views of the weights); see `toBytes` / the Node writer. */
  chunks: Uint8Array[];
  byteLength: number;
  metadata: OnnxExportMetadata;
  nodeCount: number;
  initializerCount: number;
  /** Float32 values stored in the file (folded weights included). */
  storedValues: number;
  /** One copy of the whole file, for `InferenceSession.create(bytes)`. */
  toBytes(): Uint8Array;
  /** The graph and model header that were encoded: input to post-passes (quantize.ts: fp16, int8). */
  graph: OnnxGraph;
  modelMeta: OnnxModelMeta;
}

/**
 * Where the graph builder reads a parameter's values. Arrays returned are the graph's own from then on (stored as
 * initializers): a source hands out a copy, or a view of data nobody changes while the export is used.
 */
export interface ExportWeights {
  /** A conv kernel as OIHW [out, in, k, k] with output channel o multiplied by scale[o] (a new array). */
  convOihw(conv: Conv2d, name: string, scale: Float64Array): Float32Array;
  /** Any other parameter, in the model's own layout (Linear kernels [in, out], vectors as they are). */
  values(p: Param, name: string): Float32Array;
}

/** HWIO [k, k, in, out] -> OIHW [out, in, k, k], output channel o scaled by scale[o]. */
function hwioToOihw(hwio: ArrayLike<number>, k: number, cin: number, cout: number, scale: Float64Array): Float32Array {
  const oihw = new Float32Array(k * k * cin * cout);
  for (let y = 0; y < k; y++) {
    for (let xx = 0; xx < k; xx++) {
      for (let i = 0; i < cin; i++) {
        const src = ((y * k + xx) * cin + i) * cout;
        for (let o = 0; o < cout; o++) oihw[((o * cin + i) * k + y) * k + xx] = hwio[src + o]! * scale[o]!;
      }
    }
  }
  return oihw;
}

/** Reads a TF.js variable's values (read-only: the backend's storage may be returned, so never write to it). */
function variableData(p: Param, what: string): Float32Array {
  const v = p.v;
  if (v.dtype !== 'float32') throw new Error(`${what}: expected float32, got ${v.dtype}`);
  return v.dataSync() as Float32Array;
}

/** A live model's TF.js variables (conv kernels HWIO, Linear [in, out]): copies, never the backend's storage. */
const variableWeights: ExportWeights = {
  convOihw(conv, name, scale) {
    const [k, , cin, cout] = conv.weight.shape as [number, number, number, number];
    return hwioToOihw(variableData(conv.weight, `${name}.weight`), k, cin, cout, scale);
  },
  values: (p, name) => Float32Array.from(variableData(p, name)),
};

/**
 * A state_dict matched to `network` (strictly: every key, every shape; StateDictMismatchError otherwise), read
 * directly: torchvision's OIHW kernels are only scaled (no transpose), [out, in] Linear kernels are transposed to
 * the builder's [in, out]; a project's own layout ('tfjs': HWIO, [in, out]) goes through the same conversion as the
 * variables. Vectors are views of the state_dict's data (the caller keeps it unchanged while the export lives).
 */
export function stateDictWeights(
  network: Network,
  sd: StateDict,
  opts: { layout?: 'torch' | 'tfjs' | 'auto'; source?: string; consume?: boolean } = {},
): ExportWeights {
  const { matched, layout } = matchStateDict(network, sd, { strict: true, layout: opts.layout ?? 'torch', ...(opts.source !== undefined ? { source: opts.source } : {}) });
  const keyOf = new Map(network.namedParams().map(([k, p]) => [p, k] as const));
  const scaled = new Map<ArrayBufferLike, Set<number>>();
  const tensor = (p: Param, name: string): RawTensor => {
    const t = matched.get(keyOf.get(p) ?? '');
    if (!t) throw new Error(`${name}: not in the state_dict (the network has no such parameter)`);
    return t;
  };
  return {
    convOihw(conv, name, scale) {
      const [k, , cin, cout] = conv.weight.shape as [number, number, number, number];
      const data = toFloat32(tensor(conv.weight, `${name}.weight`));
      if (layout === 'tfjs') return hwioToOihw(data, k, cin, cout, scale);
      // In place when the caller gives the state_dict up: no fresh 240 MB for ResNet-152 (on the machines measured,
      // touching fresh memory cost about as much as a copy of the weights, page faults included).
      // A storage two keys share (tied weights) is scaled once only: the second gets a copy.
      const inPlace = opts.consume === true && !scaled.has(data.buffer) ? true : opts.consume === true && !scaled.get(data.buffer)!.has(data.byteOffset);
      if (inPlace) {
        if (!scaled.has(data.buffer)) scaled.set(data.buffer, new Set());
        scaled.get(data.buffer)!.add(data.byteOffset);
      }
      const out = inPlace ? data : new Float32Array(data.length);
      const per = cin * k * k;
      for (let o = 0; o < cout; o++) {
        const s = scale[o]!;
        const base = o * per;
        for (let j = base; j < base + per; j++) out[j] = data[j]! * s;
      }
      return out;
    },
    values(p, name) {
      const data = toFloat32(tensor(p, name));
      if (layout === 'tfjs' || p.shape.length !== 2) return data;
      const [cin, cout] = p.shape as [number, number];
      const t = new Float32Array(data.length);
      for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) t[i * cout + o] = data[o * cin + i]!;
      return t;
    },
  };
}

class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly inits: OnnxInitializer[] = [];
  private counter = 0;
  storedValues = 0;
  /** Every parameter whose values went into the graph (folded or stored), for the coverage check. */
  readonly used = new Set<Param>();

  constructor(
    private readonly fold: boolean,
    readonly weights: ExportWeights,
  ) {}

  private fresh(hint: string): string {
    return `${hint}:${this.counter++}`;
  }

  init(name: string, dims: number[], data: Float32Array): string {
    this.inits.push({ name, dims, data });
    this.storedValues += data.length;
    return name;
  }

  /** Append a node; its output is a fresh name from `hint`, or exactly `outName` (graph outputs). */
  node(opType: string, inputs: string[], hint: string, attrs?: OnnxNode['attrs'], outName?: string): string {
    const out = outName ?? this.fresh(hint);
    this.nodes.push({ opType, inputs, outputs: [out], name: out, ...(attrs ? { attrs } : {}) });
    return out;
  }

  relu(x: string, hint: string): string {
    return this.node('Relu', [x], `${hint}.relu`);
  }

  /** Conv2d (+ the BatchNorm2d that directly follows it, folded when allowed). */
  conv(x: string, conv: Conv2d, name: string, bn?: { module: BatchNorm2d; name: string }): string {
    const [k, k2, cin, cout] = conv.weight.shape as [number, number, number, number];
    if (k !== k2) throw new Error(`${name}: non-square kernel ${k}x${k2} is not supported`);
    this.used.add(conv.weight);
    if (conv.bias) this.used.add(conv.bias);
    if (bn) for (const [, p] of bn.module.namedParams()) this.used.add(p);
    const scale = new Float64Array(cout).fill(1);
    const shift = new Float64Array(cout);
    const foldHere = bn !== undefined && this.fold;
    if (conv.bias) {
      const b = this.weights.values(conv.bias, `${name}.bias`);
      for (let o = 0; o < cout; o++) shift[o] = b[o]!;
    }
    if (foldHere) {
      const { g, beta, mean, variance, eps } = bnValues(this.weights, bn.module, bn.name);
      for (let o = 0; o < cout; o++) {
        const s = g[o]! / Math.sqrt(variance[o]! + eps);
        shift[o] = (shift[o]! - mean[o]!) * s + beta[o]!;
        scale[o] = s;
      }
    }
    const oihw = this.weights.convOihw(conv, name, scale);
    const inputs = [x, this.init(`${name}.weight`, [cout, cin, k, k], oihw)];
    if (conv.bias || foldHere) inputs.push(this.init(`${name}.bias`, [cout], Float32Array.from(shift)));
    const p = conv.padding;
    let y = this.node('Conv', inputs, name, {
      kernel_shape: [k, k],
      strides: [conv.stride, conv.stride],
      pads: [p, p, p, p],
      dilations: [1, 1],
      group: 1,
    });
    if (bn && !foldHere) y = this.batchNorm(y, bn.module, bn.name);
    return y;
  }

  batchNorm(x: string, bn: BatchNorm2d, name: string): string {
    const { g, beta, mean, variance, eps } = bnValues(this.weights, bn, name);
    for (const [, p] of bn.namedParams()) this.used.add(p);
    const n = bn.numFeatures;
    return this.node(
      'BatchNormalization',
      [
        x,
        this.init(`${name}.weight`, [n], g),
        this.init(`${name}.bias`, [n], beta),
        this.init(`${name}.running_mean`, [n], mean),
        this.init(`${name}.running_var`, [n], variance),
      ],
      name,
      { epsilon: { float: eps } },
    );
  }

  maxPool(x: string, k: number, s: number, p: number, hint: string): string {
    return this.node('MaxPool', [x], hint, { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], ceil_mode: 0 });
  }

  /** Linear head: pooled [N, C] x W [C, K] + b (our Linear keeps its kernel [in, out], so no transpose). */
  gemm(x: string, lin: Linear, name: string, outName: string): string {
    const w = this.weights.values(lin.weight, `${name}.weight`);
    const b = this.weights.values(lin.bias, `${name}.bias`);
    for (const [, p] of lin.namedParams()) this.used.add(p);
    return this.node('Gemm', [x, this.init(`${name}.weight`, [lin.inFeatures, lin.outFeatures], w), this.init(`${name}.bias`, [lin.outFeatures], b)], name, {
      alpha: { float: 1 },
      beta: { float: 1 },
      transA: 0,
      transB: 0,
    }, outName);
  }
}

function bnValues(weights: ExportWeights, bn: BatchNorm2d, name: string) {
  return {
    g: weights.values(bn.weight, `${name}.weight`),
    beta: weights.values(bn.bias, `${name}.bias`),
    mean: weights.values(bn.runningMean, `${name}.running_mean`),
    variance: weights.values(bn.runningVar, `${name}.running_var`),
    eps: bn.eps,
  };
}

/**
 * The structure a residual network must expose to be exported: torchvision's ResNet layout (stem conv1 + bn1 +
 * ReLU, optional 3x3/2 max-pool, stages of BasicBlock/Bottleneck blocks with optional Downsample, global average
 * pool, Linear head). The zoo's ResNet always pools; any other network qualifies only when it says whether it
 * pools with a boolean `stemPool` (e.g. src/train/archs.ts's SlimResNet) — without that flag its forward is
 * unknown and exporting it could silently differ from TF.js.
 */
interface ResidualStructure {
  conv1: Conv2d;
  bn1: BatchNorm2d;
  stemPool: boolean;
  stages: { blocks: Array<BasicBlock | Bottleneck> }[];
}

function residualStructure(net: Network): ResidualStructure | null {
  const n = net as unknown as Partial<{ conv1: unknown; bn1: unknown; stemPool: unknown; stages: unknown }>;
  if (!(n.conv1 instanceof Conv2d) || !(n.bn1 instanceof BatchNorm2d) || !Array.isArray(n.stages)) return null;
  const stemPool = net instanceof ResNet ? true : typeof n.stemPool === 'boolean' ? n.stemPool : null;
  if (stemPool === null) return null;
  const stages = n.stages as unknown[];
  for (const st of stages) {
    const blocks = (st as { blocks?: unknown }).blocks;
    if (!Array.isArray(blocks) || !blocks.every((bl) => bl instanceof BasicBlock || bl instanceof Bottleneck)) return null;
  }
  return { conv1: n.conv1, bn1: n.bn1, stemPool, stages: stages as ResidualStructure['stages'] };
}

/** Every parameter of `net` the graph must carry (a network with parts the structure walk misses is refused). */
function checkCovered(net: Network, arch: string, used: ReadonlySet<Param>): void {
  const missing = net.namedParams().filter(([, p]) => !used.has(p)).map(([name]) => name);
  if (missing.length) {
    throw new Error(`${arch}: cannot export: parameter(s) ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ' ...' : ''} are not part of the recognised structure`);
  }
}

function emitResNet(b: GraphBuilder, net: ResidualStructure, x: string, taps: Map<string, string>): string {
  let out = b.relu(b.conv(x, net.conv1, 'conv1', { module: net.bn1, name: 'bn1' }), 'conv1');
  if (net.stemPool) out = b.maxPool(out, 3, 2, 1, 'maxpool');
  taps.set('conv1', out);
  net.stages.forEach((stage, si) => {
    stage.blocks.forEach((block, bi) => {
      const p = `layer${si + 1}.${bi}`;
      const input = out;
      let y: string;
      if (block instanceof Bottleneck) {
        y = b.relu(b.conv(input, block.conv1, `${p}.conv1`, { module: block.bn1, name: `${p}.bn1` }), `${p}.conv1`);
        y = b.relu(b.conv(y, block.conv2, `${p}.conv2`, { module: block.bn2, name: `${p}.bn2` }), `${p}.conv2`);
        y = b.conv(y, block.conv3, `${p}.conv3`, { module: block.bn3, name: `${p}.bn3` });
      } else if (block instanceof BasicBlock) {
        y = b.relu(b.conv(input, block.conv1, `${p}.conv1`, { module: block.bn1, name: `${p}.bn1` }), `${p}.conv1`);
        y = b.conv(y, block.conv2, `${p}.conv2`, { module: block.bn2, name: `${p}.bn2` });
      } else {
        throw new Error(`${p}: unsupported residual block type ${(block as object).constructor.name}`);
      }
      const ds = block.downsample;
      const identity = ds ? b.conv(input, ds.conv, `${p}.downsample.0`, { module: ds.bn, name: `${p}.downsample.1` }) : input;
      out = b.relu(b.node('Add', [y, identity], `${p}.add`), p);
      taps.set(p, out);
    });
  });
  return out;
}

function emitDenseNet(b: GraphBuilder, net: DenseNet, x: string, taps: Map<string, string>): string {
  const f = net.features;
  let out = b.relu(b.conv(x, f.conv0, 'features.conv0', { module: f.norm0, name: 'features.norm0' }), 'features.relu0');
  out = b.maxPool(out, 3, 2, 1, 'features.pool0');
  taps.set('features.conv0', out);
  f.blocks.forEach((block, bi) => {
    block.layers.forEach((layer, li) => {
      const p = `features.denseblock${bi + 1}.denselayer${li + 1}`;
      let y = b.relu(b.batchNorm(out, layer.norm1, `${p}.norm1`), `${p}.relu1`);
      y = b.relu(b.conv(y, layer.conv1, `${p}.conv1`, { module: layer.norm2, name: `${p}.norm2` }), `${p}.relu2`);
      y = b.conv(y, layer.conv2, `${p}.conv2`);
      out = b.node('Concat', [out, y], `${p}.concat`, { axis: 1 });
      taps.set(p, out);
    });
    const t = f.transitions[bi];
    if (t) {
      const p = `features.transition${bi + 1}`;
      let y = b.relu(b.batchNorm(out, t.norm, `${p}.norm`), `${p}.relu`);
      y = b.conv(y, t.conv, `${p}.conv`);
      out = b.node('AveragePool', [y], `${p}.pool`, { kernel_shape: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], ceil_mode: 0 });
      taps.set(p, out);
    }
  });
  out = b.relu(b.batchNorm(out, f.norm5, 'features.norm5'), 'features.relu5');
  return out;
}

function networkOf(model: Model | NetworkModel): { net: Network; arch: string; headKind: 'imagenet' | 'binary' } {
  if (!(model instanceof NetworkModel)) {
    throw new Error('exportOnnx needs a model built by createModel / createCustomModel (a NetworkModel)');
  }
  return { net: model.network, arch: model.arch, headKind: model.headKind };
}

/**
 * Build the ONNX model for `model` (which must hold its weights: createModel + loadStateDict, or a trained model).
 * Reads the weights once; allocates no TF.js tensors.
 */
export function exportOnnx(model: Model | NetworkModel, opts: OnnxExportOptions): OnnxExport {
  const { net, arch, headKind } = networkOf(model);
  return exportNetwork(net, arch, headKind, variableWeights, opts);
}

export interface StateDictExportOptions extends OnnxExportOptions {
  /** The head the weights hold: 'imagenet' with numClasses outputs (default 1000) or the binary MURA head. */
  head: 'imagenet' | 'binary';
  numClasses?: number;
  /** The state_dict's layout: 'torch' (default; a torchvision .pth/.safetensors), 'tfjs' or 'auto'. */
  layout?: 'torch' | 'tfjs' | 'auto';
  /** Names the weights in error messages (e.g. the file path). */
  source?: string;
  /**
   * The state_dict may be overwritten (conv kernels scaled in place by the folded BatchNorm) instead of copied: for
   * a caller that reads the weights only to export them; `toBytes` then writes the model over the buffer the weights
   * were read into, so after it neither the state_dict nor the export's `graph` may be read. Default false.
   */
  consume?: boolean;
}

/**
 * The same ONNX model as `createModel(arch)` + `loadStateDict(sd)` + `exportOnnx`, straight from the state_dict:
 * no TF.js variables are allocated and no kernel goes OIHW -> HWIO -> OIHW (for ResNet-152 that round trip, the
 * variables and their read-back took most of `nextray forward`'s set-up). Strict like loadStateDict.
 */
export function exportOnnxFromStateDict(arch: Arch, sd: StateDict, opts: StateDictExportOptions): OnnxExport {
  const net = buildSpec(arch, { head: opts.head, ...(opts.head === 'imagenet' ? { numClasses: opts.numClasses ?? 1000 } : {}) });
  return exportNetworkFromStateDict(net, arch, sd, opts);
}

/** `exportOnnxFromStateDict` for any network of the zoo's modules (a custom configuration), built or only specified. */
export function exportNetworkFromStateDict(net: Network, arch: string, sd: StateDict, opts: StateDictExportOptions): OnnxExport {
  const weights = stateDictWeights(net, sd, {
    ...(opts.layout !== undefined ? { layout: opts.layout } : {}),
    ...(opts.source !== undefined ? { source: opts.source } : {}),
    consume: opts.consume ?? false,
  });
  const ex = exportNetwork(net, arch, opts.head, weights, opts);
  if (opts.consume !== true) return ex;
  // The weights are the caller's to lose: the model is written over the buffer they were read into (once). A .pth
  // keeps its tensors in the order of their storage keys as strings (data/0, data/1, data/10, ...), not the
  // network's, so the initializers (whose order ONNX leaves free) are encoded in the order they lie in that buffer,
  // which lets each one move down to its place; the bytes differ from the plain export's only in that order.
  let bytes: Uint8Array | undefined;
  const toBytes = (): Uint8Array => {
    if (bytes) return bytes;
    const held = new Map<ArrayBufferLike, number>();
    for (const i of ex.graph.initializers) held.set(i.data.buffer, (held.get(i.data.buffer) ?? 0) + i.data.byteLength);
    const host = [...held].reduce<[ArrayBufferLike | undefined, number]>((a, b) => (b[1] > a[1] ? b : a), [undefined, 0])[0];
    // The host's tensors first, in buffer order; the rest (folded biases, copies) after them, as built.
    const at = (i: OnnxInitializer): number => (i.data.buffer === host ? i.data.byteOffset : Infinity);
    const initializers = [...ex.graph.initializers].sort((a, b) => (at(a) === at(b) ? 0 : at(a) < at(b) ? -1 : 1));
    const chunks = encodeModel({ ...ex.graph, initializers }, ex.modelMeta);
    bytes = concatChunksInPlace(chunks);
    ex.chunks.splice(0, ex.chunks.length, bytes);
    return bytes;
  };
  return { ...ex, toBytes };
}

function exportNetwork(net: Network, arch: string, headKind: 'imagenet' | 'binary', weights: ExportWeights, opts: OnnxExportOptions): OnnxExport {
  const size = opts.inputSize;
  if (!Number.isInteger(size) || size < 32 || size > 4096) {
    throw new RangeError(`inputSize must be an integer in [32, 4096] (five stride-2 reductions need at least 32), got ${size}`);
  }
  const layout = opts.inputLayout ?? 'nhwc';
  if (layout !== 'nhwc' && layout !== 'nchw') throw new RangeError(`inputLayout must be 'nhwc' or 'nchw', got ${String(layout)}`);
  const threshold = opts.decisionThreshold ?? 0.5;
  if (!(threshold >= 0 && threshold <= 1)) throw new RangeError(`decisionThreshold must be in [0, 1], got ${threshold}`);
  const preprocessing = opts.preprocessing ? validatePreprocessing(opts.preprocessing) : makePreprocessing({ size });
  const fold = opts.foldBatchNorm ?? true;

  const head = net.head;
  if (!(head instanceof Linear)) throw new Error(`${arch}: head ${(head as object).constructor.name} is not a Linear head; cannot export`);
  const binary = headKind === 'binary';
  if (binary && head.outFeatures !== 1) throw new Error(`${arch}: binary head with ${head.outFeatures} outputs`);

  const b = new GraphBuilder(fold, weights);
  const h: number | string = opts.dynamicSize ? 'height' : size;
  const w: number | string = opts.dynamicSize ? 'width' : size;
  const input: OnnxValueInfo = {
    name: ONNX_INPUT,
    elemType: 'float32',
    shape: layout === 'nhwc' ? ['batch', h, w, 3] : ['batch', 3, h, w],
  };
  let x = ONNX_INPUT;
  if (layout === 'nhwc') x = b.node('Transpose', [x], 'to_nchw', { perm: [0, 3, 1, 2] });

  let featureMap: string;
  const residual = residualStructure(net);
  const taps = new Map<string, string>();
  if (residual) featureMap = emitResNet(b, residual, x, taps);
  else if (net instanceof DenseNet) featureMap = emitDenseNet(b, net, x, taps);
  else {
    throw new Error(
      `${arch}: unsupported network type ${(net as object).constructor.name} (exportable: ResNet-style conv1/bn1/stages of ` +
        'BasicBlock/Bottleneck with a boolean stemPool, and DenseNet)',
    );
  }

  const pooled = b.node('GlobalAveragePool', [featureMap], 'avgpool');
  const flat = b.node('Flatten', [pooled], 'flatten', { axis: 1 });
  const headName = net.classifierName;
  const temperature = opts.temperature ?? 1;
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new RangeError(`temperature must be a positive number, got ${temperature}`);
  if (!binary && (opts.cam || opts.ood || temperature !== 1)) throw new Error(`${arch}: cam, temperature and ood need the binary head`);
  const gemmOut = b.gemm(flat, head, headName, temperature === 1 ? ONNX_LOGITS : 'logits_uncalibrated');
  // `features` is an Identity of the head's input rather than the Flatten's own output: a graph output is never
  // quantized (quantize.ts), and the int8 head must keep reading a quantized tensor.
  if (opts.features) b.node('Identity', [flat], 'features', undefined, ONNX_FEATURES);
  if (temperature !== 1) b.node('Div', [gemmOut, b.init('temperature', [1], Float32Array.of(temperature))], 'calibrate', undefined, ONNX_LOGITS);
  checkCovered(net, arch, b.used);
  const outputs: OnnxValueInfo[] = [{ name: ONNX_LOGITS, elemType: 'float32', shape: ['batch', head.outFeatures] }];
  if (binary) {
    b.node('Sigmoid', [ONNX_LOGITS], 'sigmoid', undefined, ONNX_PROBABILITY);
    outputs.push({ name: ONNX_PROBABILITY, elemType: 'float32', shape: ['batch', 1] });
  }
  if (opts.cam) {
    emitCam(b, featureMap, weights.values(head.weight, `${headName}.weight`), head.inFeatures, head.outFeatures);
    outputs.push({ name: ONNX_CAM, elemType: 'float32', shape: ['batch', 'cam_height', 'cam_width'] });
  }
  if (opts.ood) {
    taps.set('features', featureMap);
    emitOodScore(b, taps, opts.ood);
    outputs.push({ name: ONNX_OOD_SCORE, elemType: 'float32', shape: ['batch', 1] });
  }
  if (opts.features) outputs.push({ name: ONNX_FEATURES, elemType: 'float32', shape: ['batch', head.inFeatures] });

  const version = opts.nextrayVersion ?? 'unknown';
  const headInfo = binary
    ? { kind: 'binary', outputs: 1, dropout: head instanceof BinaryHead ? head.dropoutRate : undefined }
    : { kind: 'imagenet', outputs: head.outFeatures };
  // The model's description is its card's serialisation (src/models/card.ts); the graph's own keys are set here.
  const { name: _name, arch: _arch, inputSize: _inputSize, preprocessing: _pre, head: _head, decisionThreshold: _dt, sha256: _sha, ...sections } = opts.card ?? {};
  const card: ModelCard = {
    name: arch,
    arch,
    inputSize: size,
    preprocessing,
    head: headInfo as ModelCard['head'],
    decisionThreshold: binary ? threshold : null,
    ...sections,
    // The graph's temperature is the one that counts; the card only adds where it came from.
    ...(temperature !== 1 ? { temperature: { level: 'image', fittedOn: 'unknown', ...sections.temperature, value: temperature } } : {}),
  };
  if (temperature === 1) delete card.temperature;
  const cardMeta = cardToOnnxMetadata(card);
  const metadata: OnnxExportMetadata = {
    format: ONNX_EXPORT_FORMAT,
    format_version: String(ONNX_EXPORT_FORMAT_VERSION),
    arch: cardMeta.arch!,
    input_size: cardMeta.input_size!,
    input_layout: layout === 'nhwc' ? 'NHWC' : 'NCHW',
    input_name: ONNX_INPUT,
    dynamic_size: opts.dynamicSize ? 'true' : 'false',
    preprocessing: cardMeta.preprocessing!,
    head: cardMeta.head!,
    decision_threshold: cardMeta.decision_threshold!,
    outputs: outputs.map((o) => o.name).join(','),
    batchnorm: fold ? 'folded' : 'kept',
    nextray_version: version,
    ...(cardMeta.temperature !== undefined ? { temperature: cardMeta.temperature } : {}),
    ...(opts.ood ? { ood: JSON.stringify(oodMetadata(opts.ood)) } : {}),
    ...(opts.features ? { features: JSON.stringify(featuresMetadata(head.inFeatures, headName)) } : {}),
    ...(opts.card && cardMeta[ONNX_CARD_KEY] !== undefined ? { [ONNX_CARD_KEY]: cardMeta[ONNX_CARD_KEY] } : {}),
  };
  for (const [k, v] of Object.entries(opts.extraMetadata ?? {})) {
    if (k in metadata) throw new Error(`extraMetadata key '${k}' is reserved by the exporter`);
    if (typeof v !== 'string') throw new TypeError(`extraMetadata['${k}'] must be a string`);
    metadata[k] = v;
  }

  const graph: OnnxGraph = {
    name: arch,
    nodes: b.nodes,
    initializers: b.inits,
    inputs: [input],
    outputs,
    docString: `${arch} with a ${headInfo.kind} head, exported by nextray ${version}; input ${metadata.input_layout} float32 normalised per 'preprocessing' metadata`,
  };
  const modelMeta: OnnxModelMeta = {
    producerName: 'nextray',
    producerVersion: version,
    docString: 'neXt-Ray abnormality classifier (MURA upper-extremity radiographs)',
    metadata,
    opset: ONNX_OPSET,
  };
  const chunks = encodeModel(graph, modelMeta);
  let byteLength = 0;
  for (const c of chunks) byteLength += c.byteLength;
  return {
    chunks,
    byteLength,
    metadata,
    nodeCount: b.nodes.length,
    initializerCount: b.inits.length,
    storedValues: b.storedValues,
    toBytes: () => concatChunks(chunks),
    graph,
    modelMeta,
  };
}

export { ONNX_EXPORT_FORMAT, ONNX_EXPORT_FORMAT_VERSION, ONNX_INPUT, ONNX_LOGITS, ONNX_PROBABILITY, ONNX_FEATURES, type InputLayout, type OnnxExportMetadata };
