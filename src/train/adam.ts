/**
 * Adam, written out here rather than taken from tf.train.adam, so that its whole state (first and second
 * moments, step count, learning rate) is explicit, saved in every checkpoint and restored bit-exactly: TF.js's
 * AdamOptimizer keeps beta^t as a running product in float32 and rebuilds it with pow() on setWeights, so a
 * resumed run would drift from an uninterrupted one in the last bits.
 *
 * Update (PyTorch's torch.optim.Adam without weight decay, bias corrections computed in float64 from the step):
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   w = w - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 */
import * as tf from '@tensorflow/tfjs-core';
import { WeightFormatError, type StateDict } from '../models/weights/types.js';
import { adamUpdate } from '../engine/fused-ops.js';

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

interface Slot {
  name: string;
  variable: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
}

/** A non-trainable zero variable shaped like `like` (the initial value is freed; the variable keeps its own copy). */
function zerosVariable(like: tf.Variable): tf.Variable {
  const z = tf.zerosLike(like);
  const v = tf.variable(z, false);
  z.dispose();
  return v;
}

export class Adam {
  lr: number;
  /** Updates applied so far (t - 1 during the next update). */
  step = 0;
  private readonly slots: Slot[];
  private readonly byVarName = new Map<string, Slot>();

  constructor(
    params: readonly { name: string; variable: tf.Variable }[],
    readonly options: AdamOptions,
  ) {
    this.lr = options.lr;
    this.slots = params.map(({ name, variable }) => {
      const slot: Slot = { name, variable, m: zerosVariable(variable), v: zerosVariable(variable) };
      this.byVarName.set(variable.name, slot);
      return slot;
    });
  }

  /** Applies one update from gradients keyed by tf.Variable name (as tf.variableGrads returns them). */
  apply(grads: Record<string, tf.Tensor>): void {
    const t = this.step + 1;
    const { beta1: b1, beta2: b2, epsilon } = this.options;
    const stepSize = this.lr / (1 - Math.pow(b1, t));
    const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, t));
    for (const [varName, g] of Object.entries(grads)) {
      const s = this.byVarName.get(varName);
      if (!s) throw new Error(`Adam: got a gradient for '${varName}', which is not one of the optimised variables`);
      tf.tidy(() => {
        // One fused kernel where the backend has it, else the same float32 ops composed (src/engine/fused-ops.ts).
        const [p, m, v] = adamUpdate(s.variable, s.m, s.v, g, { beta1: b1, beta2: b2, stepSize, bc2Sqrt, epsilon });
        s.variable.assign(p);
        s.m.assign(m);
        s.v.assign(v);
      });
    }
    this.step = t;
  }

  /** Moments as plain tensors (`m.<param>`, `v.<param>`), for the checkpoint's optimizer file. */
  stateDict(): StateDict {
    const sd: StateDict = new Map();
    for (const s of this.slots) {
      sd.set(`m.${s.name}`, { dtype: 'F32', shape: [...s.m.shape], data: s.m.dataSync() as Float32Array });
      sd.set(`v.${s.name}`, { dtype: 'F32', shape: [...s.v.shape], data: s.v.dataSync() as Float32Array });
    }
    return sd;
  }

  /** Restores moments saved by stateDict(); `step` and `lr` come from the checkpoint's JSON state. */
  loadState(sd: StateDict, step: number, lr: number, source: string): void {
    for (const s of this.slots) {
      for (const [kind, target] of [
        ['m', s.m],
        ['v', s.v],
      ] as const) {
        const t = sd.get(`${kind}.${s.name}`);
        if (!t) throw new WeightFormatError(source, `optimizer state has no '${kind}.${s.name}' (was the run's frozen-layer count or architecture changed?)`);
        if (t.dtype !== 'F32' || t.shape.join(',') !== target.shape.join(',')) {
          throw new WeightFormatError(source, `optimizer state '${kind}.${s.name}' is ${t.dtype} [${t.shape.join(', ')}], expected F32 [${target.shape.join(', ')}]`);
        }
        tf.tidy(() => target.assign(tf.tensor(t.data as Float32Array, [...t.shape], 'float32')));
      }
    }
    this.step = step;
    this.lr = lr;
  }

  dispose(): void {
    for (const s of this.slots) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}
