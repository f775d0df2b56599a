/**
 * Several models as one: the probability of an image is the mean of the members' probabilities (the MURA paper's
 * baseline was such a mean over 5 models). Members may differ in architecture and input size: each distinct
 * preprocessing is computed once per image (`preprocessings`), and every member gets the input made for it.
 *
 * One model is an ensemble of one, so callers need a single code path.
 *
 * Browser-safe.
 */
import type { Preprocessing } from '../../data/preprocess.js';
import { InferenceError, type InferenceModel, type LoadedCard, type ModelRunOptions } from './model.js';

export interface EnsembleOptions {
  /** Decision threshold overriding the models' stored one(s). */
  threshold?: number;
}

export interface EnsembleRunResult {
  /** Mean P(abnormal) per image, [n] (float64: the mean of float32 members, rounded once). */
  probabilities: Float64Array;
  /** Each member's P(abnormal), [members][n]. */
  perModel: Float32Array[];
  /** Each member's extra outputs (ModelRunOptions.outputs), in member order. */
  extra: Record<string, { dims: number[]; data: Float32Array }>[];
  /** Seconds inside the engines, summed over members. */
  seconds: number;
}

/** Canonical JSON of the parts of a preprocessing that change the model input. */
export function preprocessingKey(p: Preprocessing): string {
  return JSON.stringify([p.size, p.resize, p.interpolation, p.mean, p.std, p.channels, p.layout, p.valueScaling, p.background, ...(p.greyMap ? [p.greyMap] : []), ...(p.siteFilter ? [{ siteFilter: p.siteFilter }] : [])]);
}

export class Ensemble {
  /** The distinct preprocessings the members need, in first-use order. */
  readonly preprocessings: Preprocessing[] = [];
  /** Member i runs on the input made with preprocessings[inputOf[i]]. */
  readonly inputOf: number[] = [];
  /** Decision threshold: `threshold` when given, else the members' stored one (they must agree). */
  readonly threshold: number;
  /** Whether the threshold came from the caller (true) or from the model(s) (false). */
  readonly thresholdGiven: boolean;

  constructor(
    readonly models: readonly InferenceModel[],
    opts: EnsembleOptions = {},
  ) {
    if (!models.length) throw new InferenceError('an ensemble needs at least one model');
    const keys: string[] = [];
    for (const m of models) {
      const k = preprocessingKey(m.card.preprocessing);
      let i = keys.indexOf(k);
      if (i < 0) {
        i = keys.push(k) - 1;
        this.preprocessings.push(m.card.preprocessing);
      }
      this.inputOf.push(i);
    }
    if (opts.threshold !== undefined) {
      if (!(opts.threshold >= 0 && opts.threshold <= 1)) throw new InferenceError(`threshold must be in [0, 1], got ${opts.threshold}`);
      this.threshold = opts.threshold;
      this.thresholdGiven = true;
    } else {
      const stored = [...new Set(models.map((m) => m.card.threshold))];
      if (stored.length > 1) {
        throw new InferenceError(
          `the models store different decision thresholds (${models.map((m) => `${m.card.name}: ${m.card.threshold}`).join(', ')}); ` +
            'give the ensemble one (--threshold)',
        );
      }
      this.threshold = stored[0]!;
      this.thresholdGiven = false;
    }
  }

  get cards(): LoadedCard[] {
    return this.models.map((m) => m.card);
  }

  /** 'name' or 'a+b+c'. */
  get name(): string {
    return this.models.map((m) => m.card.name).join('+');
  }

  /** 'sha' or 'sha1+sha2+sha3', in member order. */
  get sha256(): string {
    return this.models.map((m) => m.card.sha256).join('+');
  }

  /**
   * Runs every member on `n` images: `inputs[j]` holds the n images made with `preprocessings[j]` (NHWC, batch after
   * batch). Members run one after another (each already uses every core).
   */
  async run(inputs: readonly Float32Array[], n: number, opts: ModelRunOptions = {}): Promise<EnsembleRunResult> {
    if (inputs.length !== this.preprocessings.length) {
      throw new InferenceError(`the ensemble needs ${this.preprocessings.length} input(s) (one per distinct preprocessing), got ${inputs.length}`);
    }
    const perModel: Float32Array[] = [];
    const extra: EnsembleRunResult['extra'] = [];
    let seconds = 0;
    for (let i = 0; i < this.models.length; i++) {
      const r = await this.models[i]!.run(inputs[this.inputOf[i]!]!, n, opts);
      perModel.push(r.probabilities);
      extra.push(r.extra);
      seconds += r.seconds;
    }
    return { probabilities: meanProbabilities(perModel, n), perModel, extra, seconds };
  }

  /** Whether `p` is called abnormal (probability > threshold, the rule src/evaluate uses). */
  isAbnormal(p: number): boolean {
    return p > this.threshold;
  }

  async release(): Promise<void> {
    for (const m of this.models) await m.release();
  }
}

/** Element-wise mean of equal-length probability arrays (in float64). */
export function meanProbabilities(perModel: readonly Float32Array[], n: number): Float64Array {
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let s = 0;
    for (const p of perModel) s += p[k]!;
    out[k] = s / perModel.length;
  }
  return out;
}
