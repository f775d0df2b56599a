/**
 * The offline page: loads the model next to it (model.onnx) into onnxruntime-web — wasm with SIMD, threads when
 * the page is cross-origin isolated, WebGPU when the browser has it — and turns the views of one study into one
 * result. Preprocessing and the session wrapper are the library's browser-safe core (the same code Node runs), so
 * a file gives the same probability here as in `nextray predict`.
 */
import type * as OrtWeb from 'onnxruntime-web';
import {
  Ensemble,
  aggregateStudies,
  createOnnxModel,
  predictBatch,
  preprocessAll,
  studyKeyOf,
  type EnsembleRunResult,
  type OrtModule,
  type OnnxInferenceModel,
} from '../../src/inference/core/index.js';
import type { OnnxClassifierInfo } from '../../src/models/onnx/info.js';
import { greyWarnings } from '../../src/data/preprocess.js';
import { camOnImage } from '../../src/inference/core/cam.js';
import { overlayHeatmap } from '../../src/inference/core/colormap.js';
import { isOutOfDistribution, oodWarning } from '../../src/inference/core/ood.js';
import { operatingPointOrigin } from '../../src/inference/core/trust.js';
import { ONNX_CAM, ONNX_OOD_SCORE } from '../../src/models/onnx/extras.js';
import { BrowserImageError, decodeDicom, decodeRaster, sniff, type DecodedImage } from './decode.js';
import './style.css';

interface ViewResult {
  name: string;
  probability: number;
  decision: 'abnormal' | 'normal';
  ms: number;
  warnings: string[];
  image: DecodedImage;
  /** The model's class activation map over its input grid, when the file has a `cam` output. */
  cam: { map: Float32Array; height: number; width: number } | null;
  ood: { score: number; threshold: number; flagged: boolean; warning?: string } | null;
}

interface Loaded {
  model: OnnxInferenceModel;
  ensemble: Ensemble;
  info: OnnxClassifierInfo;
  /** Extra graph outputs this model has (heatmap, OOD score). */
  outputs: string[];
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const state = (s: string): void => {
  document.body.dataset.state = s;
};

function token(): string | null {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]!) : null;
}

/** WebGPU only where the browser really offers an adapter (navigator.gpu exists in headless Chromium without one). */
async function hasWebGpu(): Promise<boolean> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/**
 * onnxruntime-web in the build that fits the browser: the plain wasm build (SIMD + threads, 14 MB of wasm) where
 * there is no WebGPU adapter, else the WebGPU build (27 MB). Only the one needed is downloaded and compiled —
 * compiling the wasm is most of the time to a ready page.
 */
async function loadOrt(webgpu: boolean): Promise<{ ort: typeof OrtWeb; threads: number; providers: string[] }> {
  const ort = (webgpu ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm')) as typeof OrtWeb;
  const base = new URL('ort/', document.baseURI).href;
  const stem = webgpu ? 'ort-wasm-simd-threaded.asyncify' : 'ort-wasm-simd-threaded';
  ort.env.wasm.wasmPaths = { mjs: `${base}${stem}.mjs`, wasm: `${base}${stem}.wasm` };
  // Threads need SharedArrayBuffer, which browsers only give cross-origin isolated pages (nextray serve sends COOP/COEP).
  const threads = self.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  return { ort, threads, providers: webgpu ? ['webgpu', 'wasm'] : ['wasm'] };
}

async function loadModel(): Promise<{ loaded: Loaded; bytes: number; ms: number; backend: string; phases: Record<string, number> }> {
  const t0 = performance.now();
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  const res = await fetch('model.onnx', { headers, cache: 'no-cache' });
  if (!res.ok) throw new Error(`model.onnx: HTTP ${res.status}${res.status === 401 ? ' (open the page as …/#token=<token>)' : ''}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const tFetched = performance.now();
  const { ort, threads, providers } = await loadOrt(await hasWebGpu());
  const model = await createOnnxModel(ort as unknown as OrtModule, bytes, {
    source: 'model.onnx',
    maxBatch: 1,
    engine: `onnxruntime-web ${ort.env.versions.web} (${providers[0]})`,
    sessionOptions: { executionProviders: providers, graphOptimizationLevel: 'all' } as never,
  });
  const ensemble = new Ensemble([model]);
  const info = model.classifier.info;
  const outputs = [ONNX_CAM, ONNX_OOD_SCORE].filter((o) => model.card.outputs.includes(o));
  const tSession = performance.now();
  // Warm-up: the first run compiles kernels; the user's first image should not pay for it.
  const s = info.inputSize;
  await model.run(new Float32Array(s * s * 3), 1);
  const backend = `${providers[0]}${providers[0] === 'wasm' ? `, ${threads} thread${threads > 1 ? 's' : ''}` : ''}`;
  const tEnd = performance.now();
  const phases = { fetchMs: tFetched - t0, sessionMs: tSession - tFetched, warmupMs: tEnd - tSession };
  return { loaded: { model, ensemble, info, outputs }, bytes: bytes.byteLength, ms: tEnd - t0, backend, phases };
}

/**
 * Clause 7 of the MURA Dataset Research Use Agreement, verbatim — the same text as MURA_AGREEMENT_CLAUSE_7 in
 * src/evaluate/report.ts (not imported: that module writes files with node: modules); a test checks they agree.
 */
const MURA_CLAUSE_7 =
  'The MURA Dataset has not been reviewed or approved by the Food and Drug Administration, and is for non-clinical, ' +
  'Research Use Only. In no event shall data or images generated through the use of the MURA Dataset be used or ' +
  'relied upon in the diagnosis or provision of patient care.';

/** What the model file says it was trained on: 'mura', 'synthetic', or null when it does not say. */
function trainingData(info: OnnxClassifierInfo): 'mura' | 'synthetic' | null {
  const d = info.metadata.dataset;
  if (!d) return null;
  try {
    const j = JSON.parse(d) as { kind?: string };
    if (j.kind === 'synthetic' || j.kind === 'mura') return j.kind;
  } catch {
    /* a plain name */
  }
  return /synth/i.test(d) ? 'synthetic' : /mura/i.test(d) ? 'mura' : null;
}

function renderCard(info: OnnxClassifierInfo, bytes: number, sha256: string): void {
  const rows: [string, string][] = [
    ['Architecture', info.arch],
    ['Input size', `${info.inputSize} × ${info.inputSize} px (${info.preprocessing.resize === 'pad' ? 'letterboxed' : 'stretched'})`],
    ['Decision threshold', ((o) => (o ? `${info.decisionThreshold} (${o})` : String(info.decisionThreshold)))(info.decisionThreshold === null ? null : operatingPointOrigin(info.card.operatingPoint, info.decisionThreshold))],
    ['File', `${(bytes / 1e6).toFixed(1)} MB, exported by nextray ${info.nextrayVersion}`],
    ['SHA-256', sha256.slice(0, 16) + '…'],
    ['Heatmap', info.model.outputs.some((o) => o.name === ONNX_CAM) ? 'class activation map' : 'none in this file'],
    ['OOD gate', info.ood ? `${info.ood.method}, threshold ${+info.ood.threshold.toFixed(2)} (${info.ood.quantile} quantile of the ${info.card.ood?.thresholdFittedOn === 'validation' ? 'validation' : 'training'} images' scores; statistics of ${info.ood.images} training images)` : 'none in this file'],
  ];
  const m = info.metadata;
  for (const key of Object.keys(m).sort()) {
    if (/^(validation|valid|metrics|auc|kappa|dataset|training_data|calibration)/.test(key)) rows.push([key.replace(/_/g, ' '), formatMeta(m[key]!)]);
  }
  const card = $('card');
  card.replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.textContent = k;
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(th, td);
      return tr;
    }),
  );
}

function formatMeta(v: string): string {
  try {
    const j = JSON.parse(v) as unknown;
    if (j && typeof j === 'object') {
      return Object.entries(j as Record<string, unknown>)
        .filter(([k]) => k !== 'fingerprint')
        .map(([k, x]) => `${k.replace(/^val_images$/, 'validation_images').replace(/^val_/, '').replace(/_/g, ' ')} ${typeof x === 'number' ? +x.toFixed(4) : typeof x === 'string' ? x : JSON.stringify(x)}`)
        .join(', ');
    }
  } catch {
    /* plain text */
  }
  return v;
}

async function predictFile(m: Loaded, file: File): Promise<ViewResult> {
  if (file.size === 0) throw new BrowserImageError(`${file.name}: empty file (0 bytes)`);
  const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
  const kind = sniff(head);
  if (kind === 'unknown') throw new BrowserImageError(`${file.name}: not an image: the file is neither PNG, JPEG nor DICOM data`);
  const image = kind === 'dicom' ? await decodeDicom(file) : await decodeRaster(file, file.name);
  const t0 = performance.now();
  const inputs = preprocessAll(image.data, image.width, image.height, m.ensemble.preprocessings, file.name);
  let raw: EnsembleRunResult | undefined;
  const [p] = await predictBatch(
    m.ensemble,
    [{ image: file.name, inputs, study: studyKeyOf(file.name, image.studyUid), width: image.width, height: image.height, format: kind, warnings: image.warnings }],
    { outputs: m.outputs, onBatch: (_r, r) => void (raw = r) },
  );
  const ms = performance.now() - t0;
  const extra = raw!.extra[0]!;
  const c = extra[ONNX_CAM];
  const cam = c ? { map: c.data, height: c.dims[1]!, width: c.dims[2]! } : null;
  const score = extra[ONNX_OOD_SCORE]?.data[0];
  const gate = m.info.ood;
  let ood: ViewResult['ood'] = null;
  if (gate && score !== undefined) {
    const flagged = isOutOfDistribution(score, gate.threshold);
    ood = { score, threshold: gate.threshold, flagged, ...(flagged ? { warning: oodWarning(score, gate.threshold) } : {}) };
  }
  return { name: file.name, probability: p!.probability, decision: p!.decision, ms, warnings: [...image.warnings, ...greyWarnings(image.data, 8)], image, cam, ood };
}

let shown: { view: ViewResult; info: OnnxClassifierInfo } | null = null;

/** Draws the picture and, over it, the heatmap blended at the slider's opacity (the map undone from the letterbox). */
function showViewer(v: ViewResult, info: OnnxClassifierInfo): void {
  shown = { view: v, info };
  const img = $<HTMLCanvasElement>('image');
  const heat = $<HTMLCanvasElement>('heatmap');
  // Shown 480 px on its longer side (small images enlarged, large ones reduced).
  const scale = 480 / Math.max(v.image.width, v.image.height);
  const w = Math.max(1, Math.round(v.image.width * scale));
  const h = Math.max(1, Math.round(v.image.height * scale));
  for (const c of [img, heat]) {
    c.width = w;
    c.height = h;
  }
  const ictx = img.getContext('2d', { willReadFrequently: true })!;
  ictx.drawImage(v.image.bitmap, 0, 0, w, h);
  const hctx = heat.getContext('2d')!;
  hctx.clearRect(0, 0, w, h);
  heat.dataset.drawn = 'false';
  if (v.cam) {
    const rgba = ictx.getImageData(0, 0, w, h).data;
    const grey = new Float32Array(w * h);
    for (let i = 0; i < grey.length; i++) grey[i] = rgba[4 * i]! / 255;
    const map = camOnImage(v.cam.map, v.cam.height, v.cam.width, w, h, info.preprocessing);
    const alpha = Number($<HTMLInputElement>('opacity').value) / 100;
    const px = overlayHeatmap(grey, map, w, h, { alpha });
    hctx.putImageData(new ImageData(new Uint8ClampedArray(px), w, h), 0, 0);
    heat.dataset.drawn = 'true';
    $('heatmap-note').textContent = 'Heatmap (class activation map): where the model found evidence of abnormality; yellow = most.';
  } else {
    $('heatmap-note').textContent = 'This model file carries no heatmap output (export with --cam).';
  }
  $('viewer').hidden = false;
}

function showError(msg: string | null): void {
  const e = $('error');
  e.textContent = msg ?? '';
  e.hidden = msg === null;
}

async function handleFiles(m: Loaded, files: File[]): Promise<void> {
  if (!files.length) return;
  state('busy');
  showError(null);
  const views: ViewResult[] = [];
  const errors: string[] = [];
  for (const f of files) {
    try {
      views.push(await predictFile(m, f));
    } catch (err) {
      errors.push(err instanceof BrowserImageError ? err.message : `${f.name}: ${(err as Error).message}`);
    }
  }
  if (errors.length) showError(errors.join('\n'));
  const info = m.info;
  if (!views.length) {
    $('result').hidden = true;
    $('viewer').hidden = true;
    state('done');
    return;
  }
  // The files dropped together are the views of one study: the core's aggregation (mean of the views). Views the
  // OOD gate rejects get a warning instead of a say in the decision.
  const counted = views.filter((v) => !v.ood?.flagged);
  const [study] = aggregateStudies(
    counted.map((v) => ({ image: v.name, probability: v.probability, study: { key: 'this study', source: 'folder' as const } })),
    m.ensemble.threshold,
  );
  const p = $('probability');
  const d = $('decision');
  if (study) {
    p.textContent = study.probability.toFixed(4);
    p.dataset.value = String(study.probability);
    d.textContent = study.decision;
    d.className = study.decision;
  } else {
    p.textContent = '—';
    delete p.dataset.value;
    d.textContent = 'no decision';
    d.className = '';
  }
  $('threshold').textContent = String(m.ensemble.threshold);
  $('views').replaceChildren(
    ...views.map((v, i) => {
      const li = document.createElement('li');
      li.dataset.testid = 'view';
      li.dataset.value = String(v.probability);
      li.dataset.ms = v.ms.toFixed(2);
      if (v.ood) li.dataset.ood = String(v.ood.flagged);
      li.textContent = `${v.name}: ${v.probability.toFixed(4)} (${v.ms.toFixed(0)} ms)${v.ood?.flagged ? ' — out of distribution' : ''}${v.warnings.length ? ' — ' + v.warnings.join('; ') : ''}`;
      li.addEventListener('click', () => {
        for (const el of document.querySelectorAll('#views li')) el.classList.remove('shown');
        li.classList.add('shown');
        showViewer(views[i]!, info);
      });
      return li;
    }),
  );
  const flagged = views.filter((v) => v.ood?.flagged);
  const ood = $('ood');
  ood.textContent = flagged.length
    ? `Warning — ${flagged.map((v) => `${v.name}: ${v.ood!.warning}`).join('; ')}.${counted.length ? ' The study result leaves it out.' : ''}`
    : '';
  ood.hidden = flagged.length === 0;
  $('result').hidden = false;
  // Show the view that drives the answer most: the highest probability (click another to see it).
  let top = 0;
  views.forEach((v, i) => {
    if (v.probability > views[top]!.probability) top = i;
  });
  document.querySelectorAll('#views li')[top]?.classList.add('shown');
  showViewer(views[top]!, info);
  state('done');
}

async function start(): Promise<void> {
  state('loading');
  const opacity = $<HTMLInputElement>('opacity');
  opacity.addEventListener('input', () => {
    if (shown) showViewer(shown.view, shown.info);
  });
  let loaded: Awaited<ReturnType<typeof loadModel>>;
  try {
    loaded = await loadModel();
  } catch (err) {
    $('status').textContent = `Cannot load the model: ${(err as Error).message}`;
    state('error');
    return;
  }
  const m = loaded.loaded;
  renderCard(m.info, loaded.bytes, m.model.card.sha256);
  const data = trainingData(m.info);
  if (data) {
    const n = $('notice');
    n.textContent =
      data === 'mura'
        ? `Research use only. This model was trained on MURA. The MURA Dataset Research Use Agreement, clause 7: "${MURA_CLAUSE_7}"`
        : 'Trained on synthetic radiographs: a demonstration of the pipeline, not a model for real X-rays.';
    n.dataset.kind = data;
    n.hidden = false;
  }
  $('status').textContent = `Ready: ${m.info.arch} on ${loaded.backend}, loaded in ${(loaded.ms / 1000).toFixed(2)} s.`;
  (window as unknown as { nextray: unknown }).nextray = { readyMs: loaded.ms, phases: loaded.phases, backend: loaded.backend, card: m.model.card };
  const input = $<HTMLInputElement>('file');
  input.addEventListener('change', () => void handleFiles(m, [...(input.files ?? [])]).finally(() => (input.value = '')));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void handleFiles(m, [...(e.dataTransfer?.files ?? [])]);
  });
  state('ready');
}

void start();
