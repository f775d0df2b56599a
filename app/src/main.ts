/**
 * The offline page: loads the model next to it (model.onnx) into onnxruntime-web — wasm with SIMD, threads when
 * the page is cross-origin isolated, WebGPU when the browser has it — and turns the views of one study into one
 * result. Preprocessing and the session wrapper are the library's browser-safe core (the same code Node runs), so
 * a file gives the same probability here as in `nextray predict`.
 */
import * as ort from 'onnxruntime-web';
import { OnnxClassifierCore, type OnnxClassifierInfo, type OrtModule } from '../../src/models/onnx/classifier.js';
import { greyWarnings, preprocessGrey } from '../../src/data/preprocess.js';
import { camOnImage } from '../../src/inference/core/cam.js';
import { overlayHeatmap } from '../../src/inference/core/colormap.js';
import { BrowserImageError, decodeRaster, sniff, type DecodedImage } from './decode.js';
import './style.css';

interface ViewResult {
  name: string;
  probability: number;
  ms: number;
  warnings: string[];
  image: DecodedImage;
  /** The model's class activation map over its input grid, when the file has a `cam` output. */
  cam: { map: Float32Array; height: number; width: number } | null;
  ood: { score: number; threshold: number; flagged: boolean } | null;
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

function configureOrt(webgpu: boolean): { threads: number; providers: string[] } {
  const base = new URL('ort/', document.baseURI).href;
  ort.env.wasm.wasmPaths = { mjs: base + 'ort-wasm-simd-threaded.jsep.mjs', wasm: base + 'ort-wasm-simd-threaded.jsep.wasm' };
  // Threads need SharedArrayBuffer, which browsers only give cross-origin isolated pages (nextray serve sends COOP/COEP).
  const threads = self.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  const providers = webgpu ? ['webgpu', 'wasm'] : ['wasm'];
  return { threads, providers };
}

async function loadModel(): Promise<{ clf: OnnxClassifierCore; bytes: number; ms: number; backend: string }> {
  const t0 = performance.now();
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  const res = await fetch('model.onnx', { headers, cache: 'no-cache' });
  if (!res.ok) throw new Error(`model.onnx: HTTP ${res.status}${res.status === 401 ? ' (open the page as …/#token=<token>)' : ''}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const { threads, providers } = configureOrt(await hasWebGpu());
  const clf = await OnnxClassifierCore.createWith(ort as unknown as OrtModule, bytes, {
    source: 'model.onnx',
    maxBatch: 1,
    sessionOptions: { executionProviders: providers, graphOptimizationLevel: 'all' } as never,
  });
  // Warm-up: the first run compiles kernels; the user's first image should not pay for it.
  const s = clf.info.inputSize;
  await clf.run(new Float32Array(s * s * 3), 1);
  return { clf, bytes: bytes.byteLength, ms: performance.now() - t0, backend: `${providers[0]}${providers[0] === 'wasm' ? `, ${threads} thread${threads > 1 ? 's' : ''}` : ''}` };
}

function isMura(info: OnnxClassifierInfo): boolean {
  const m = info.metadata;
  return [m.dataset, m.training_data, m.data_kind].some((v) => typeof v === 'string' && /mura/i.test(v));
}

function renderCard(info: OnnxClassifierInfo, bytes: number): void {
  const rows: [string, string][] = [
    ['Architecture', info.arch],
    ['Input size', `${info.inputSize} × ${info.inputSize} px (${info.preprocessing.resize === 'pad' ? 'letterboxed' : 'stretched'})`],
    ['Decision threshold', String(info.decisionThreshold)],
    ['File', `${(bytes / 1e6).toFixed(1)} MB, exported by nextray ${info.nextrayVersion}`],
  ];
  const m = info.metadata;
  for (const key of Object.keys(m).sort()) {
    if (/^(validation|valid|metrics|auc|kappa|dataset|training_data|calibration|ood)/.test(key)) rows.push([key.replace(/_/g, ' '), formatMeta(m[key]!)]);
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
        .map(([k, x]) => `${k} ${typeof x === 'number' ? +x.toFixed(4) : JSON.stringify(x)}`)
        .join(', ');
    }
  } catch {
    /* plain text */
  }
  return v;
}

async function predictFile(clf: OnnxClassifierCore, file: File): Promise<ViewResult> {
  const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
  if (file.size === 0) throw new BrowserImageError(`${file.name}: empty file (0 bytes)`);
  const kind = sniff(head);
  if (kind === 'dicom') throw new BrowserImageError(`${file.name}: DICOM files are not read in the page yet; use nextray predict or the server's /v1/predict`);
  if (kind === 'unknown') throw new BrowserImageError(`${file.name}: not an image: the file is neither PNG, JPEG nor DICOM data`);
  const image = await decodeRaster(file, file.name);
  const t0 = performance.now();
  const x = preprocessGrey(image.data, image.width, image.height, clf.info.preprocessing);
  const r = await clf.run(x, 1);
  const ms = performance.now() - t0;
  const cam = r.cam && r.camSize ? { map: r.cam, height: r.camSize[0], width: r.camSize[1] } : null;
  const score = r.oodScores?.[0];
  const gate = clf.info.ood;
  const ood = gate && score !== undefined ? { score, threshold: gate.threshold, flagged: score > gate.threshold } : null;
  return { name: file.name, probability: r.probabilities[0]!, ms, warnings: greyWarnings(image.data, 8), image, cam, ood };
}

let shown: { view: ViewResult; info: OnnxClassifierInfo } | null = null;

/** Draws the picture and, over it, the heatmap blended at the slider's opacity (the map undone from the letterbox). */
function showViewer(v: ViewResult, info: OnnxClassifierInfo): void {
  shown = { view: v, info };
  const img = $<HTMLCanvasElement>('image');
  const heat = $<HTMLCanvasElement>('heatmap');
  const scale = Math.min(1, 512 / Math.max(v.image.width, v.image.height));
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

async function handleFiles(clf: OnnxClassifierCore, files: File[]): Promise<void> {
  if (!files.length) return;
  state('busy');
  showError(null);
  const views: ViewResult[] = [];
  const errors: string[] = [];
  for (const f of files) {
    try {
      views.push(await predictFile(clf, f));
    } catch (err) {
      errors.push(err instanceof BrowserImageError ? err.message : `${f.name}: ${(err as Error).message}`);
    }
  }
  if (errors.length) showError(errors.join('\n'));
  const info = clf.info;
  if (!views.length) {
    $('result').hidden = true;
    $('viewer').hidden = true;
    state('done');
    return;
  }
  // One study, several views: the MURA baseline's study probability is the mean over its views.
  const study = views.reduce((a, v) => a + v.probability, 0) / views.length;
  const t = info.decisionThreshold ?? 0.5;
  const p = $('probability');
  p.textContent = study.toFixed(4);
  p.dataset.value = String(study);
  const d = $('decision');
  d.textContent = study >= t ? 'abnormal' : 'normal';
  d.className = study >= t ? 'abnormal' : 'normal';
  $('threshold').textContent = String(t);
  $('views').replaceChildren(
    ...views.map((v, i) => {
      const li = document.createElement('li');
      li.dataset.testid = 'view';
      li.dataset.value = String(v.probability);
      li.dataset.ms = v.ms.toFixed(2);
      if (v.ood) li.dataset.ood = String(v.ood.flagged);
      li.textContent = `${v.name}: ${v.probability.toFixed(4)} (${v.ms.toFixed(0)} ms)${v.ood?.flagged ? ' — out of distribution' : ''}${v.warnings.length ? ' — ' + v.warnings.join('; ') : ''}`;
      li.addEventListener('click', () => showViewer(views[i]!, info));
      return li;
    }),
  );
  const flagged = views.filter((v) => v.ood?.flagged);
  const ood = $('ood');
  ood.textContent = flagged.length
    ? `Out of distribution: ${flagged.map((v) => v.name).join(', ')} ${flagged.length > 1 ? 'do' : 'does'} not look like the radiographs this model was trained on; its answer there means little.`
    : '';
  ood.hidden = flagged.length === 0;
  $('result').hidden = false;
  showViewer(views[0]!, info);
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
  const { clf } = loaded;
  renderCard(clf.info, loaded.bytes);
  if (isMura(clf.info)) {
    const n = $('notice');
    n.textContent =
      'This model was trained on MURA (Stanford AIMI). MURA Dataset Research Use Agreement: research use only, ' +
      'non-commercial; not for clinical decisions.';
    n.hidden = false;
  }
  $('status').textContent = `Ready: ${clf.info.arch} on ${loaded.backend}, loaded in ${(loaded.ms / 1000).toFixed(2)} s.`;
  (window as unknown as { nextray: unknown }).nextray = { readyMs: loaded.ms, backend: loaded.backend, info: clf.info };
  const input = $<HTMLInputElement>('file');
  input.addEventListener('change', () => void handleFiles(clf, [...(input.files ?? [])]).finally(() => (input.value = '')));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void handleFiles(clf, [...(e.dataTransfer?.files ?? [])]);
  });
  state('ready');
}

void start();
