/**
 * The facade, in the style of tfjs-models' `load()`: one call opens a model (or an ensemble), one call predicts
 * views and studies with everything a trained model carries applied — the ensemble mean, the temperature (in the
 * exported graph), the decision threshold, the out-of-distribution gate and, when asked, class-activation heatmaps:
 *
 *   const model = await load({ onnx: bytes, ort });                   // ort = onnxruntime-web (or -node)
 *   const { views, studies } = await model.predict([{ name: 'wrist.dcm', bytes }], { heatmaps: true });
 *   await model.release();
 *
 * Per view: the calibrated probability, the decision (none when the OOD gate rejects the view), the threshold, the
 * gate's verdict, the heatmap when asked, warnings and the view's identity (its name; from a DICOM header also
 * SOPInstanceUID, ViewPosition, Laterality, BodyPartExamined). Per study: the mean of the views the gate accepted
 * (views it rejected are listed and left out; a study whose views were all rejected gets no decision), with the
 * patient and study identifiers of its DICOM headers, or 'unidentified study' for PNG/JPEG. Views are grouped by
 * MURA study folder, else DICOM StudyInstanceUID, else folder (study.ts), and views of different PatientIDs are
 * never merged into one study.
 *
 * Browser-safe: inputs are bytes or decoded pixels. DICOM bytes are decoded here (src/data/dicom/); PNG/JPEG bytes
 * by the `decodeImage` the host injects (the page: a canvas; Node: sharp, see src/inference/node/load.ts, which
 * also takes paths, folders, checkpoint folders and run directories).
 */
import type { InferenceSession } from 'onnxruntime-common';
import { isDicom, readDicom, type DicomFrameDecoder } from '../../data/dicom/index.js';
import { dicomIdentityOf, type DicomIdentity, type DicomStudyIdentity } from './identity.js';
import { greyWarnings } from '../../data/preprocess.js';
import type { Label, Region } from '../../data/types.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../../util/errors.js';
import { Ensemble } from './ensemble.js';
import { createOnnxModel, InferenceError, type InferenceModel, type LoadedCard } from './model.js';
import type { OrtModule } from './onnx-session.js';
import { predictBatch, preprocessAll, type Heatmap, type ImagePrediction, type PreparedImage } from './predict.js';
import { studyKeyOf, type StudySource } from './study.js';
import { applyTrust, oodThreshold, trustOutputs } from './trust.js';

/** An exported model (.onnx bytes from `nextray export`) and the ONNX Runtime module that runs it. */
export interface OnnxModelSpec {
  onnx: Uint8Array;
  /** onnxruntime-web's module in a page, onnxruntime-node's in Node. */
  ort: OrtModule;
  /** Names the model in messages and results (a path, a URL); default '<bytes>'. */
  source?: string;
  /** Short name in results; default: the source's base name. */
  name?: string;
  /** The file's SHA-256 when known (else computed from the bytes). */
  sha256?: string;
  /** Passed to InferenceSession.create (execution providers, threads, ...). */
  sessionOptions?: InferenceSession.SessionOptions;
  /** Largest batch per session.run (default 32). */
  maxBatch?: number;
  /** What runs it, in words, for the card (default 'onnxruntime'). */
  engine?: string;
}

/** What `load` opens: an exported model, an already opened one, or several of either (an ensemble: mean of probabilities). */
export type ModelSpec = OnnxModelSpec | InferenceModel | readonly (OnnxModelSpec | InferenceModel)[];

/** A decoded image: grey values in [0, 1], row-major. */
export interface DecodedImage {
  grey: Float32Array;
  width: number;
  height: number;
  /** 'png' | 'jpeg' | 'dicom' | ... */
  format: string;
  /** Decodes fine but looks wrong (all one value, 12 bits in a 16-bit PNG, ...). */
  warnings: string[];
  /**
   * Whether the picture is in colour (a photograph, a screenshot; DICOM: a photometric interpretation other than
   * MONOCHROME1/2), when the decoder can tell: radiographs are grey.
   */
  colour?: boolean;
}

/**
 * Turns PNG/JPEG bytes into a grey image (injected by the host), refusing images over `maxPixels` when given;
 * throws an error with the problem in words as `problem` for an unusable image.
 */
export type ImageDecoder = (bytes: Uint8Array, name: string, opts: { maxPixels?: number }) => Promise<DecodedImage>;

export interface LoadOptions {
  /** Decision threshold for views and studies, overriding the one stored with the model(s). */
  threshold?: number;
  /** PNG/JPEG bytes -> grey (the page: a canvas; Node: sharp). DICOM bytes are read by the core itself. */
  decodeImage?: ImageDecoder;
  /** Codecs for compressed DICOM frames (Node: sharp for JPEG baseline, OpenJPEG for JPEG 2000). */
  dicomDecoders?: readonly DicomFrameDecoder[];
  /** Largest image accepted, in pixels (the decoders' default when absent). */
  maxPixels?: number;
  /** Run one blank image through the model(s) before returning, so the first real prediction is not the slow one. */
  warmup?: boolean;
}

/** One view to predict: a file's bytes ... */
export interface EncodedView {
  /** The view's name in results: a file name or path. */
  name: string;
  bytes: Uint8Array;
}

/** ... or an image the host decoded itself (with the DICOM header's identity, when it read one). */
export interface DecodedView extends Omit<DecodedImage, 'format' | 'warnings'> {
  name: string;
  format?: string;
  warnings?: string[];
  dicom?: DicomIdentity;
}

export type ViewInput = EncodedView | DecodedView;

/** A file decoded by `decode`: format and warnings always known. */
export type DecodedFile = DecodedView & DecodedImage;

export interface PredictOptions {
  /** Compute each view's class-activation heatmap (needs the model's `cam` output). */
  heatmaps?: boolean;
  /** Largest image accepted, in pixels, for this call (default: the load option, else the decoders' default). */
  maxPixels?: number;
  /** Views per model run (default 8). */
  batchSize?: number;
  /** Called once per view as soon as its result is known (for streaming hosts: progress, heatmap files). */
  onView?: (view: ViewPrediction) => void | Promise<void>;
  /** Called after each view (predicted or unreadable): views done, total. */
  onProgress?: (done: number, total: number) => void;
}

/** The out-of-distribution gate's verdict on a view: flagged when score > threshold. */
export interface OodVerdict {
  flagged: boolean;
  score: number;
  threshold: number;
}

/** Which view a result is about: its name, and from a DICOM header what identifies and describes it. */
export interface ViewIdentity {
  /** The file name or path as given. */
  name: string;
  /** SOP Instance UID (0008,0018). */
  sopInstanceUid?: string;
  /** View Position (0018,5101), e.g. 'AP', 'PA', 'LL'. */
  viewPosition?: string;
  /** Image Laterality (0020,0062), else the series' Laterality (0020,0060): 'L', 'R', 'U' or 'B'. */
  laterality?: string;
  /** Body Part Examined (0018,0015), e.g. 'HAND', 'WRIST'. */
  bodyPartExamined?: string;
}

/** The prediction for one view. */
export interface ViewPrediction {
  view: ViewIdentity;
  /** Calibrated P(abnormal) (the temperature is applied in the exported graph); an ensemble's: the members' mean. */
  probability: number;
  /** Abnormal when probability > threshold; null when the OOD gate rejects the view. */
  decision: 'abnormal' | 'normal' | null;
  threshold: number;
  /** The gate's verdict when the model carries a gate (any member flagging flags the view); null otherwise. */
  ood: OodVerdict | null;
  /** When asked for and the model has a `cam` output: the class-activation map over the model's input grid. */
  heatmap?: Heatmap;
  warnings: string[];
  /** Each member's probability, in ensemble order (one entry for a single model). */
  perModel: number[];
  /** The key of the study this view belongs to (see StudyPrediction.studyKey). */
  studyKey: string;
  studySource: StudySource;
  /** From a MURA study folder name (1 = abnormal); absent elsewhere. */
  label?: Label;
  region?: Region;
  width: number;
  height: number;
  format: string;
  /** From a DICOM file: every identifier its header gives (patient, study and view). */
  dicom?: DicomIdentity;
}

/** A view left out of its study's result, and why. */
export interface ExcludedView {
  view: string;
  reason: 'out-of-distribution';
}

/** The prediction for one study. */
export interface StudyPrediction {
  /** A MURA study folder path ending in '/', a DICOM StudyInstanceUID, or a folder path. */
  studyKey: string;
  source: StudySource;
  /** Mean of the counted views' probabilities; null when no view counted (all rejected by the OOD gate). */
  probability: number | null;
  /** Abnormal when probability > threshold; null without a probability. */
  decision: 'abnormal' | 'normal' | null;
  threshold: number;
  /** The views whose probabilities made the study's, in input order. */
  views: string[];
  /** Views of the study left out of its probability (rejected by the OOD gate). */
  excluded: ExcludedView[];
  /** Patient and study identifiers from the views' DICOM headers, or 'unidentified study' (PNG/JPEG). */
  patient: DicomStudyIdentity | 'unidentified study';
  label?: Label;
  region?: Region;
}

/** An input that gave no view: a missing file, an unreadable image (named, with the problem in words). */
export interface UnreadableInput {
  input: string;
  problem: string;
}

export interface PredictionResult {
  views: ViewPrediction[];
  studies: StudyPrediction[];
  unreadable: UnreadableInput[];
  /** Seconds spent running the model(s) on batches, the trust layer included (decoding excluded). */
  inferenceSeconds: number;
  /** Seconds inside the engine(s) themselves (ONNX Runtime's session.run, or TF.js). */
  engineSeconds: number;
}

/** A loaded model or ensemble. */
export interface NextrayModel {
  /** 'name' or 'a+b+c' for an ensemble. */
  readonly name: string;
  /** The members' SHA-256, joined with '+'. */
  readonly sha256: string;
  /** The decision threshold in use, and where it came from (the load option or the model). */
  readonly threshold: number;
  readonly thresholdSource: 'option' | 'model';
  /** The members' cards (name, SHA-256, arch, preprocessing, stored threshold, engine, outputs, metadata). */
  readonly cards: readonly LoadedCard[];
  /** The members as one ensemble (one model is an ensemble of one). */
  readonly ensemble: Ensemble;
  /** Whether every member carries the `cam` output (heatmaps) / the OOD gate (`ood_score`). */
  readonly hasHeatmaps: boolean;
  readonly hasOodGate: boolean;
  predict(inputs: readonly ViewInput[], opts?: PredictOptions): Promise<PredictionResult>;
  /**
   * Runs one blank image through the model(s), so the first real prediction does not pay for compiling kernels
   * (the load option `warmup` does this before `load` returns; hosts that want to be ready first call it later).
   */
  warmup(): Promise<void>;
  /**
   * Decodes a file's bytes as `predict` would (DICOM by the core, PNG/JPEG by the injected decoder), for hosts that
   * also need the pixels (an overlay); pass the result to `predict`. Throws the decoder's error (with `problem`).
   */
  decode(input: EncodedView, opts?: { maxPixels?: number }): Promise<DecodedFile>;
  /** Frees the models. Idempotent. */
  release(): Promise<void>;
}

/** An input that cannot be used as given (not bytes, no name); the message names it. Exit status 2. */
export class ViewInputError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_VIEW_INPUT', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'ViewInputError';
  }
}

function isInferenceModel(x: OnnxModelSpec | InferenceModel): x is InferenceModel {
  return typeof (x as InferenceModel).run === 'function' && (x as InferenceModel).card !== undefined;
}

async function openMember(m: OnnxModelSpec | InferenceModel): Promise<InferenceModel> {
  if (isInferenceModel(m)) return m;
  if (!(m?.onnx instanceof Uint8Array) || !m.ort) throw new InferenceError('load: a model spec needs { onnx: <.onnx bytes>, ort: <ONNX Runtime module> }');
  return createOnnxModel(m.ort, m.onnx, {
    ...(m.source !== undefined ? { source: m.source } : {}),
    ...(m.name !== undefined ? { name: m.name } : {}),
    ...(m.sha256 !== undefined ? { sha256: m.sha256 } : {}),
    ...(m.sessionOptions ? { sessionOptions: m.sessionOptions } : {}),
    ...(m.maxBatch !== undefined ? { maxBatch: m.maxBatch } : {}),
    ...(m.engine !== undefined ? { engine: m.engine } : {}),
  });
}

/** Opens `spec` (one model or an ensemble) for prediction. Models passed in as InferenceModels are owned from here on. */
export async function load(spec: ModelSpec, opts: LoadOptions = {}): Promise<NextrayModel> {
  const specs = (Array.isArray(spec) ? spec : [spec]) as (OnnxModelSpec | InferenceModel)[];
  if (!specs.length) throw new InferenceError('load: give at least one model');
  const models: InferenceModel[] = [];
  try {
    for (const s of specs) models.push(await openMember(s));
    const model = new LoadedModel(new Ensemble(models, opts.threshold !== undefined ? { threshold: opts.threshold } : {}), opts);
    if (opts.warmup) await model.warmup();
    return model;
  } catch (err) {
    for (const m of models) await m.release();
    throw err;
  }
}

/** The verdict of the gate for a view (first member's score and threshold; flagged when any member flags it). */
function verdictOf(im: ImagePrediction, ensemble: Ensemble): OodVerdict | null {
  if (im.ood === undefined) return null;
  const threshold = oodThreshold(ensemble.models[0]!.card.metadata);
  return { flagged: im.ood, score: im.oodScore ?? NaN, threshold: threshold ?? NaN };
}

/** A view's result from the batch result of its image (ImagePrediction, with the trust layer applied). */
export function viewPrediction(im: ImagePrediction, ensemble: Ensemble, dicom?: DicomIdentity): ViewPrediction {
  const ood = verdictOf(im, ensemble);
  const view: ViewIdentity = { name: im.image };
  if (dicom) {
    for (const k of ['sopInstanceUid', 'viewPosition', 'bodyPartExamined'] as const) if (dicom[k]) view[k] = dicom[k];
    const laterality = dicom.imageLaterality ?? dicom.laterality;
    if (laterality) view.laterality = laterality;
  }
  return {
    view,
    probability: im.probability,
    decision: ood?.flagged ? null : im.decision,
    threshold: im.threshold,
    ood,
    ...(im.heatmap ? { heatmap: im.heatmap } : {}),
    warnings: im.warnings,
    perModel: im.perModel,
    studyKey: im.study,
    studySource: im.studySource,
    ...(im.label !== undefined ? { label: im.label } : {}),
    ...(im.region !== undefined ? { region: im.region } : {}),
    width: im.width,
    height: im.height,
    format: im.format,
    ...(dicom ? { dicom } : {}),
  };
}

const STUDY_FIELDS = ['patientId', 'patientName', 'studyInstanceUid', 'studyDate', 'accessionNumber'] as const;

/**
 * The study a view is grouped into: its study key (study.ts) and source and, when its DICOM header gives one, its
 * PatientID (views of different patients are never merged). groupStudies forms one study per distinct key, in order
 * of first appearance, so a host can find each study's views with this key.
 */
export function studyGroupKey(v: Pick<ViewPrediction, 'studySource' | 'studyKey' | 'dicom'>): string {
  return `${v.studySource}\u0000${v.studyKey}\u0000${v.dicom?.patientId ?? ''}`;
}

/**
 * Groups views into studies, in order of first appearance: same study key (study.ts) and, when DICOM headers give
 * one, the same PatientID (views of different patients are never merged). A study's probability is the mean of its
 * views the OOD gate did not reject; the rejected ones are listed in `excluded`; with none left, no decision.
 */
export function groupStudies(views: readonly ViewPrediction[], threshold: number): StudyPrediction[] {
  const groups = new Map<string, { first: ViewPrediction; sum: number; counted: string[]; excluded: ExcludedView[]; patient: DicomStudyIdentity | null }>();
  for (const v of views) {
    const id = v.dicom;
    const key = studyGroupKey(v);
    let g = groups.get(key);
    if (!g) {
      g = { first: v, sum: 0, counted: [], excluded: [], patient: null };
      groups.set(key, g);
    }
    if (id) {
      const p: DicomStudyIdentity = g.patient ?? {};
      for (const f of STUDY_FIELDS) if (p[f] === undefined && id[f]) p[f] = id[f];
      g.patient = p;
    }
    if (v.ood?.flagged) g.excluded.push({ view: v.view.name, reason: 'out-of-distribution' });
    else {
      g.sum += v.probability;
      g.counted.push(v.view.name);
    }
  }
  return [...groups.values()].map((g) => {
    const probability = g.counted.length ? g.sum / g.counted.length : null;
    return {
      studyKey: g.first.studyKey,
      source: g.first.studySource,
      probability,
      decision: probability === null ? null : probability > threshold ? 'abnormal' : 'normal',
      threshold,
      views: g.counted,
      excluded: g.excluded,
      patient: g.patient ?? 'unidentified study',
      ...(g.first.label !== undefined ? { label: g.first.label } : {}),
      ...(g.first.region !== undefined ? { region: g.first.region } : {}),
    };
  });
}

/**
 * A file's bytes -> a decoded view: DICOM through the PS3.3 C.11 display pipeline (with its header's identity),
 * anything else through `opts.decodeImage`. Throws the decoder's error for an unusable file.
 */
export async function decodeView(input: EncodedView, opts: Pick<LoadOptions, 'decodeImage' | 'dicomDecoders' | 'maxPixels'>): Promise<DecodedFile> {
  if (!input || typeof input.name !== 'string') throw new ViewInputError('predict: every input needs a name (a file name or path)');
  if (!(input.bytes instanceof Uint8Array)) throw new ViewInputError(`${input.name}: bytes must be a Uint8Array`);
  if (isDicom(input.bytes.subarray(0, 132))) {
    const d = await readDicom(input.bytes, {
      source: input.name,
      ...(opts.dicomDecoders ? { decoders: [...opts.dicomDecoders] } : {}),
      ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}),
    });
    const dicom = dicomIdentityOf(d.header);
    const colour = !/^MONOCHROME/.test(d.photometric);
    return { name: input.name, grey: d.grey, width: d.width, height: d.height, format: 'dicom', warnings: [...d.warnings, ...greyWarnings(d.grey, 8)], colour, dicom };
  }
  if (!opts.decodeImage) throw new ViewInputError(`${input.name}: not DICOM, and no PNG/JPEG decoder was given to load() (option decodeImage)`);
  return { name: input.name, ...(await opts.decodeImage(input.bytes, input.name, opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {})) };
}

/** Decodes one input (bytes or pixels) into a prepared image for the ensemble, with its DICOM identity. */
async function prepare(input: ViewInput, ensemble: Ensemble, opts: LoadOptions): Promise<PreparedImage> {
  if (!input || typeof input.name !== 'string') throw new ViewInputError('predict: every input needs a name (a file name or path)');
  const view: DecodedView = 'bytes' in input ? await decodeView(input, opts) : input;
  const { grey, width, height } = view;
  if (!(grey instanceof Float32Array) || grey.length !== width * height) {
    throw new ViewInputError(`${view.name}: a decoded view needs grey (Float32Array) of width x height values`);
  }
  const inputs = preprocessAll(grey, width, height, ensemble.preprocessings, view.name);
  const warnings = view.warnings ?? greyWarnings(grey, 8);
  return { image: view.name, inputs, study: studyKeyOf(view.name, view.dicom?.studyInstanceUid), width, height, format: view.format ?? 'image', warnings, ...(view.dicom ? { dicom: view.dicom } : {}) };
}

/** The problem of an input that could not be decoded, in words (decoder errors carry it as `problem`). */
export function problemOf(err: unknown): string {
  const p = (err as { problem?: unknown })?.problem;
  if (typeof p === 'string') return p;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Turns batch results into view results with the trust layer applied (the OOD gate always when the model has one,
 * heatmaps when asked): `outputs` is what to ask the ensemble for, `onBatch` goes to predictBatch (or the Node
 * host's predictFiles, which hands it on). Shared by `predict` here and the Node host's file pipeline.
 */
export class ViewCollector {
  readonly outputs: string[];
  readonly views: ViewPrediction[] = [];
  /** Seconds inside the engine(s), summed over batches. */
  engineSeconds = 0;

  constructor(
    private readonly ensemble: Ensemble,
    opts: { heatmaps?: boolean; onView?: (view: ViewPrediction) => void | Promise<void> } = {},
  ) {
    this.outputs = trustOutputs(ensemble, { heatmaps: !!opts.heatmaps, ood: true });
    this.onView = opts.onView;
  }

  private readonly onView: ((view: ViewPrediction) => void | Promise<void>) | undefined;

  readonly onBatch = async (results: ImagePrediction[], raw: Awaited<ReturnType<Ensemble['run']>>, images: readonly PreparedImage[]): Promise<void> => {
    this.engineSeconds += raw.seconds;
    applyTrust(results, raw, this.ensemble);
    for (let k = 0; k < results.length; k++) {
      const view = viewPrediction(results[k]!, this.ensemble, images[k]!.dicom);
      this.views.push(view);
      await this.onView?.(view);
    }
  };

  /** The whole result: views in order, their studies, the unreadable inputs. */
  result(unreadable: UnreadableInput[], inferenceSeconds: number): PredictionResult {
    return { views: this.views, studies: groupStudies(this.views, this.ensemble.threshold), unreadable, inferenceSeconds, engineSeconds: this.engineSeconds };
  }
}

/** Heatmaps asked of a model without the `cam` output. */
export function noHeatmaps(model: string): InferenceError {
  return new InferenceError(`${model}: the model has no 'cam' output for heatmaps; re-export it with this version (nextray export --checkpoint RUN)`);
}

class LoadedModel implements NextrayModel {
  private released = false;

  constructor(
    readonly ensemble: Ensemble,
    private readonly opts: LoadOptions,
  ) {}

  get name(): string {
    return this.ensemble.name;
  }
  get sha256(): string {
    return this.ensemble.sha256;
  }
  get threshold(): number {
    return this.ensemble.threshold;
  }
  get thresholdSource(): 'option' | 'model' {
    return this.ensemble.thresholdGiven ? 'option' : 'model';
  }
  get cards(): LoadedCard[] {
    return this.ensemble.cards;
  }
  get hasHeatmaps(): boolean {
    return this.ensemble.models.every((m) => m.card.outputs.includes('cam'));
  }
  get hasOodGate(): boolean {
    return this.ensemble.models.every((m) => m.card.outputs.includes('ood_score'));
  }

  async warmup(): Promise<void> {
    if (this.released) throw new InferenceError(`${this.name}: the model was released`);
    const inputs = this.ensemble.preprocessings.map((p) => new Float32Array(p.size * p.size * 3));
    await this.ensemble.run(inputs, 1);
  }

  async predict(inputs: readonly ViewInput[], opts: PredictOptions = {}): Promise<PredictionResult> {
    if (this.released) throw new InferenceError(`${this.name}: the model was released`);
    if (!Array.isArray(inputs)) throw new ViewInputError('predict: give an array of views ({ name, bytes } or { name, grey, width, height })');
    if (opts.heatmaps && !this.hasHeatmaps) throw noHeatmaps(this.name);
    const batchSize = opts.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ViewInputError(`batch size must be a positive integer, got ${batchSize}`);
    const collector = new ViewCollector(this.ensemble, { ...(opts.heatmaps ? { heatmaps: true } : {}), ...(opts.onView ? { onView: opts.onView } : {}) });
    const decoding: LoadOptions = { ...this.opts, ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}) };
    const unreadable: UnreadableInput[] = [];
    let inferenceSeconds = 0;
    let done = 0;
    let batch: PreparedImage[] = [];
    const flush = async (): Promise<void> => {
      if (!batch.length) return;
      const b = batch;
      batch = [];
      const t0 = performance.now();
      await predictBatch(this.ensemble, b, { ...(collector.outputs.length ? { outputs: collector.outputs } : {}), onBatch: collector.onBatch });
      inferenceSeconds += (performance.now() - t0) / 1000;
      done += b.length;
      opts.onProgress?.(done, inputs.length);
    };
    for (const input of inputs) {
      try {
        batch.push(await prepare(input, this.ensemble, decoding));
      } catch (err) {
        // An unusable file is reported and skipped (decoders say why in `problem`); anything else is a bug.
        if (typeof (err as { problem?: unknown })?.problem !== 'string') throw err;
        unreadable.push({ input: input.name, problem: problemOf(err) });
        opts.onProgress?.(++done, inputs.length);
        continue;
      }
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    return collector.result(unreadable, inferenceSeconds);
  }

  decode(input: EncodedView, opts: { maxPixels?: number } = {}): Promise<DecodedFile> {
    return decodeView(input, { ...this.opts, ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}) });
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.ensemble.release();
  }
}
