/**
 * L2-regularised logistic regression for refitting a model's head on frozen features (site adaptation), in
 * float64, browser-safe (typed arrays only).
 *
 * The model and its objective, on rows i of a feature matrix X [n, d] with labels y_i in {0, 1}:
 *   u_i = (x_i - mean) / scale                 standardised features (mean and population standard deviation of
 *                                              the fitting rows; a constant feature gets scale 1), as glmnet does,
 *                                              so one penalty suits features of any scale;
 *   z_i = o_i + u_i . v + c                    o_i an optional fixed offset per row: the deployed head's own logit,
 *                                              so v = 0, c = 0 IS the deployed head ("L2 towards the base head");
 *   J(v, c) = (1 / sum s) sum_i s_i [softplus(z_i) - y_i z_i] + (lambda / 2) |v|^2
 *                                              s_i optional case weights; the intercept c is not penalised.
 * lambda = Infinity fixes v = 0 and fits c alone (a shift of the deployed logit: recalibration only).
 * With scikit-learn's LogisticRegression(C) on the standardised features and no offset, C = 1 / (lambda n).
 *
 * Solver: L-BFGS (memory 10) with a backtracking Armijo line search; J is smooth and strictly convex in v for
 * lambda > 0, so it converges to the unique minimum; it stops when the largest gradient component is below `tolerance`.
 * The fitted head comes back in raw feature space: z = o + x . w + b with w = v / scale, b = c - sum_j mean_j w_j.
 */

export interface Standardizer {
  mean: Float64Array;
  scale: Float64Array;
}

/** Mean and population standard deviation of each column over `rows` (default all) of x [n, d]. */
export function standardizer(x: ArrayLike<number>, n: number, d: number, rows?: ArrayLike<number>): Standardizer {
  const idx = rows ?? Array.from({ length: n }, (_, i) => i);
  const m = idx.length;
  if (m === 0) throw new RangeError('standardizer: no rows');
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let k = 0; k < m; k++) {
    const o = idx[k]! * d;
    for (let j = 0; j < d; j++) mean[j]! += x[o + j]!;
  }
  for (let j = 0; j < d; j++) mean[j]! /= m;
  for (let k = 0; k < m; k++) {
    const o = idx[k]! * d;
    for (let j = 0; j < d; j++) {
      const c = x[o + j]! - mean[j]!;
      sq[j]! += c * c;
    }
  }
  const scale = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    const sd = Math.sqrt(sq[j]! / m);
    scale[j] = sd > 1e-12 * (1 + Math.abs(mean[j]!)) ? sd : 1;
  }
  return { mean, scale };
}

export interface LogisticOptions {
  /** Penalty strength on the standardised coefficients (>= 0, or Infinity: intercept only). */
  lambda: number;
  /** Rows of x to fit on (default all). */
  rows?: ArrayLike<number>;
  /** Fixed offset per row of x (length n), e.g. the deployed head's logit; default 0. */
  offsets?: ArrayLike<number>;
  /** Case weight per row of x (length n), default 1. */
  weights?: ArrayLike<number>;
  /** Standardisation (default: computed from the fitting rows). */
  standardize?: Standardizer;
  /** Start from these standardised coefficients (a warm start along a lambda path). */
  init?: { v: Float64Array; c: number };
  maxIterations?: number;
  /** Stop when max |dJ| is below this (default 1e-8). */
  tolerance?: number;
}

export interface LogisticFit {
  /** Raw-space weights [d] and intercept: z = offset + x . weight + bias. */
  weight: Float64Array;
  bias: number;
  /** The standardised solution (for warm starts) and the standardisation used. */
  v: Float64Array;
  c: number;
  standardize: Standardizer;
  lambda: number;
  objective: number;
  /** Largest absolute gradient component at the solution. */
  gradient: number;
  iterations: number;
  converged: boolean;
}

function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** Fits the model of the module comment. */
export function fitLogisticL2(x: ArrayLike<number>, n: number, d: number, y: ArrayLike<number>, opts: LogisticOptions): LogisticFit {
  const lambda = opts.lambda;
  if (!(lambda >= 0)) throw new RangeError(`lambda must be >= 0 (or Infinity), got ${lambda}`);
  if (x.length !== n * d) throw new RangeError(`fitLogisticL2: ${x.length} values for ${n} x ${d}`);
  const rows = opts.rows ?? Array.from({ length: n }, (_, i) => i);
  const m = rows.length;
  if (m === 0) throw new RangeError('fitLogisticL2: no rows to fit');
  const st = opts.standardize ?? standardizer(x, n, d, rows);
  // The fitting rows, standardised, in one contiguous float64 block.
  const u = new Float64Array(m * d);
  const yy = new Float64Array(m);
  const off = new Float64Array(m);
  const s = new Float64Array(m);
  let sw = 0;
  for (let k = 0; k < m; k++) {
    const r = rows[k]!;
    const label = y[r]!;
    if (label !== 0 && label !== 1) throw new RangeError(`fitLogisticL2: label of row ${r} is ${label}, not 0 or 1`);
    yy[k] = label;
    off[k] = opts.offsets ? opts.offsets[r]! : 0;
    s[k] = opts.weights ? opts.weights[r]! : 1;
    if (!(s[k]! >= 0)) throw new RangeError(`fitLogisticL2: weight of row ${r} is ${s[k]}`);
    sw += s[k]!;
    for (let j = 0; j < d; j++) u[k * d + j] = (x[r * d + j]! - st.mean[j]!) / st.scale[j]!;
  }
  if (!(sw > 0)) throw new RangeError('fitLogisticL2: the case weights sum to 0');
  const fixedV = lambda === Infinity;
  // Parameters theta = [v_0 .. v_{d-1}, c]; with fixedV only c moves (v stays 0).
  const p = d + 1;
  const theta = new Float64Array(p);
  if (opts.init && !fixedV) {
    theta.set(opts.init.v.subarray(0, d));
    theta[d] = opts.init.c;
  } else if (opts.init) theta[d] = opts.init.c;
  const z = new Float64Array(m);
  const evaluate = (th: Float64Array, grad: Float64Array): number => {
    let f = 0;
    grad.fill(0);
    for (let k = 0; k < m; k++) {
      let zk = off[k]! + th[d]!;
      if (!fixedV) {
        const o = k * d;
        for (let j = 0; j < d; j++) zk += u[o + j]! * th[j]!;
      }
      z[k] = zk;
      f += s[k]! * (softplus(zk) - yy[k]! * zk);
      const r = (s[k]! * (sigmoid(zk) - yy[k]!)) / sw;
      grad[d]! += r;
      if (!fixedV) {
        const o = k * d;
        for (let j = 0; j < d; j++) grad[j]! += r * u[o + j]!;
      }
    }
    f /= sw;
    if (!fixedV) {
      for (let j = 0; j < d; j++) {
        f += 0.5 * lambda * th[j]! * th[j]!;
        grad[j]! += lambda * th[j]!;
      }
    }
    return f;
  };
  const tol = opts.tolerance ?? 1e-8;
  const maxIt = opts.maxIterations ?? 1000;
  const grad = new Float64Array(p);
  let f = evaluate(theta, grad);
  const gmax = (g: Float64Array): number => {
    let a = 0;
    for (let j = 0; j < p; j++) if (!fixedV || j === d) a = Math.max(a, Math.abs(g[j]!));
    return a;
  };
  let it = 0;
  let converged = gmax(grad) <= tol;
  if (fixedV) {
    // One variable: Newton on c (the loss is convex in c), with a halving safeguard.
    while (!converged && it < maxIt) {
      it++;
      let h = 0;
      for (let k = 0; k < m; k++) {
        const q = sigmoid(z[k]!);
        h += (s[k]! * q * (1 - q)) / sw;
      }
      let step = grad[d]! / Math.max(h, 1e-12);
      const c0 = theta[d]!;
      const g2 = new Float64Array(p);
      for (let half = 0; half < 60; half++) {
        theta[d] = c0 - step;
        const f2 = evaluate(theta, g2);
        if (f2 <= f) {
          f = f2;
          grad.set(g2);
          break;
        }
        step /= 2;
      }
      if (theta[d] === c0) break;
      converged = gmax(grad) <= tol;
    }
  } else {
    const M = 10;
    const S: Float64Array[] = [];
    const Y: Float64Array[] = [];
    const rho: number[] = [];
    const dir = new Float64Array(p);
    const alpha = new Float64Array(M);
    const thNew = new Float64Array(p);
    const gNew = new Float64Array(p);
    let stall = 0;
    while (!converged && it < maxIt) {
      it++;
      // Two-loop recursion: dir = -H grad.
      dir.set(grad);
      for (let k = S.length - 1; k >= 0; k--) {
        let a = 0;
        for (let j = 0; j < p; j++) a += S[k]![j]! * dir[j]!;
        a *= rho[k]!;
        alpha[k] = a;
        for (let j = 0; j < p; j++) dir[j]! -= a * Y[k]![j]!;
      }
      if (S.length) {
        const last = S.length - 1;
        let yy2 = 0;
        let sy = 0;
        for (let j = 0; j < p; j++) {
          yy2 += Y[last]![j]! * Y[last]![j]!;
          sy += S[last]![j]! * Y[last]![j]!;
        }
        const gamma = sy / yy2;
        for (let j = 0; j < p; j++) dir[j]! *= gamma;
      } else {
        // First step: a unit-length move along the gradient.
        let g2 = 0;
        for (let j = 0; j < p; j++) g2 += grad[j]! * grad[j]!;
        const sc = 1 / Math.max(Math.sqrt(g2), 1e-12);
        for (let j = 0; j < p; j++) dir[j]! *= Math.min(1, sc);
      }
      for (let k = 0; k < S.length; k++) {
        let b = 0;
        for (let j = 0; j < p; j++) b += Y[k]![j]! * dir[j]!;
        b *= rho[k]!;
        for (let j = 0; j < p; j++) dir[j]! += S[k]![j]! * (alpha[k]! - b);
      }
      for (let j = 0; j < p; j++) dir[j] = -dir[j]!;
      let slope = 0;
      for (let j = 0; j < p; j++) slope += dir[j]! * grad[j]!;
      if (!(slope < 0)) {
        // Not a descent direction (curvature pairs went stale): restart from the gradient.
        S.length = 0;
        Y.length = 0;
        rho.length = 0;
        continue;
      }
      let step = 1;
      let fNew = Infinity;
      for (let ls = 0; ls < 50; ls++) {
        for (let j = 0; j < p; j++) thNew[j] = theta[j]! + step * dir[j]!;
        fNew = evaluate(thNew, gNew);
        if (fNew <= f + 1e-4 * step * slope) break;
        step /= 2;
      }
      if (!(fNew <= f)) break;
      const sk = new Float64Array(p);
      const yk = new Float64Array(p);
      let sy = 0;
      for (let j = 0; j < p; j++) {
        sk[j] = thNew[j]! - theta[j]!;
        yk[j] = gNew[j]! - grad[j]!;
        sy += sk[j]! * yk[j]!;
      }
      const decrease = f - fNew;
      theta.set(thNew);
      grad.set(gNew);
      f = fNew;
      if (sy > 1e-16) {
        S.push(sk);
        Y.push(yk);
        rho.push(1 / sy);
        if (S.length > M) {
          S.shift();
          Y.shift();
          rho.shift();
        }
      }
      converged = gmax(grad) <= tol;
      stall = decrease <= 1e-15 * Math.max(1, Math.abs(f)) ? stall + 1 : 0;
      if (stall >= 5) break;
    }
  }
  const v = fixedV ? new Float64Array(d) : theta.slice(0, d);
  const c = theta[d]!;
  const weight = new Float64Array(d);
  let bias = c;
  for (let j = 0; j < d; j++) {
    weight[j] = v[j]! / st.scale[j]!;
    bias -= st.mean[j]! * weight[j]!;
  }
  return { weight, bias, v, c, standardize: st, lambda, objective: f, gradient: gmax(grad), iterations: it, converged };
}

/** z = offset + x . weight + bias for each row of x [n, d]. */
export function logisticScores(x: ArrayLike<number>, n: number, d: number, head: { weight: ArrayLike<number>; bias: number }, offsets?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let z = (offsets ? offsets[i]! : 0) + head.bias;
    const o = i * d;
    for (let j = 0; j < d; j++) z += x[o + j]! * head.weight[j]!;
    out[i] = z;
  }
  return out;
}
