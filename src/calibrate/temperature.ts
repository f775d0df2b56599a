/**
 * Temperature scaling (Guo et al. 2017): the temperature T fitted by minimising the negative log-likelihood of the
 * labels under sigmoid(logit / T) on held-out (validation) logits, and applying it. Pure arithmetic (browser-safe).
 */
import { sigmoid } from '../evaluate/calibration.js';

/** Mean negative log-likelihood of labels under sigmoid(z / T) (numerically stable softplus form). */
export function temperatureNll(logits: ArrayLike<number>, y: ArrayLike<number>, t: number): number {
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    const z = logits[i]! / t;
    // -[y log s(z) + (1-y) log(1 - s(z))] = softplus(z) - y z
    const sp = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
    s += sp - y[i]! * z;
  }
  return s / logits.length;
}

export interface TemperatureFit {
  temperature: number;
  nllBefore: number;
  nllAfter: number;
  n: number;
}

/**
 * The temperature T in [0.05, 20] minimising the NLL of sigmoid(logit / T): golden-section search on log T (the NLL
 * is unimodal in 1/T: convex in the scale of the logit).
 */
export function fitTemperature(logits: ArrayLike<number>, y: ArrayLike<number>): TemperatureFit {
  if (logits.length !== y.length || logits.length === 0) throw new RangeError(`fitTemperature: ${logits.length} logits, ${y.length} labels`);
  const f = (u: number): number => temperatureNll(logits, y, Math.exp(u));
  let a = Math.log(0.05);
  let b = Math.log(20);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let it = 0; it < 100 && b - a > 1e-9; it++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  const t = Math.exp((a + b) / 2);
  return { temperature: t, nllBefore: temperatureNll(logits, y, 1), nllAfter: temperatureNll(logits, y, t), n: logits.length };
}

/** sigmoid(logit / T) for each logit. */
export function applyTemperature(logits: ArrayLike<number>, t: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = sigmoid(logits[i]! / t);
  return out;
}
