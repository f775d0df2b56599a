/**
 * The page's one door to prediction: `const model = await load(spec)` then `await model.predict(files, { heatmaps })`,
 * giving per view the calibrated probability, the decision (none for a view the out-of-distribution gate rejected),
 * the threshold, the gate's verdict, the heatmap, warnings and the DICOM identity; and per study the identifiers, the
 * views that count and those left out, and the decision (none when every view was rejected). Everything else in the
 * page is display.
 *
 * Under the hood: the library's browser-safe inference core (src/inference/core: the same preprocessing, session
 * wrapper, OOD rule and study mean as `nextray predict`), onnxruntime-web (runtime.ts) and the model store
 * (store.ts).
 */
import {
  Ensemble,
  aggregateStudies,
  createOnnxModel,
  isOutOfDistribution,
  oodWarning,
  predictBatch,
  preprocessAll,
  studyKeyOf,
  type EnsembleRunResult,
  type OnnxInferenceModel,
  type OrtModule,
} from '../../src/inference/core/index.js';
import { greyWarnings } from '../../src/data/preprocess.js';
import type { OnnxClassifierInfo } from '../../src/models/onnx/info.js';
import { ONNX_CAM, ONNX_OOD_SCORE } from '../../src/models/onnx/extras.js';
import { ONNX_FEATURES, ONNX_LOGITS } from '../../src/models/onnx/format.js';
import { applyAdaptedHead, type LoadedHead } from '../../src/calibrate/adapt/head-file.js';
import { pageCard, type PageModelCard } from './card.js';
import { BrowserImageError, decodeFile } from './decode.js';
import { studyGroupKey, type ViewIdentity } from './identity.js';
import { loadRuntime, type Backend, type Runtime } from './runtime.js';
import { loadModelBytes, type ModelSource } from './store.js';

/**
 * A heatmap whose regions together add less than this to the (calibrated) logit is "near zero everywhere": nothing
 * in the view pushed the model towards abnormal, and dividing such a map by its maximum (as heatmaps are shown)
 * would paint noise at full strength. 0.05 on the logit moves a probability by at most 1.25 points.
 */
export const NEAR_ZERO_EVIDENCE = 0.05;

export interface LoadSpec {
  backend?: Backend;
  /** Sent with the model requests (a server token). */
  headers?: Record<string, string>;
  onProgress?: (what: string) => void;
}

export interface ViewHeatmap {
  /** The class activation map over the model's input grid, ReLU'd, in logit units (h x w, row-major). */
  map: Float32Array;
  h: number;
  w: number;
  /** mean(map) / temperature: what the map's regions add to the calibrated logit. */
  evidence: number;
  /** False when the map is near zero everywhere (nothing is drawn). */
  drawable: boolean;
}

export interface ViewResult {
  index: number;
  name: string;
  format: 'png' | 'jpeg' | 'dicom';
  width: number;
  height: number;
  /** Display grey values in [0, 1]. */
  grey: Float32Array;
  colour: boolean;
  identity: ViewIdentity;
  /** The calibrated P(abnormal) (the model's score when it carries no calibration). */
  probability: number;
  threshold: number;
  /** Null for a view the gate rejected: it has no decision. */
  decision: 'abnormal' | 'normal' | null;
  /** Whether the view counts in its study's result. */
  counts: boolean;
  rejection: { reason: string; score: number; threshold: number } | null;
  /** The gate's score when the model has a gate. */
  oodScore: number | null;
  heatmap: ViewHeatmap | null;
  /** Why there is no heatmap to draw (null when there is one). */
  heatmapNote: string | null;
  warnings: string[];
  /** Milliseconds of preprocessing + inference (diagnostics only). */
  ms: number;
}

export interface StudyResult {
  key: string;
  /** False for the PNG/JPEG views (and DICOM files without identifiers): the "unidentified study". */
  identified: boolean;
  patientId?: string;
  patientName?: string;
  studyUid?: string;
  studyDate?: string;
  bodyParts: string[];
  viewPositions: string[];
  views: ViewResult[];
  counted: ViewResult[];
  leftOut: ViewResult[];
  /** Mean of the counted views; null when none counts. */
  probability: number | null;
  decision: 'abnormal' | 'normal' | null;
  /** What the study would be with the left-out views counted (null when none was left out). */
  withLeftOut: { probability: number; decision: 'abnormal' | 'normal' } | null;
  warnings: string[];
}

export interface Prediction {
  studies: StudyResult[];
  views: ViewResult[];
  /** Files that could not be read, each named with the reason. */
  failed: { name: string; reason: string }[];
}

export interface PageModel {
  card: PageModelCard;
  runtime: { build: 'wasm' | 'webgpu'; provider: string; threads: number; files: string[]; note: string | null };
  source: Omit<ModelSource, 'bytes'>;
  /** Load phases in ms; warmupMs is the WebGPU first run (0 on wasm, where warmup() does it after the page is ready). */
  timings: { fetchMs: number; sessionMs: number; warmupMs: number; totalMs: number };
  /**
   * The first run, which compiles kernels, with a blank image: so the user's first image does not pay for it. Runs
   * are queued, so a file picked meanwhile waits for it. Returns its ms (0 when it was part of loading).
   */
  warmup(): Promise<number>;
  predict(files: readonly File[], opts?: { heatmaps?: boolean }): Promise<Prediction>;
  /** Site adaptation's hook (adapt.ts): the model's own outputs, and the adapted head that predictions then use. */
  site: SiteHook;
  release(): Promise<void>;
}

export interface SiteHook {
  /** Whether the file has the `features` output (exported with `nextray export --features`). */
  hasFeatures: boolean;
  /** The deployed model's temperature and threshold (the "before"). */
  base: { temperature: number; threshold: number; sha256: string; arch: string };
  /** One image's `features` row and its `logits` output (divided by the model's temperature, as the graph gives it). */
  outputs(file: File): Promise<{ features: Float32Array; logit: number }>;
  /** The adapted head in use, null for the deployed one. */
  head: LoadedHead | null;
  /** Puts an adapted head in use (null: back to the deployed head); the card's threshold follows it. */
  setHead(head: LoadedHead | null): void;
}

async function createSession(rt: Runtime, bytes: Uint8Array, source: string, sha256: string, providers: string[]): Promise<OnnxInferenceModel> {
  return createOnnxModel(rt.ort as unknown as OrtModule, bytes, {
    source,
    sha256,
    maxBatch: 1,
    engine: `onnxruntime-web ${rt.ort.env.versions.web} (${providers[0]})`,
    sessionOptions: { executionProviders: providers, graphOptimizationLevel: 'all' } as never,
  });
}

/** Loads the model and the runtime (see the module comment). */
export async function load(spec: LoadSpec = {}): Promise<PageModel> {
  const t0 = performance.now();
  const progress = spec.onProgress ?? (() => {});
  progress('Loading the model…');
  const src = await loadModelBytes(spec.headers ?? {}, (done, total) => progress(`Downloading the model: ${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB…`));
  const tFetched = performance.now();
  progress('Starting the runtime…');
  let rt = await loadRuntime(spec.backend ?? 'auto', src.deployment.runtimes);
  const source = src.deployment.file;
  const warm = async (m: OnnxInferenceModel): Promise<void> => {
    const s = m.classifier.info.inputSize;
    await m.run(new Float32Array(s * s * 3), 1);
  };
  const start = async (r: Runtime): Promise<{ model: OnnxInferenceModel; tSession: number }> => {
    const m = await createSession(r, src.bytes, source, src.deployment.sha256, r.providers);
    const tSession = performance.now();
    // On WebGPU the first run is part of starting (it compiles the shaders, and is where a GPU problem shows, so the
    // wasm fallback can still take over). On wasm it runs after the page is ready (warmup()).
    if (r.build === 'webgpu') {
      progress('Warming up…');
      try {
        await warm(m);
      } catch (err) {
        await m.release().catch(() => undefined);
        throw err;
      }
    }
    return { model: m, tSession };
  };
  let started: { model: OnnxInferenceModel; tSession: number };
  try {
    started = await start(rt);
  } catch (err) {
    if (rt.build !== 'webgpu') throw err;
    // WebGPU failed (an unsupported operator, a driver problem): the plain wasm build runs every model.
    const why = `WebGPU could not run this model (${(err as Error).message.split('\n')[0]}); using wasm instead`;
    rt = await loadRuntime('wasm', src.deployment.runtimes, why);
    started = await start(rt);
  }
  const model = started.model;
  const tSession = started.tSession;
  const provider = rt.providers[0]!;
  const note = rt.note;
  const ensemble = new Ensemble([model]);
  const info: OnnxClassifierInfo = model.classifier.info;
  const outputs = [ONNX_CAM, ONNX_OOD_SCORE].filter((o) => model.card.outputs.includes(o));
  const tEnd = performance.now();
  const card = pageCard(info, { name: src.deployment.name ?? model.card.name, sha256: model.card.sha256, bytes: src.bytes.byteLength, threshold: ensemble.threshold });
  const temperature = info.temperature > 0 ? info.temperature : 1;
  const baseCard = { ...card, extra: [...card.extra] };
  const currentThreshold = (): number => site.head?.file.head.threshold ?? ensemble.threshold;
  const site: SiteHook = {
    hasFeatures: model.card.outputs.includes(ONNX_FEATURES),
    base: { temperature, threshold: ensemble.threshold, sha256: model.card.sha256, arch: info.arch },
    head: null,
    async outputs(file) {
      const image = await decodeFile(file);
      const inputs = preprocessAll(image.data, image.width, image.height, ensemble.preprocessings, file.name);
      let raw: EnsembleRunResult | undefined;
      await predictBatch(ensemble, [{ image: file.name, inputs, study: studyKeyOf(file.name), width: image.width, height: image.height, format: image.format, warnings: image.warnings }], {
        outputs: [ONNX_FEATURES, ONNX_LOGITS],
        onBatch: (_r, r) => void (raw = r),
      });
      const extra = raw!.extra[0]!;
      return { features: extra[ONNX_FEATURES]!.data.slice(), logit: extra[ONNX_LOGITS]!.data[0]! };
    },
    setHead(head) {
      site.head = head;
      // The card the page shows follows the head in use: its threshold and how it was chosen.
      Object.assign(card, baseCard, { extra: [...baseCard.extra] });
      if (head) {
        const a = head.file.adaptation;
        card.threshold = head.file.head.threshold;
        card.temperature = head.file.head.temperature;
        card.operatingPoint = {
          threshold: head.file.head.threshold,
          rule: a.method.threshold_rule.startsWith('sensitivity-target') ? 'target-sensitivity' : 'max-kappa',
          targetSensitivity: a.method.threshold_rule.startsWith('sensitivity-target') ? Number(a.method.threshold_rule.slice('sensitivity-target-'.length)) : null,
          sensitivity: null,
          specificity: null,
          cases: a.data.fit.studies,
          level: 'study',
        };
        card.extra.push(['Adapted head', `fitted on ${a.data.studies} local studies (${a.source}), ${a.date.slice(0, 10)}; temperature ${+head.file.head.temperature.toFixed(3)}`]);
      }
    },
  };

  async function predictOne(file: File, index: number, heatmaps: boolean): Promise<ViewResult> {
    const image = await decodeFile(file);
    const t = performance.now();
    const inputs = preprocessAll(image.data, image.width, image.height, ensemble.preprocessings, file.name);
    let raw: EnsembleRunResult | undefined;
    const head = site.head;
    const want = [...outputs.filter((o) => heatmaps || o !== ONNX_CAM), ...(head ? [ONNX_FEATURES, ONNX_LOGITS] : [])];
    const [p] = await predictBatch(
      ensemble,
      [{ image: file.name, inputs, study: studyKeyOf(file.name, image.identity.studyUid), width: image.width, height: image.height, format: image.format, warnings: image.warnings }],
      { outputs: want, onBatch: (_r, r) => void (raw = r) },
    );
    const ms = performance.now() - t;
    const extra = raw!.extra[0]!;
    // With an adapted head, the probability is the head's logistic on the features (adapt.ts), as `nextray adapt`'s.
    const adapted = head ? applyAdaptedHead(head, extra[ONNX_FEATURES]!.data, 1, extra[ONNX_LOGITS]!.data, temperature).probabilities[0]! : null;
    const probability = adapted ?? p!.probability;
    const threshold = currentThreshold();
    const score = extra[ONNX_OOD_SCORE]?.data[0];
    const gate = info.ood;
    let rejection: ViewResult['rejection'] = null;
    if (gate && score !== undefined && isOutOfDistribution(score, gate.threshold)) {
      rejection = { reason: oodWarning(score, gate.threshold), score, threshold: gate.threshold };
    }
    const warnings = [...image.warnings, ...greyWarnings(image.data, 8)];
    if (image.colour) warnings.push('a colour picture: radiographs are grey, so this is unlikely to be one');
    let heatmap: ViewHeatmap | null = null;
    let heatmapNote: string | null = null;
    const c = extra[ONNX_CAM];
    if (!card.heatmap) heatmapNote = 'This model file has no heatmap output (export it again with nextray export to add one).';
    else if (!heatmaps) heatmapNote = 'Heatmaps are off.';
    else if (image.colour) heatmapNote = 'No heatmap for a colour picture: the model was made for grey radiographs.';
    else if (c) {
      const map = c.data.slice();
      let sum = 0;
      for (let i = 0; i < map.length; i++) sum += map[i]! > 0 ? map[i]! : 0;
      const evidence = sum / map.length / temperature;
      heatmap = { map, h: c.dims[1]!, w: c.dims[2]!, evidence, drawable: evidence >= NEAR_ZERO_EVIDENCE };
      if (!heatmap.drawable) heatmapNote = 'The heatmap is near zero everywhere: no region pushed the model towards abnormal, so nothing is drawn.';
    }
    return {
      index,
      name: file.name,
      format: image.format,
      width: image.width,
      height: image.height,
      grey: image.data,
      colour: image.colour,
      identity: image.identity,
      probability,
      threshold,
      decision: rejection ? null : probability > threshold ? 'abnormal' : 'normal',
      counts: rejection === null,
      rejection,
      oodScore: score ?? null,
      heatmap,
      heatmapNote,
      warnings,
      ms,
    };
  }

  return {
    card,
    runtime: { build: rt.build, provider, threads: rt.threads, files: rt.files, note },
    source: { deployment: src.deployment, from: src.from, online: src.online, refused: src.refused, replaced: src.replaced },
    timings: { fetchMs: tFetched - t0, sessionMs: tSession - tFetched, warmupMs: rt.build === 'webgpu' ? tEnd - tSession : 0, totalMs: tEnd - t0 },
    async warmup() {
      if (rt.build === 'webgpu') return 0;
      const t = performance.now();
      await warm(model);
      return performance.now() - t;
    },
    async predict(files, opts = {}) {
      const views: ViewResult[] = [];
      const failed: Prediction['failed'] = [];
      for (const f of files) {
        try {
          views.push(await predictOne(f, views.length, opts.heatmaps ?? true));
        } catch (err) {
          failed.push({ name: f.name, reason: err instanceof BrowserImageError ? err.message : `${f.name}: ${(err as Error).message}` });
        }
      }
      return { views, failed, studies: groupStudies(views, currentThreshold()) };
    },
    site,
    release: () => ensemble.release(),
  };
}

/** The mean of views as the core aggregates a study (src/inference/core/study.ts). */
function studyMean(views: readonly ViewResult[], threshold: number): { probability: number; decision: 'abnormal' | 'normal' } | null {
  const [s] = aggregateStudies(
    views.map((v) => ({ image: v.name, probability: v.probability, study: { key: 'study', source: 'folder' as const } })),
    threshold,
  );
  return s ? { probability: s.probability, decision: s.decision } : null;
}

const uniq = (xs: (string | undefined)[]): string[] => [...new Set(xs.filter((x): x is string => !!x))];

/** Views into studies: by Patient ID + Study Instance UID for DICOM, PNG/JPEG together (see identity.ts). */
export function groupStudies(views: readonly ViewResult[], threshold: number): StudyResult[] {
  const groups = new Map<string, ViewResult[]>();
  for (const v of views) {
    const k = studyGroupKey(v.format, v.identity);
    const g = groups.get(k);
    if (g) g.push(v);
    else groups.set(k, [v]);
  }
  const studies = [...groups.entries()].map(([key, vs]): StudyResult => {
    const counted = vs.filter((v) => v.counts);
    const leftOut = vs.filter((v) => !v.counts);
    const first = vs[0]!.identity;
    const identified = key !== 'unidentified' && !!(first.patientId || first.studyUid);
    const r = studyMean(counted, threshold);
    return {
      key,
      identified,
      ...(first.patientId ? { patientId: first.patientId } : {}),
      ...(first.patientName ? { patientName: first.patientName } : {}),
      ...(first.studyUid ? { studyUid: first.studyUid } : {}),
      ...(uniq(vs.map((v) => v.identity.studyDate))[0] ? { studyDate: uniq(vs.map((v) => v.identity.studyDate)).join(', ') } : {}),
      bodyParts: uniq(vs.map((v) => v.identity.bodyPart)),
      viewPositions: uniq(vs.map((v) => v.identity.viewPosition)),
      views: vs,
      counted,
      leftOut,
      probability: r?.probability ?? null,
      decision: r?.decision ?? null,
      withLeftOut: leftOut.length ? studyMean(vs, threshold) : null,
      warnings: [],
    };
  });
  // One Study Instance UID under two Patient IDs: a labelling error somewhere. Kept apart, and said on both cards.
  const byUid = new Map<string, StudyResult[]>();
  for (const s of studies) if (s.studyUid) byUid.set(s.studyUid, [...(byUid.get(s.studyUid) ?? []), s]);
  for (const [uid, ss] of byUid) {
    if (ss.length < 2) continue;
    for (const s of ss) {
      const others = ss.filter((o) => o !== s).map((o) => o.patientId ?? '(none)');
      s.warnings.push(`The Study Instance UID ${uid} also appears with Patient ID ${others.join(', ')}: kept apart, as different patients are never merged. Check the files' labels.`);
    }
  }
  return studies;
}
