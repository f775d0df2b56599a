/**
 * Class activation maps for the zoo's networks (ResNet, DenseNet, ResNet-layout custom networks such as the
 * trainer's `resnet-slim`), in TF.js, for Node and the browser.
 *
 * Every network here ends in global average pooling + a Linear head, so the logit of output k is
 *   z_k = b_k + (1 / HW) sum_{i,j} sum_c w_{c,k} F_c(i, j)
 * and the class activation map (Zhou et al. 2016) CAM_k(i, j) = ReLU(sum_c w_{c,k} F_c(i, j)) over the last feature
 * map F says where the logit comes from. Its spatial mean before the ReLU, plus the bias, IS the logit. Grad-CAM
 * (Selvaraju et al. 2017) on F weights each channel by the spatial mean of dz/dF = w_c / HW, so on the last layer
 * Grad-CAM = CAM / HW (the same map up to a factor) and needs no gradient. `gradCam` / `gradCamPlusPlus` run on any
 * earlier trunk step (`layer3.0`, `features.denseblock3.denselayer24`, ...) through TF.js gradients; Grad-CAM++
 * follows Chattopadhyay et al. 2018 with the exp(score) closed form of pytorch-grad-cam / MONAI.
 *
 * Maps are [N, h, w] at the feature map's resolution: input / 32 for the zoo and for resnet-slim alike (its stride-2
 * stem, stride-2 max-pool and three stride-2 stages: 2x2 at 64 px, 4x4 at 128 px; tested);
 * src/inference/core/cam.ts upsamples them to the image and undoes the letterbox.
 */
import * as tf from '@tensorflow/tfjs-core';
import { NetworkModel } from './head.js';
import { BatchNorm2d, Conv2d, convBn, Linear, maxPool2d, relu, type Network, type TrunkStep } from './nn.js';
import { BasicBlock, Bottleneck } from './resnet.js';
import { DenseNet } from './densenet.js';
import type { Model } from './registry.js';

/** The layer name of the final feature map (what the head pools). */
export const FINAL_LAYER = 'features';

/** The forward as named steps ending in the final feature map, and the head on top of it. */
export interface CamChain {
  steps: TrunkStep[];
  /** After the last step: the final feature map F (DenseNet: relu(norm5(x)); ResNets: the identity). */
  finish(x: tf.Tensor4D): tf.Tensor4D;
  head: Linear;
}

/** Builds the CAM chain of a model; throws naming the network type when it is not one this module knows. */
export function camChain(model: Model | NetworkModel): CamChain {
  if (!(model instanceof NetworkModel)) throw new Error('CAM needs a model built by createModel / createCustomModel (a NetworkModel)');
  const net: Network = model.network;
  if (!(net.head instanceof Linear)) throw new Error(`${model.arch}: head ${(net.head as object).constructor.name} is not Linear; CAM needs a linear head over pooled features`);
  const head = net.head;
  if (net instanceof DenseNet) {
    const chain = net.trunk();
    const norm5 = net.features.norm5;
    return { steps: [...chain.steps], finish: (x) => tf.tidy(() => relu(norm5.forward(x, false))), head };
  }
  if (net.trunk) return { steps: [...net.trunk().steps], finish: (x) => tf.clone(x), head };
  // ResNet-layout network without trunk() (e.g. resnet-slim): conv1/bn1/stemPool/stages, as the ONNX exporter reads it.
  const n = net as unknown as Partial<{ conv1: unknown; bn1: unknown; stemPool: unknown; stages: unknown }>;
  if (n.conv1 instanceof Conv2d && n.bn1 instanceof BatchNorm2d && typeof n.stemPool === 'boolean' && Array.isArray(n.stages)) {
    const conv1 = n.conv1;
    const bn1 = n.bn1;
    const pool = n.stemPool;
    const steps: TrunkStep[] = [
      { name: 'conv1', unitsEnd: 1, forward: (x, t) => tf.tidy(() => { const y = convBn(conv1, bn1, x, t, true); return pool ? maxPool2d(y, 3, 2, 1) : y; }) },
    ];
    (n.stages as { blocks?: unknown }[]).forEach((st, si) => {
      const blocks = st.blocks;
      if (!Array.isArray(blocks) || !blocks.every((b) => b instanceof BasicBlock || b instanceof Bottleneck)) {
        throw new Error(`${model.arch}: stage ${si + 1} is not made of BasicBlock/Bottleneck blocks; cannot build its CAM chain`);
      }
      blocks.forEach((b: BasicBlock | Bottleneck, bi) => steps.push({ name: `layer${si + 1}.${bi}`, unitsEnd: 0, forward: (x, t) => b.forward(x, t) }));
    });
    return { steps, finish: (x) => tf.clone(x), head };
  }
  throw new Error(`${model.arch}: unsupported network type ${(net as object).constructor.name} for CAM (ResNet-layout and DenseNet networks only)`);
}

/** Names of the layers a map can be taken at: every trunk step, then 'features' (the final map, the default). */
export function camLayers(model: Model | NetworkModel): string[] {
  return [...camChain(model).steps.map((s) => s.name), FINAL_LAYER];
}

/**
 * The default layers of the OOD gate's feature statistics: the stem and the last step of each of the next two
 * stages (ResNets: conv1, layer1.N, layer2.N; DenseNets: features.conv0, the last layer of denseblock1,
 * transition1). Early layers see texture and contrast, which is what separates non-radiographs (measured).
 */
export function oodLayers(model: Model | NetworkModel): string[] {
  const names = camChain(model).steps.map((s) => s.name);
  const group = (n: string): string => n.replace(/\.(\d+|denselayer\d+)$/, '');
  const lastOfGroup: string[] = [];
  names.forEach((n, i) => {
    if (i === names.length - 1 || group(names[i + 1]!) !== group(n)) lastOfGroup.push(n);
  });
  return lastOfGroup.slice(0, 3);
}

/** The final feature map F [N, h, w, C] of an NHWC batch, in inference mode. */
export function finalFeatures(model: Model | NetworkModel, x: tf.Tensor4D): tf.Tensor4D {
  const c = camChain(model);
  return tf.tidy(() => {
    let out = x;
    for (const s of c.steps) out = s.forward(out, false);
    return c.finish(out);
  });
}

/**
 * Per-channel spatial mean and standard deviation of the outputs of `layers` (names from camLayers), concatenated in
 * that order: [N, sum_l 2 C_l] as [mean_l1, std_l1, mean_l2, std_l2, ...]. Feature statistics of early layers
 * describe texture and contrast (what tells noise, text or a flat field from a radiograph); the final layer's means
 * are the head's input. Inference mode. The caller disposes the result.
 */
export function layerStatistics(model: Model | NetworkModel, x: tf.Tensor4D, layers: readonly string[]): tf.Tensor2D {
  const c = camChain(model);
  const names = c.steps.map((s) => s.name);
  for (const l of layers) if (l !== FINAL_LAYER && !names.includes(l)) throw new Error(`unknown layer '${l}'; known: ${[...names, FINAL_LAYER].join(', ')}`);
  return tf.tidy(() => {
    const byName = new Map<string, tf.Tensor2D>();
    let out = x;
    for (const s of c.steps) {
      out = s.forward(out, false);
      if (layers.includes(s.name)) byName.set(s.name, featureStatistics(out));
    }
    if (layers.includes(FINAL_LAYER)) byName.set(FINAL_LAYER, featureStatistics(c.finish(out)));
    return tf.concat(layers.map((l) => byName.get(l)!), 1);
  });
}

/** [mean_c, std_c] over the spatial positions of each channel of a [N, h, w, C] map: [N, 2C]. */
function featureStatistics(a: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const m = tf.mean(a, [1, 2]) as tf.Tensor2D;
    const m2 = tf.mean(tf.square(a), [1, 2]) as tf.Tensor2D;
    const sd = tf.sqrt(tf.relu(tf.sub(m2, tf.square(m)))) as tf.Tensor2D;
    return tf.concat([m, sd], 1);
  });
}

/** sum_c w_{c,k} F_c(i, j) before the ReLU: [N, h, w]. */
function rawCam(f: tf.Tensor4D, head: Linear, classIndex: number): tf.Tensor3D {
  return tf.tidy(() => {
    const w = tf.reshape(tf.slice(head.weight.v, [0, classIndex], [-1, 1]), [-1]) as tf.Tensor1D; // our Linear keeps [in, out]
    return tf.sum(tf.mul(f, w), 3) as tf.Tensor3D;
  });
}

export interface ForwardWithExtrasResult {
  /** [N, K]: the network's forward (the same ops in the same order as model.forward(x, false)). */
  logits: tf.Tensor2D;
  /** [N, h, w]: classActivationMap's maps, when asked for. */
  maps?: tf.Tensor3D;
  /** [N, D]: layerStatistics(model, x, statsLayers), when asked for. */
  statistics?: tf.Tensor2D;
}

/**
 * The logits, the class activation map and the layer statistics of an NHWC batch from ONE pass through the network
 * (inference mode), for callers that want several of them (the TF.js inference fallback): the trunk runs once, the
 * statistics are taken as the named steps go by, and the head pools the same final feature map the CAM weights.
 * Each output equals what model.forward / classActivationMap / layerStatistics give separately. The caller disposes
 * the result.
 */
export function forwardWithExtras(model: Model | NetworkModel, x: tf.Tensor4D, opts: { cam?: boolean; classIndex?: number; statsLayers?: readonly string[] } = {}): ForwardWithExtrasResult {
  const c = camChain(model);
  const k = opts.classIndex ?? 0;
  if (opts.cam) checkClass(c.head, k);
  const layers = opts.statsLayers;
  const names = c.steps.map((s) => s.name);
  if (layers) for (const l of layers) if (l !== FINAL_LAYER && !names.includes(l)) throw new Error(`unknown layer '${l}'; known: ${[...names, FINAL_LAYER].join(', ')}`);
  return tf.tidy(() => {
    const byName = new Map<string, tf.Tensor2D>();
    let out = x;
    for (const s of c.steps) {
      out = s.forward(out, false);
      if (layers?.includes(s.name)) byName.set(s.name, featureStatistics(out));
    }
    const f = c.finish(out);
    if (layers?.includes(FINAL_LAYER)) byName.set(FINAL_LAYER, featureStatistics(f));
    const logits = c.head.forward(tf.mean(f, [1, 2]) as tf.Tensor2D); // BinaryHead: dropout off outside training
    return {
      logits,
      ...(opts.cam ? { maps: relu(rawCam(f, c.head, k)) as tf.Tensor3D } : {}),
      ...(layers ? { statistics: tf.concat(layers.map((l) => byName.get(l)!), 1) as tf.Tensor2D } : {}),
    };
  });
}

export interface CamResult {
  /** [N, h, w], ReLU'd, not normalised (the units of the logit). */
  maps: tf.Tensor3D;
  /** [N] logit of the class the maps are for. */
  logits: tf.Tensor1D;
}

/**
 * Class activation map of output `classIndex` (0: the binary head's abnormal logit) from the last feature map.
 * The caller disposes the result.
 */
export function classActivationMap(model: Model | NetworkModel, x: tf.Tensor4D, classIndex = 0): CamResult {
  const c = camChain(model);
  checkClass(c.head, classIndex);
  return tf.tidy(() => {
    const f = finalFeatures(model, x);
    const raw = rawCam(f, c.head, classIndex);
    const bias = tf.slice(c.head.bias.v, [classIndex], [1]);
    const logits = tf.add(tf.mean(raw, [1, 2]), bias) as tf.Tensor1D;
    return { maps: relu(raw), logits };
  });
}

export type GradCamMethod = 'gradcam' | 'gradcam++';

/**
 * Grad-CAM / Grad-CAM++ of output `classIndex` at `layer` (a name from camLayers). Gradients flow from the logit
 * back to that layer's output only; weights are not touched. The caller disposes the result.
 */
export function gradCam(model: Model | NetworkModel, x: tf.Tensor4D, opts: { layer?: string; method?: GradCamMethod; classIndex?: number } = {}): CamResult {
  const c = camChain(model);
  const layer = opts.layer ?? FINAL_LAYER;
  const k = opts.classIndex ?? 0;
  checkClass(c.head, k);
  const names = c.steps.map((s) => s.name);
  const at = layer === FINAL_LAYER ? names.length : names.indexOf(layer);
  if (at < 0) throw new Error(`unknown layer '${layer}'; known: ${[...names, FINAL_LAYER].join(', ')}`);
  return tf.tidy(() => {
    // Activation A of the chosen layer ('features': after finish()).
    let a = x;
    for (const s of c.steps.slice(0, at + (layer === FINAL_LAYER ? 0 : 1))) a = s.forward(a, false);
    if (layer === FINAL_LAYER) a = c.finish(a);
    const rest = layer === FINAL_LAYER ? [] : c.steps.slice(at + 1);
    const logitOf = (act: tf.Tensor4D): tf.Tensor1D => {
      let out = act;
      for (const s of rest) out = s.forward(out, false);
      if (layer !== FINAL_LAYER) out = c.finish(out);
      const pooled = tf.mean(out, [1, 2]) as tf.Tensor2D;
      return tf.reshape(tf.slice(c.head.forward(pooled), [0, k], [-1, 1]), [-1]) as tf.Tensor1D;
    };
    // Sum over the batch: each image's logit depends only on its own activation, so gradients stay per image.
    const g = tf.grad((act: tf.Tensor) => tf.sum(logitOf(act as tf.Tensor4D)))(a) as tf.Tensor4D;
    const logits = logitOf(a);
    let weights: tf.Tensor;
    if ((opts.method ?? 'gradcam') === 'gradcam') {
      weights = tf.mean(g, [1, 2], true); // [N, 1, 1, C]
    } else {
      const g2 = tf.square(g);
      const g3 = tf.mul(g2, g);
      const sumA = tf.sum(a, [1, 2], true);
      const denom = tf.add(tf.mul(g2, 2), tf.mul(sumA, g3));
      const aij = tf.where(tf.notEqual(g, 0), tf.div(g2, tf.add(denom, 1e-7)), tf.zerosLike(g));
      weights = tf.sum(tf.mul(aij, relu(g)), [1, 2], true);
    }
    return { maps: relu(tf.sum(tf.mul(a, weights), 3)) as tf.Tensor3D, logits };
  });
}

function checkClass(head: Linear, k: number): void {
  if (!Number.isInteger(k) || k < 0 || k >= head.outFeatures) throw new RangeError(`classIndex must be an integer in [0, ${head.outFeatures - 1}], got ${k}`);
}
