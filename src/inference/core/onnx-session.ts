/**
 * Inference over an exported model with ONNX Runtime, independent of which ONNX Runtime package provides it:
 * `OnnxClassifierCore.createWith(ort, bytes)` takes the runtime module — `onnxruntime-node` in Node (see
 * src/inference/node/onnx-session.ts, which adds file paths, thread defaults and the optimised-graph cache),
 * `onnxruntime-web` in a browser — so the browser app uses the same file, the same input checks and the same output
 * shapes.
 *
 * It reads the exporter's metadata (src/models/onnx/info.ts: arch, input size and layout, preprocessing, head,
 * decision threshold) and refuses ONNX files not written by `exportOnnx`.
 *
 * Only a type import of ONNX Runtime here: nothing Node-specific is loaded by this module.
 */
// onnxruntime-common: the API types both onnxruntime-node and onnxruntime-web re-export (keeps this module browser-safe).
import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { ONNX_LOGITS, ONNX_PROBABILITY } from '../../models/onnx/format.js';
import { ONNX_CAM, ONNX_OOD_SCORE } from '../../models/onnx/extras.js';
import { OnnxModelError, parseClassifierInfo, type OnnxClassifierInfo } from '../../models/onnx/info.js';

/** The parts of an ONNX Runtime module this class uses (onnxruntime-node and onnxruntime-web both fit). */
export interface OrtModule {
  /** onnxruntime-node and -web take bytes; a path (modelPath) only where the runtime can open files (Node). */
  InferenceSession: { create(model: Uint8Array | string, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  Tensor: typeof Tensor;
}

export interface OnnxRunResult {
  /** Images in this result. */
  n: number;
  /** Outputs per image (1 for the binary head). */
  numOutputs: number;
  /** Row-major [n, numOutputs]. */
  logits: Float32Array;
  /** Binary head: P(abnormal) per image, [n] (the graph's Sigmoid). Multi-class: softmax rows, [n, numOutputs]. */
  probabilities: Float32Array;
  /** Seconds spent inside ONNX Runtime. */
  seconds: number;
  /** When the graph has output `cam` (export option `cam`): the maps, row-major [n, camSize[0], camSize[1]]. */
  cam?: Float32Array;
  camSize?: [number, number];
  /** When the graph has output `ood_score` (export option `ood`): one score per image; compare with info.ood.threshold. */
  oodScores?: Float32Array;
  /** The graph outputs asked for with `outputs` (e.g. a feature map for class activation maps), batches joined. */
  extra: Record<string, { dims: number[]; data: Float32Array }>;
}

export interface OnnxRunOptions {
  /** [height, width] of the images when the model has a dynamic size; default the exported input size. */
  size?: [number, number];
  /** Further graph outputs to fetch besides logits/probability (float32; batch first), returned in `extra`. */
  outputs?: string[];
}

export interface OnnxClassifierCoreOptions {
  /** Largest batch handed to one session.run (larger requests are split; default 32). */
  maxBatch?: number;
  /** Passed to InferenceSession.create (threads, execution providers, optimisation level...). */
  sessionOptions?: InferenceSession.SessionOptions;
  /** Names the model in error messages (a path, a URL); default '<bytes>'. */
  source?: string;
  /**
   * A file path for ONNX Runtime to open itself, when the bytes given are only the model's skeleton (its metadata
   * and graph signature, see skeleton.ts): the weights then never pass through JavaScript.
   */
  modelPath?: string;
  /** Makes the session instead of `ort.InferenceSession.create` (src/inference/node/onnx-session.ts: the optimised-model cache). */
  createSession?: () => Promise<InferenceSession>;
}

/** An exported classifier running in ONNX Runtime. Create with `OnnxClassifierCore.createWith` (or the Node host's `OnnxClassifier.create`, src/inference/node/onnx-session.ts). */
export class OnnxClassifierCore {
  private released = false;
  private queue: Promise<unknown> = Promise.resolve();

  protected constructor(
    private readonly ort: OrtModule,
    private readonly session: InferenceSession,
    readonly info: OnnxClassifierInfo,
    readonly source: string,
    private readonly maxBatch: number,
  ) {}

  static async createWith(ort: OrtModule, bytes: Uint8Array, opts: OnnxClassifierCoreOptions = {}): Promise<OnnxClassifierCore> {
    const { session, info, source, maxBatch } = await openSession(ort, bytes, opts);
    return new OnnxClassifierCore(ort, session, info, source, maxBatch);
  }

  /** Outputs per image. */
  get numOutputs(): number {
    return this.info.head.outputs;
  }

  /**
   * Run `n` images. `x` holds them in the model's input layout (`info.inputLayout`, NHWC by default: exactly what
   * the project's preprocessing produces, image after image), float32, normalised per `info.preprocessing`.
   * Calls are serialised (one session.run at a time); big batches are split into `maxBatch` pieces.
   */
  async run(x: Float32Array, n: number, opts: OnnxRunOptions = {}): Promise<OnnxRunResult> {
    if (this.released) throw new OnnxModelError(`${this.source}: classifier was released`);
    const [h, w] = this.checkInput(x, n, opts);
    const extra = opts.outputs ?? [];
    const unknown = extra.filter((o) => !this.session.outputNames.includes(o));
    if (unknown.length) throw new OnnxModelError(`${this.source}: the graph has no output(s) ${unknown.join(', ')}; it has ${this.session.outputNames.join(', ')}`);
    const job = this.queue.then(() => this.runChecked(x, n, h, w, extra));
    this.queue = job.catch(() => undefined);
    return job;
  }

  /** P(abnormal) per image (binary head only). */
  async predictProba(x: Float32Array, n: number, opts: OnnxRunOptions = {}): Promise<Float32Array> {
    if (this.info.head.kind !== 'binary') {
      throw new OnnxModelError(`${this.source}: predictProba needs the binary head; this model has ${this.numOutputs} outputs (use run() and its softmax)`);
    }
    return (await this.run(x, n, opts)).probabilities;
  }

  /** Free the session's native memory. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.queue;
    await this.session.release();
  }

  private checkInput(x: Float32Array, n: number, opts: OnnxRunOptions): [number, number] {
    const src = this.source;
    if (!(x instanceof Float32Array)) {
      throw new OnnxModelError(`${src}: input must be a Float32Array, got ${x === null ? 'null' : (x as object)?.constructor?.name ?? typeof x}`);
    }
    if (!Number.isInteger(n) || n < 1) throw new OnnxModelError(`${src}: image count must be a positive integer, got ${n}`);
    let [h, w] = [this.info.inputSize, this.info.inputSize];
    if (opts.size) {
      const [oh, ow] = opts.size;
      if (!Number.isInteger(oh) || !Number.isInteger(ow) || oh < 32 || ow < 32) {
        throw new OnnxModelError(`${src}: size must be two integers >= 32, got [${opts.size.join(', ')}]`);
      }
      if (!this.info.dynamicSize && (oh !== h || ow !== w)) {
        throw new OnnxModelError(`${src}: this model was exported for ${h}x${w} images only, got size ${oh}x${ow} (export with dynamic size to vary it)`);
      }
      [h, w] = [oh, ow];
    }
    const per = h * w * 3;
    if (x.length !== n * per) {
      const shape = this.info.inputLayout === 'nhwc' ? `[${n}, ${h}, ${w}, 3] (NHWC)` : `[${n}, 3, ${h}, ${w}] (NCHW)`;
      const guess = x.length % per === 0 ? `; that is ${x.length / per} image(s) of this size` : '';
      throw new OnnxModelError(`${src}: input has ${x.length} values, expected ${n * per} for shape ${shape}${guess}`);
    }
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v - v !== 0) {
        const img = Math.floor(i / per);
        throw new OnnxModelError(`${src}: input value ${i} (image ${img}) is ${v}; inputs must be finite`);
      }
    }
    return [h, w];
  }

  /** Names of the graph's outputs. */
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  private async runChecked(x: Float32Array, n: number, h: number, w: number, extraNames: readonly string[] = []): Promise<OnnxRunResult> {
    const k = this.numOutputs;
    const binary = this.info.head.kind === 'binary';
    const logits = new Float32Array(n * k);
    const probabilities = new Float32Array(binary ? n : n * k);
    const per = h * w * 3;
    const dims = (m: number): number[] => (this.info.inputLayout === 'nhwc' ? [m, h, w, 3] : [m, 3, h, w]);
    const inputName = this.info.metadata.input_name || 'input';
    let seconds = 0;
    const names = this.session.outputNames;
    const wantCam = names.includes(ONNX_CAM);
    const wantOod = names.includes(ONNX_OOD_SCORE);
    let cam: Float32Array | undefined;
    let camSize: [number, number] | undefined;
    const oodScores = wantOod ? new Float32Array(n) : undefined;
    const wanted = [...new Set([...(binary ? [ONNX_LOGITS, ONNX_PROBABILITY] : [ONNX_LOGITS]), ...(wantCam ? [ONNX_CAM] : []), ...(wantOod ? [ONNX_OOD_SCORE] : []), ...extraNames])];
    const extraParts = new Map<string, { dims: number[]; parts: Float32Array[] }>();
    for (let start = 0; start < n; start += this.maxBatch) {
      const m = Math.min(this.maxBatch, n - start);
      const t = new this.ort.Tensor('float32', x.subarray(start * per, (start + m) * per), dims(m));
      const t0 = performance.now();
      const out = await this.session.run({ [inputName]: t }, wanted);
      seconds += (performance.now() - t0) / 1000;
      try {
        const lg = out[ONNX_LOGITS];
        if (!lg || lg.type !== 'float32' || lg.size !== m * k) {
          throw new OnnxModelError(`${this.source}: output '${ONNX_LOGITS}' has ${lg?.size} values, expected ${m * k}`);
        }
        logits.set(lg.data as Float32Array, start * k);
        if (binary) {
          const pr = out[ONNX_PROBABILITY];
          if (!pr || pr.size !== m) throw new OnnxModelError(`${this.source}: output '${ONNX_PROBABILITY}' is missing or has the wrong size`);
          probabilities.set(pr.data as Float32Array, start);
        }
        if (wantCam) {
          const c = out[ONNX_CAM]!;
          const [, ch, cw] = c.dims as number[];
          if (!camSize) {
            camSize = [ch!, cw!];
            cam = new Float32Array(n * ch! * cw!);
          }
          cam!.set(c.data as Float32Array, start * camSize[0] * camSize[1]);
        }
        if (wantOod) oodScores!.set(out[ONNX_OOD_SCORE]!.data as Float32Array, start);
        for (const name of extraNames) {
          const v = out[name];
          if (!v || v.type !== 'float32') throw new OnnxModelError(`${this.source}: output '${name}' is missing or not float32`);
          const e = extraParts.get(name) ?? { dims: [...v.dims], parts: [] };
          e.parts.push((v.data as Float32Array).slice());
          extraParts.set(name, e);
        }
      } finally {
        for (const v of Object.values(out)) v.dispose();
      }
    }
    if (!binary) softmaxRows(logits, probabilities, n, k);
    const extra: OnnxRunResult['extra'] = {};
    for (const [name, e] of extraParts) {
      const total = e.parts.reduce((a, p) => a + p.length, 0);
      const data = new Float32Array(total);
      let off = 0;
      for (const p of e.parts) {
        data.set(p, off);
        off += p.length;
      }
      extra[name] = { dims: [n, ...e.dims.slice(1)], data };
    }
    return { n, numOutputs: k, logits, probabilities, seconds, extra, ...(cam && camSize ? { cam, camSize } : {}), ...(oodScores ? { oodScores } : {}) };
  }
}

/** Shared by the core and the Node wrapper: parse metadata, open the session, check its interface. */
export async function openSession(
  ort: OrtModule,
  bytes: Uint8Array,
  opts: OnnxClassifierCoreOptions,
): Promise<{ session: InferenceSession; info: OnnxClassifierInfo; source: string; maxBatch: number }> {
  const source = opts.source ?? '<bytes>';
  const maxBatch = opts.maxBatch ?? 32;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new OnnxModelError(`maxBatch must be a positive integer, got ${maxBatch}`);
  const info = parseClassifierInfo(bytes, source);
  let session: InferenceSession;
  try {
    session = opts.createSession
      ? await opts.createSession()
      : opts.modelPath !== undefined
      ? await ort.InferenceSession.create(opts.modelPath, opts.sessionOptions)
      : await ort.InferenceSession.create(bytes, opts.sessionOptions);
  } catch (err) {
    throw new OnnxModelError(`${source}: ONNX Runtime cannot load the model: ${(err as Error).message}`);
  }
  const want = info.head.kind === 'binary' ? [ONNX_LOGITS, ONNX_PROBABILITY] : [ONNX_LOGITS];
  const missing = want.filter((o) => !session.outputNames.includes(o));
  if (missing.length) {
    await session.release();
    throw new OnnxModelError(`${source}: the graph lacks output(s) ${missing.join(', ')} that its metadata promises`);
  }
  return { session, info, source, maxBatch };
}

function softmaxRows(logits: Float32Array, out: Float32Array, n: number, k: number): void {
  for (let r = 0; r < n; r++) {
    let max = -Infinity;
    for (let c = 0; c < k; c++) max = Math.max(max, logits[r * k + c]!);
    let sum = 0;
    for (let c = 0; c < k; c++) sum += Math.exp(logits[r * k + c]! - max);
    for (let c = 0; c < k; c++) out[r * k + c] = Math.exp(logits[r * k + c]! - max) / sum;
  }
}
