/**
 * Fused training ops: batch normalisation in training mode (statistics + normalisation [+ ReLU] and its
 * gradient) and Adam's parameter update, each one TF.js kernel instead of tens of elementwise ones.
 *
 * TF.js differentiates `moments()` + `batchNorm()` into ~40 kernels per layer and runs Adam as ten per
 * parameter, every one allocating a full-size output; on the CPU that cost more than the convolutions. Each op
 * here runs its kernel when the active backend has one registered (src/engine/fused-kernels.ts registers JS
 * versions for 'cpu' and oneDNN-addon versions for 'nextray-native') and otherwise the same maths composed
 * of standard TF.js ops, so the model code is unchanged on any backend (webgl, wasm, tfjs-node). Browser-safe:
 * this file imports nothing from Node.
 */
import * as tf from '@tensorflow/tfjs-core';

/** inputs {x, scale, offset}; attrs {varianceEpsilon, relu}; outputs [y, mean, variance (biased)]. */
export const BATCH_NORM_TRAIN = 'NextrayBatchNormTrain';
/** inputs {dy, x, mean, variance, scale, offset}; attrs {varianceEpsilon, relu}; outputs [dx, dscale, doffset]. */
export const BATCH_NORM_TRAIN_GRAD = 'NextrayBatchNormTrainGrad';
/** inputs {a, b} (same shape); outputs [relu(a + b)]: the end of every residual block. */
export const ADD_RELU = 'NextrayAddRelu';
/** inputs {dy, y}; outputs [dy where y > 0, else 0]: ReLU's gradient from its output. */
export const RELU_GRAD = 'NextrayReluGrad';
/**
 * inputs {x, filter, scale, shift, residual?}; attrs {strides, pad, relu}; outputs
 * [[relu](conv2d(x, filter) * scale + shift [+ residual])]: a convolution with an inference-mode batch norm folded
 * in (scale and shift per output channel), optionally closing a residual block. Registered only where a backend
 * can fold inside its own weight layout (the native engine); elsewhere convBn folds the filter itself.
 */
export const CONV_BN = 'NextrayConvBn';
/** inputs {param, m, v, grad}; attrs {beta1, beta2, stepSize, bc2Sqrt, epsilon}; outputs [param, m, v]. */
export const ADAM_UPDATE = 'NextrayAdamUpdate';

export interface BatchNormTrainAttrs {
  varianceEpsilon: number;
  relu: boolean;
}

export interface ConvBnAttrs {
  strides: [number, number];
  /** 'valid', 'same', or explicit NHWC padding [[0, 0], [top, bottom], [left, right], [0, 0]]. */
  pad: 'valid' | 'same' | [[number, number], [number, number], [number, number], [number, number]];
  relu: boolean;
}

export interface AdamUpdateAttrs {
  beta1: number;
  beta2: number;
  /** lr / (1 - beta1^t) */
  stepSize: number;
  /** sqrt(1 - beta2^t) */
  bc2Sqrt: number;
  epsilon: number;
}

function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** Whether the active backend runs the fused batch-norm kernels (else the ops compose standard ones). */
export function fusedBatchNormAvailable(): boolean {
  return hasKernel(BATCH_NORM_TRAIN) && hasKernel(BATCH_NORM_TRAIN_GRAD);
}

const asAttrs = (a: object) => a as unknown as tf.NamedAttrMap;

/** Kernels return a list of outputs; runKernel passes a one-element list through as a list. */
const single = (r: tf.Tensor | tf.Tensor[]): tf.Tensor => (Array.isArray(r) ? r[0]! : r);

/**
 * The gradient of y = [relu](offset + (x - mean) * scale / sqrt(var + eps)) with the statistics taken from x
 * (over every axis but the last), as standard ops: the closed form, not autodiff through moments().
 */
function batchNormTrainGradComposed(
  dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, attrs: BatchNormTrainAttrs,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const axes = x.shape.map((_, i) => i).slice(0, -1);
    const rows = x.size / x.shape[x.shape.length - 1]!;
    const inv = tf.rsqrt(tf.add(variance, attrs.varianceEpsilon));
    const xc = tf.sub(x, mean);
    let g = dy;
    if (attrs.relu) {
      const y = tf.add(tf.mul(xc, tf.mul(inv, scale)), offset);
      g = tf.mul(dy, tf.step(y));
    }
    const sumG = tf.sum(g, axes);
    const sumGX = tf.sum(tf.mul(g, xc), axes);
    const dscale = tf.mul(sumGX, inv);
    const k = tf.mul(scale, inv);
    const dx = tf.mul(k, tf.sub(tf.sub(g, tf.div(sumG, rows)), tf.mul(xc, tf.mul(tf.square(inv), tf.div(sumGX, rows)))));
    return [dx, dscale, sumG] as [tf.Tensor, tf.Tensor, tf.Tensor];
  });
}

let gradientRegistered = false;

function registerBatchNormGradient(): void {
  if (gradientRegistered) return;
  gradientRegistered = true;
  tf.registerGradient({
    kernelName: BATCH_NORM_TRAIN,
    inputsToSave: ['x', 'scale', 'offset'],
    outputsToSave: [false, true, true],
    gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrsIn: tf.NamedAttrMap) => {
      const [dyIn, dMean, dVar] = dys as (tf.Tensor | null)[];
      const [x, scale, offset, mean, variance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const attrs = attrsIn as unknown as BatchNormTrainAttrs;
      // The three gradients come from one kernel call, made here rather than in the per-input closures: the tape
      // calls only the closures of inputs on a path from the differentiated variables (a frozen prefix's output
      // has none), and it keeps every intermediate gradient until the end of backprop anyway, so tensors made in
      // this scope cost no extra memory and are disposed with it when unused.
      const dy = dyIn ?? tf.zerosLike(x);
      const inputs = { dy, x, mean, variance, scale, offset };
      const trio = hasKernel(BATCH_NORM_TRAIN_GRAD)
        ? (tf.engine().runKernel(BATCH_NORM_TRAIN_GRAD, inputs as unknown as tf.NamedTensorMap, asAttrs(attrs)) as tf.Tensor[])
        : batchNormTrainGradComposed(dy, x, mean, variance, scale, offset, attrs);
      // The engine hands zero tensors for outputs that do not reach the loss (here: the statistics, used only for
      // the running averages), so test the values (C of them) rather than null: the extra term costs three
      // full-size passes.
      const used = (t: tf.Tensor | null) => t !== null && (t.dataSync() as Float32Array).some((v) => v !== 0);
      if (used(dMean) || used(dVar)) {
        // The statistics are outputs too (for running averages); if a loss used them, their gradients
        // reach x through mean = sum(x)/M and var = sum((x-mean)^2)/M.
        const rows = x.size / x.shape[x.shape.length - 1]!;
        trio[0] = tf.tidy(() => {
          let e = trio[0]!;
          if (dMean) e = tf.add(e, tf.div(dMean, rows));
          if (dVar) e = tf.add(e, tf.mul(tf.sub(x, mean), tf.mul(dVar, 2 / rows)));
          return e;
        });
      }
      const take = (i: number) => (): tf.Tensor => trio[i]!;
      return { x: take(0), scale: take(1), offset: take(2) };
    },
  });
}
registerBatchNormGradient();

/** ReLU's gradient from its output y: dy where y > 0, else 0 (one kernel where the backend has it). */
function reluGradFromOutput(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return hasKernel(RELU_GRAD) ? single(tf.engine().runKernel(RELU_GRAD, { dy, y } as unknown as tf.NamedTensorMap)) : tf.mul(dy, tf.step(y));
}

tf.registerGradient({
  kernelName: ADD_RELU,
  outputsToSave: [true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
    const g = reluGradFromOutput(dy as tf.Tensor, saved[0]!);
    // Each input gets its own tensor (sharing the data): the tape disposes one input's gradient when it adds to it.
    return { a: () => g, b: () => tf.clone(g) };
  },
});

tf.registerGradient({
  kernelName: CONV_BN,
  inputsToSave: ['x', 'filter', 'scale'],
  outputsToSave: [true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrsIn: tf.NamedAttrMap) => {
    const [x, filter, scale, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor4D];
    const attrs = attrsIn as unknown as ConvBnAttrs;
    const d = dy as tf.Tensor4D;
    // z = conv(x, filter) * scale + shift [+ residual]; y = [relu](z). dz/dx is conv's data gradient of dz * scale.
    // dz is made inside each closure (its tidy frees it), not here: tensors made here would outlive this node in
    // the lean backward pass (src/engine/lean-grads.ts). With a shortcut that costs one extra ReLU-gradient pass.
    const dz = (): tf.Tensor => (attrs.relu ? reluGradFromOutput(d, y) : tf.clone(d));
    const notTrainable = (what: string) => (): tf.Tensor => {
      throw new Error(
        `${CONV_BN}: no gradient for the ${what}: convBn folds the batch norm into the convolution in inference mode ` +
          `(training=false) and for frozen layers; to differentiate the weights, run the forward with training=true and the layer unfrozen`,
      );
    };
    return {
      x: () => tf.conv2dTranspose(tf.mul(dz(), scale) as tf.Tensor4D, filter, x.shape, attrs.strides, attrs.pad as 'valid'),
      residual: dz,
      filter: notTrainable('filter'),
      scale: notTrainable('scale'),
      shift: notTrainable('shift'),
    };
  },
});

/** Whether the active backend runs conv + folded batch norm (+ residual) + ReLU as one kernel (convBnFused). */
export function convBnFusedAvailable(): boolean {
  return hasKernel(CONV_BN);
}

/**
 * [relu](conv2d(x, filter) * scale + shift [+ residual]) as one kernel (see CONV_BN; check convBnFusedAvailable
 * first). Differentiable in x and residual, not in filter, scale or shift.
 */
export function convBnFused(
  x: tf.Tensor4D, filter: tf.Tensor4D, scale: tf.Tensor1D, shift: tf.Tensor1D, attrs: ConvBnAttrs, residual?: tf.Tensor4D,
): tf.Tensor4D {
  const inputs: Record<string, tf.Tensor> = { x, filter, scale, shift };
  if (residual) inputs.residual = residual;
  return single(tf.engine().runKernel(CONV_BN, inputs as unknown as tf.NamedTensorMap, asAttrs(attrs))) as tf.Tensor4D;
}

/** relu(a + b) for two tensors of the same shape, one kernel where the backend has it. Differentiable in both. */
export function addRelu<T extends tf.Tensor>(a: T, b: T): T {
  if (hasKernel(ADD_RELU) && a.dtype === 'float32' && b.dtype === 'float32' && tf.util.arraysEqual(a.shape, b.shape)) {
    return single(tf.engine().runKernel(ADD_RELU, { a, b } as unknown as tf.NamedTensorMap)) as T;
  }
  return tf.tidy(() => tf.relu(tf.add(a, b))) as T;
}

/**
 * Batch normalisation with the batch's own statistics (training mode), optionally followed by ReLU:
 * `y = [relu](offset + (x - mean) * scale / sqrt(variance + eps))`, mean and variance (biased) over every axis
 * but the last (NHWC channels). Differentiable in x, scale and offset (and through the returned statistics).
 */
export function batchNormTraining(
  x: tf.Tensor4D, scale: tf.Tensor1D, offset: tf.Tensor1D, varianceEpsilon: number, relu = false,
): { y: tf.Tensor4D; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  if (hasKernel(BATCH_NORM_TRAIN)) {
    const [y, mean, variance] = tf.engine().runKernel(
      BATCH_NORM_TRAIN, { x, scale, offset } as unknown as tf.NamedTensorMap, asAttrs({ varianceEpsilon, relu } satisfies BatchNormTrainAttrs),
    ) as tf.Tensor[];
    return { y: y as tf.Tensor4D, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const bn = tf.batchNorm4d(x, mean as tf.Tensor1D, variance as tf.Tensor1D, offset, scale, varianceEpsilon);
    return { y: relu ? tf.relu(bn) : bn, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
  });
}

/**
 * One Adam step for one parameter: returns the new parameter and moments (the caller assigns them). Same
 * float32 arithmetic, in the same order, with or without the fused kernel.
 */
export function adamUpdate(param: tf.Tensor, m: tf.Tensor, v: tf.Tensor, grad: tf.Tensor, attrs: AdamUpdateAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  if (hasKernel(ADAM_UPDATE) && param.dtype === 'float32' && grad.dtype === 'float32') {
    return tf.engine().runKernel(ADAM_UPDATE, { param, m, v, grad } as unknown as tf.NamedTensorMap, asAttrs(attrs)) as [tf.Tensor, tf.Tensor, tf.Tensor];
  }
  return tf.tidy(() => {
    const { beta1: b1, beta2: b2, stepSize, bc2Sqrt, epsilon } = attrs;
    const m1 = tf.add(tf.mul(m, b1), tf.mul(grad, 1 - b1));
    const v1 = tf.add(tf.mul(v, b2), tf.mul(tf.square(grad), 1 - b2));
    const denom = tf.add(tf.div(tf.sqrt(v1), bc2Sqrt), epsilon);
    return [tf.sub(param, tf.mul(tf.div(m1, denom), stepSize)), m1, v1] as [tf.Tensor, tf.Tensor, tf.Tensor];
  });
}
