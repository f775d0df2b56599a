/**
 * The page's host of the library's facade: it fetches the model (store.ts), picks onnxruntime-web's build
 * (runtime.ts), opens the model with `load()` from the package's browser entry and predicts with `model.predict()` —
 * the same code as `nextray predict` from the calibrated probability, decision, out-of-distribution gate and heatmap
 * to the studies (grouped by StudyInstanceUID, PatientIDs never merged, views the gate rejected left out). What is
 * left here is the page's own business: decoding files with the browser (decode.ts, codecs.ts), WebGPU's fallback
 * to wasm, timings for the diagnostics line, and the shapes the display reads (which views count, why a view was
 * left out, whether its heatmap is worth drawing, the study's identity in words).
 */
import { adaptation, greyLevels, inference, preprocessing, siteFilters, load as loadModel, type DecodedFile, type LoadedCard, type NextrayModel, type StudyPrediction, type ViewPrediction } from 'nextray/browser';
import { temperatureOf } from './card.js';
import { pageDecoders } from './codecs.js';
import { COLOUR_WARNING, decodeImage, MAX_PIXELS } from './decode.js';
import { mark, startRuntime, type Backend, type Runtime } from './runtime.js';
import { lastRuntimes, loadModelBytes, type ModelSource } from './store.js';

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

/** One view as the page shows it: the facade's prediction, the pixels, and what the display needs to know. */
export interface ViewResult {
  index: number;
  /** The facade's result for the view (probability, decision, threshold, OOD verdict, warnings, identity). */
  prediction: ViewPrediction;
  name: string;
  width: number;
  height: number;
  /** Display grey values in [0, 1]. */
  grey: Float32Array;
  colour: boolean;
  /** Whether the view counts in its study's result (the gate did not reject it). */
  counts: boolean;
  rejection: { reason: string; score: number; threshold: number } | null;
  heatmap: ViewHeatmap | null;
  /** Why there is no heatmap to draw (null when there is one). */
  heatmapNote: string | null;
  /** Milliseconds of preprocessing + inference (diagnostics only). */
  ms: number;
}

export interface StudyResult {
  key: string;
  /** The facade's result for the study. */
  prediction: StudyPrediction;
  /** False for the PNG/JPEG views (and DICOM files without identifiers): the "unidentified study". */
  identified: boolean;
  patientId?: string;
  /** Patient's Name in words ('DOE^JANE' -> 'DOE JANE'). */
  patientName?: string;
  studyUid?: string;
  /** Study Date as YYYY-MM-DD when it is a valid DA. */
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
  /** The model card (src/models/card.ts), as `load()` parsed it from the file's ONNX metadata. */
  card: LoadedCard;
  /** The decision threshold in use (the adapted head's while one is in use). */
  threshold: number;
  /** Whether the file has the heatmap output. */
  heatmaps: boolean;
  /** The model file's size in bytes. */
  bytes: number;
  runtime: { build: 'wasm' | 'webgpu'; provider: string; threads: number; files: string[]; note: string | null };
  source: Omit<ModelSource, 'bytes'>;
  /**
   * Load phases in ms: fetchMs to the model's bytes, sessionMs from then to the session (the runtime starts alongside
   * the model's reading, so this is what was left of it); warmupMs is the WebGPU first run (0 on wasm, where
   * warmup() does it after the page is ready).
   */
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

/** A site preprocessing put in front of the model for adaptation (src/calibrate/adapt/site-prep.ts). */
export interface SitePrep {
  greyMap?: greyLevels.GreyMap | null;
  siteFilter?: siteFilters.SiteFilter | null;
}

export interface SiteHook {
  /** Whether the file has the `features` output (exported with `nextray export --features`). */
  hasFeatures: boolean;
  /** The deployed model's temperature and threshold (the "before"). */
  base: { temperature: number; threshold: number; sha256: string; arch: string };
  /**
   * One image's `features` row and its `logits` output (divided by the model's temperature, as the graph gives it);
   * with `prep`, of the image after the site's filter and grey map (each in place of the model's own, if it has one).
   */
  outputs(file: File, prep?: SitePrep | null): Promise<{ features: Float32Array; logit: number }>;
  /**
   * Adds one image's grey levels, as the model sees them (src/calibrate/adapt-host.ts greyHistogramOf), after
   * `siteFilter` when given, to `h`.
   */
  greyLevels(file: File, h: greyLevels.GreyHistogram, siteFilter?: siteFilters.SiteFilter | null): Promise<void>;
  /** The training site's reference grey levels when the model file carries them (metadata `grey_reference`), else null. */
  greyReference: adaptation.GreyReference | null;
  /** The adapted head in use, null for the deployed one. */
  head: adaptation.LoadedHead | null;
  /** Puts an adapted head in use (null: back to the deployed head); the card and threshold follow it. */
  setHead(head: adaptation.LoadedHead | null): void;
}

/** The graph outputs site adaptation reads (src/models/onnx/format.ts). */
const FEATURES = 'features';
const LOGITS = 'logits';

/** Loads the model and the runtime (see the module comment). */
export async function load(spec: LoadSpec = {}): Promise<PageModel> {
  const t0 = performance.now();
  const progress = spec.onProgress ?? (() => {});
  progress('Loading the model…');
  // The runtime starts while the model is read: from the runtimes the deployment shipped on the last visit, else as
  // soon as this visit's model.json has named them (before the model is downloaded).
  const want = spec.backend ?? 'auto';
  const hint = lastRuntimes();
  let early: { shipped: readonly string[]; rt: Promise<Runtime> } | null = null;
  const begin = (shipped: readonly string[]): void => {
    if (early) return;
    early = { shipped, rt: startRuntime(want, shipped) };
    early.rt.catch(() => undefined);
  };
  if (hint) begin(hint);
  const src = await loadModelBytes(
    spec.headers ?? {},
    (done, total) => progress(`Downloading the model: ${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB…`),
    (d) => {
      mark('model-described');
      begin(d.runtimes);
    },
  );
  const tFetched = performance.now();
  mark('model-bytes');
  progress('Starting the runtime…');
  const shipped = src.deployment.runtimes;
  const started0 = early as { shipped: readonly string[]; rt: Promise<Runtime> } | null;
  // Started from last visit's runtimes, and this deployment ships another set (WebGPU added or dropped): start again.
  let rt =
    started0 && started0.shipped.includes('webgpu') === shipped.includes('webgpu')
      ? await started0.rt.catch(() => startRuntime(want, shipped))
      : await startRuntime(want, shipped);
  const start = async (r: Runtime): Promise<{ model: NextrayModel; tSession: number }> => {
    const m = await loadModel(
      {
        onnx: src.bytes,
        ort: r.ort as unknown as inference.OrtModule,
        source: src.deployment.file,
        ...(src.deployment.name ? { name: src.deployment.name } : {}),
        sha256: src.deployment.sha256,
        maxBatch: 1,
        engine: `onnxruntime-web ${r.ort.env.versions.web} (${r.providers[0]})`,
        sessionOptions: { executionProviders: r.providers, graphOptimizationLevel: 'all' } as never,
      },
      { decodeImage, dicomDecoders: pageDecoders(), maxPixels: MAX_PIXELS },
    );
    const tSession = performance.now();
    mark('session');
    // On WebGPU the first run is part of starting (it compiles the shaders, and is where a GPU problem shows, so the
    // wasm fallback can still take over). On wasm it runs after the page is ready (warmup()).
    if (r.build === 'webgpu') {
      progress('Warming up…');
      try {
        await m.warmup();
      } catch (err) {
        await m.release().catch(() => undefined);
        throw err;
      }
    }
    return { model: m, tSession };
  };
  let started: { model: NextrayModel; tSession: number };
  try {
    started = await start(rt);
  } catch (err) {
    if (rt.build !== 'webgpu') throw err;
    // WebGPU failed (an unsupported operator, a driver problem): the plain wasm build runs every model.
    const why = `WebGPU could not run this model (${(err as Error).message.split('\n')[0]}); using wasm instead`;
    rt = await startRuntime('wasm', src.deployment.runtimes, why);
    started = await start(rt);
  }
  const { model, tSession } = started;
  const tEnd = performance.now();
  const card = model.cards[0]!;
  const temperature = temperatureOf(card) ?? 1;
  const threshold = model.threshold;

  /** The `features` and `logits` outputs of a decoded view, run by the facade's own ensemble and preprocessing. */
  async function siteOutputs(d: DecodedFile, prep?: SitePrep | null): Promise<{ features: Float32Array; logit: number }> {
    const pres =
      prep?.greyMap || prep?.siteFilter
        ? model.ensemble.preprocessings.map((p) => ({ ...p, ...(prep.greyMap ? { greyMap: prep.greyMap } : {}), ...(prep.siteFilter ? { siteFilter: prep.siteFilter } : {}) }))
        : model.ensemble.preprocessings;
    const inputs = inference.preprocessAll(d.grey, d.width, d.height, pres, d.name);
    const raw = await model.ensemble.run(inputs, 1, { outputs: [FEATURES, LOGITS] });
    const extra = raw.extra[0]!;
    return { features: extra[FEATURES]!.data.slice(), logit: extra[LOGITS]!.data[0]! };
  }
  /**
   * A view's prediction under the adapted head: the head's logistic on the features with its temperature (exactly
   * `applyAdaptedHead`, as `nextray adapt` measures it), decided at its threshold; the OOD verdict is the model's.
   */
  async function adaptedView(p: ViewPrediction, d: DecodedFile, head: adaptation.LoadedHead): Promise<ViewPrediction> {
    const o = await siteOutputs(d, { greyMap: head.greyMap, siteFilter: head.siteFilter });
    const probability = adaptation.applyAdaptedHead(head, o.features, 1, [o.logit], temperature).probabilities[0]!;
    const t = head.file.head.threshold;
    return { ...p, probability, threshold: t, decision: p.decision === null ? null : probability > t ? 'abnormal' : 'normal', perModel: [probability] };
  }

  /** The page's view of one facade result. */
  function viewResult(p: ViewPrediction, d: DecodedFile, index: number, ms: number, heatmaps: boolean): ViewResult {
    const colour = d.colour === true;
    const rejection = p.ood?.flagged ? { reason: inference.oodWarning(p.ood.score, p.ood.threshold), score: p.ood.score, threshold: p.ood.threshold } : null;
    let heatmap: ViewHeatmap | null = null;
    let heatmapNote: string | null = null;
    const coarse = p.heatmap?.coarse;
    if (!model.hasHeatmaps) heatmapNote = 'This model file has no heatmap output (export it again with nextray export to add one).';
    else if (!heatmaps) heatmapNote = 'Heatmaps are off.';
    else if (colour) heatmapNote = 'No heatmap for a colour picture: the model was made for grey radiographs.';
    else if (coarse) {
      const map = coarse.data;
      let sum = 0;
      for (let i = 0; i < map.length; i++) sum += map[i]! > 0 ? map[i]! : 0;
      const evidence = sum / map.length / temperature;
      heatmap = { map, h: coarse.height, w: coarse.width, evidence, drawable: evidence >= NEAR_ZERO_EVIDENCE };
      if (!heatmap.drawable) heatmapNote = 'The heatmap is near zero everywhere: no region pushed the model towards abnormal, so nothing is drawn.';
    }
    return { index, prediction: p, name: p.view.name, width: d.width, height: d.height, grey: d.grey, colour, counts: rejection === null, rejection, heatmap, heatmapNote, ms };
  }

  const page: PageModel = {
    card,
    threshold,
    heatmaps: model.hasHeatmaps,
    bytes: src.bytes.byteLength,
    runtime: { build: rt.build, provider: rt.providers[0]!, threads: rt.threads, files: rt.files, note: rt.note },
    source: { deployment: src.deployment, from: src.from, online: src.online, refused: src.refused, replaced: src.replaced },
    timings: { fetchMs: tFetched - t0, sessionMs: tSession - tFetched, warmupMs: rt.build === 'webgpu' ? tEnd - tSession : 0, totalMs: tEnd - t0 },
    async warmup() {
      if (rt.build === 'webgpu') return 0;
      const t = performance.now();
      await model.warmup();
      return performance.now() - t;
    },
    async predict(files, opts = {}) {
      const heatmaps = (opts.heatmaps ?? true) && model.hasHeatmaps;
      const failed: Prediction['failed'] = [];
      // Decoded here (not inside predict) because the viewer needs the pixels; each unreadable file is named.
      const decoded: DecodedFile[] = [];
      for (const f of files) {
        try {
          const d = await model.decode({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) });
          if (d.colour) d.warnings = [...d.warnings, COLOUR_WARNING];
          decoded.push(d);
        } catch (err) {
          failed.push({ name: f.name, reason: `${f.name}: ${inference.problemOf(err)}` });
        }
      }
      // One view per run, so the time between two results is that view's preprocessing + inference.
      const ms: number[] = [];
      let t = performance.now();
      let r;
      try {
        r = await model.predict(decoded, {
          ...(heatmaps ? { heatmaps: true } : {}),
          batchSize: 1,
          onView: () => {
            const now = performance.now();
            ms.push(now - t);
            t = now;
          },
        });
      } catch (err) {
        for (const d of decoded) failed.push({ name: d.name, reason: `${d.name}: ${(err as Error).message}` });
        return { views: [], studies: [], failed };
      }
      const head = site.head;
      if (!head) {
        const views = r.views.map((p, i) => viewResult(p, decoded[i]!, i, ms[i] ?? 0, heatmaps));
        return { views, failed, studies: studiesOf(r.studies, views, threshold) };
      }
      const adapted: ViewPrediction[] = [];
      for (let i = 0; i < r.views.length; i++) adapted.push(await adaptedView(r.views[i]!, decoded[i]!, head));
      const views = adapted.map((p, i) => viewResult(p, decoded[i]!, i, ms[i] ?? 0, heatmaps));
      const at = head.file.head.threshold;
      return { views, failed, studies: studiesOf(inference.groupStudies(adapted, at), views, at) };
    },
    site: undefined as unknown as SiteHook,
    release: () => model.release(),
  };
  const site: SiteHook = {
    hasFeatures: card.outputs.includes(FEATURES),
    base: { temperature, threshold, sha256: card.sha256, arch: card.arch },
    head: null,
    async outputs(file, prep) {
      return siteOutputs(await model.decode({ name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) }), prep);
    },
    async greyLevels(file, h, siteFilter) {
      const d = await model.decode({ name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) });
      const { greyMap: _own, ...own } = model.ensemble.preprocessings[0]!;
      const pre = siteFilter ? { ...own, siteFilter } : own;
      const g = preprocessing.resizeToInput(d.grey, d.width, d.height, pre, d.name);
      h.add(g, { ...preprocessing.greyRegion(d.width, d.height, pre), stride: pre.size });
    },
    greyReference: (() => {
      const raw = card.metadata.grey_reference;
      if (!raw) return null;
      try {
        return adaptation.checkGreyReference(JSON.parse(raw));
      } catch {
        return null;
      }
    })(),
    setHead(head) {
      site.head = head;
      if (!head) {
        page.card = card;
        page.threshold = threshold;
        return;
      }
      // The card the page shows says what decides now: the head's threshold and temperature, fitted on this site.
      const a = head.file.adaptation;
      const h = head.file.head;
      const sens = /^sensitivity-target-(.+)$/.exec(a.method.threshold_rule);
      page.threshold = h.threshold;
      page.card = {
        ...card,
        decisionThreshold: h.threshold,
        operatingPoint: {
          rule: sens ? 'sensitivity-target' : 'max-kappa',
          threshold: h.threshold,
          ...(sens ? { targetSensitivity: Number(sens[1]) } : {}),
          level: 'study',
          fittedOn: 'site',
          cases: a.data.fit.studies,
          positives: a.data.fit.abnormal_studies,
        },
        temperature: { value: h.temperature, level: 'study', fittedOn: 'site', images: a.data.fit.images, studies: a.data.fit.studies },
        adaptation: { baseSha256: head.file.base_model.sha256, images: a.data.images, studies: a.data.studies, date: a.date, metrics: Object.fromEntries(Object.entries(a.held_out.after).filter((e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1]))) },
      };
    },
  };
  page.site = site;
  return page;
}

/** '20240131' -> '2024-01-31'; anything else as stored. */
export function formatDicomDate(da: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : da.trim();
}

/** 'DOE^JANE^^DR' -> 'DOE JANE DR' (PS3.5 6.2, the alphabetic group only). */
export function formatPersonName(pn: string): string {
  return pn.split('=')[0]!.split('^').map((s) => s.trim()).filter(Boolean).join(' ');
}

const uniq = (xs: (string | undefined)[]): string[] => [...new Set(xs.filter((x): x is string => !!x))];

/**
 * The facade's studies with their views, in words: each study's views are found by the facade's own grouping key
 * (studyGroupKey; the facade forms one study per key, in order of first appearance). One Study Instance UID under
 * two Patient IDs is a labelling error somewhere: the facade keeps them apart, and the page says so on both cards.
 */
export function studiesOf(predicted: readonly StudyPrediction[], views: readonly ViewResult[], threshold: number): StudyResult[] {
  const groups = new Map<string, ViewResult[]>();
  for (const v of views) {
    const k = inference.studyGroupKey(v.prediction);
    groups.set(k, [...(groups.get(k) ?? []), v]);
  }
  const keys = [...groups.keys()];
  const studies = predicted.map((s, i): StudyResult => {
    const key = keys[i]!;
    const vs = groups.get(key)!;
    const counted = vs.filter((v) => v.counts);
    const leftOut = vs.filter((v) => !v.counts);
    const id = s.patient === 'unidentified study' ? null : s.patient;
    const dates = uniq(vs.map((v) => v.prediction.dicom?.studyDate).map((d) => (d ? formatDicomDate(d) : undefined)));
    // What the study would be with every view counted: the facade's own study rule on the views with the gate lifted.
    const all = leftOut.length ? inference.groupStudies(vs.map((v) => ({ ...v.prediction, ood: null })), threshold)[0] : undefined;
    return {
      key,
      prediction: s,
      identified: !!(id && (id.patientId || id.studyInstanceUid)),
      ...(id?.patientId ? { patientId: id.patientId } : {}),
      ...(id?.patientName && formatPersonName(id.patientName) ? { patientName: formatPersonName(id.patientName) } : {}),
      ...(id?.studyInstanceUid ? { studyUid: id.studyInstanceUid } : {}),
      ...(dates.length ? { studyDate: dates.join(', ') } : {}),
      bodyParts: uniq(vs.map((v) => v.prediction.view.bodyPartExamined)),
      viewPositions: uniq(vs.map((v) => v.prediction.view.viewPosition)),
      views: vs,
      counted,
      leftOut,
      probability: s.probability,
      decision: s.decision,
      withLeftOut: all && all.probability !== null && all.decision !== null ? { probability: all.probability, decision: all.decision } : null,
      warnings: [],
    };
  });
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
