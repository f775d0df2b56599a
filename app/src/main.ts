/**
 * The offline page: the views of one or more studies in, one result per study out, and a viewer to read them.
 *
 * What it shows is built so it cannot be misread:
 *  - a view the out-of-distribution gate rejected shows no probability and no heatmap (greyed, the reason given; its
 *    numbers only behind "Show anyway (research use)"), and the view on display by default is one that counts;
 *  - each study's line names the views left out and says whether the result would differ with them; when every view
 *    was rejected there is no decision, said in words;
 *  - views are grouped into studies by Study Instance UID, never merged across patients (the facade's rule);
 *  - the probability is shown with the threshold and what the threshold was chosen for (the model card); timings stay
 *    in the diagnostics line.
 * Prediction itself is the library's facade (load -> predict, from the package's browser entry), hosted by engine.ts; the canvas is viewer.ts; offline storage is store.ts / offline.ts / sw.ts.
 */
import { inference } from 'nextray/browser';
import { calibrationText, cardFacts, formatProbability, formatThreshold, operatingPointText, probabilityLine, trainedOn } from './card.js';
import { setupAdaptPanel } from './adapt-panel.js';
import { load, type PageModel, type Prediction, type StudyResult, type ViewResult } from './engine.js';
import { askPersistence, keepFiles, megabytes, offlineState, registerWorker, reloadForIsolation } from './offline.js';
import { backendFromHash, mark } from './runtime.js';
import { DEFAULT_OPACITY, HEATMAP_FLOOR, PRESETS, Viewer } from './viewer.js';
import './style.css';

/**
 * Clause 7 of the MURA Dataset Research Use Agreement, verbatim — the same text as MURA_AGREEMENT_CLAUSE_7 in
 * src/evaluate/report.ts (not imported: that module writes files with node: modules); a test checks they agree.
 */
const MURA_CLAUSE_7 =
  'The MURA Dataset has not been reviewed or approved by the Food and Drug Administration, and is for non-clinical, ' +
  'Research Use Only. In no event shall data or images generated through the use of the MURA Dataset be used or ' +
  'relied upon in the diagnosis or provision of patient care.';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el as T;
};
const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> & { dataset?: Record<string, string> } = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(e, rest);
  if (dataset) Object.assign(e.dataset, dataset);
  e.append(...children);
  return e;
};
const state = (s: 'loading' | 'ready' | 'busy' | 'done' | 'error'): void => {
  document.body.dataset.state = s;
};
const setStatus = (text: string): void => {
  $('status').textContent = text;
};

function token(): string | null {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]!) : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Page state

let model: PageModel | null = null;
/** Files picked or dropped before the model was ready: read as soon as it is. */
let pending: File[] = [];
let result: Prediction | null = null;
/** The files of the last result: read again when the head in use changes (site adaptation). */
let lastFiles: File[] = [];
let shown: ViewResult | null = null;
/** Views whose numbers the user asked to see although the gate rejected them (research use). */
const revealed = new Set<number>();
let heatmapOn = true;
let viewer: Viewer;

// ---------------------------------------------------------------------------------------------------------------
// Model card

function renderCard(m: PageModel): void {
  const card = m.card;
  const trained = trainedOn(card);
  const version = card.versions?.nextray;
  const rows: [string, string][] = [
    ['Model', `${card.name} (${card.arch})`],
    ['Input size', `${card.preprocessing.size} × ${card.preprocessing.size} px (${card.preprocessing.resize === 'pad' ? 'letterboxed' : 'stretched'})`],
    ['Decision threshold', `${formatThreshold(m.threshold)}: ${operatingPointText(card)}`],
    ['Probability', calibrationText(card)],
    [
      'OOD gate',
      card.ood
        ? `${card.ood.method}, threshold ${+card.ood.threshold.toFixed(2)} (${card.ood.quantile} quantile of ${card.ood.images} training images): views above it are left out`
        : 'none in this file: every view counts, even one that is not a radiograph',
    ],
    ['Heatmap', m.heatmaps ? 'class activation map: where the model found evidence, coarse, not a finding' : 'none in this file'],
    ['Trained on', trained === 'mura' ? 'MURA (research use only)' : trained === 'synthetic' ? 'synthetic radiographs (a demonstration)' : 'not stated in the file'],
    ...cardFacts(card),
    ...(m.site.head && card.adaptation ? ([['Adapted head', `in use: fitted on ${card.adaptation.studies ?? '?'} studies of this site, ${card.adaptation.date.slice(0, 10)} (the Adapt panel resets it)`]] as [string, string][]) : []),
    ['File', `${megabytes(m.bytes)}${version ? `, made by nextray ${version}` : ''}`],
    ['SHA-256', card.sha256],
  ];
  $('card').replaceChildren(
    ...rows.map(([k, v]) => el('tr', {}, el('th', { scope: 'row', textContent: k }), el('td', { textContent: k === 'SHA-256' ? `${v.slice(0, 16)}…` : v, title: v }))),
  );
  if (trained) {
    const n = $('notice');
    n.textContent =
      trained === 'mura'
        ? `Research use only. This model was trained on MURA. The MURA Dataset Research Use Agreement, clause 7: "${MURA_CLAUSE_7}"`
        : 'Trained on synthetic radiographs: a demonstration of the pipeline, not a model for real X-rays.';
    n.dataset.kind = trained;
    n.hidden = false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Results

const decisionWord = (d: 'abnormal' | 'normal' | null): string => (d === null ? 'no decision' : d);

function studyTitle(s: StudyResult): string {
  if (!s.identified) return 'Unidentified study';
  const who = [s.patientName, s.patientId ? `ID ${s.patientId}` : undefined].filter(Boolean).join(' · ');
  return who ? `Patient ${who}` : 'Patient not named in the files';
}

/** The study's sentence: decision, probability, which views count, and what the left-out ones would change. */
function studyLine(s: StudyResult, m: PageModel): HTMLElement {
  const p = el('p', { className: 'study-line', dataset: { testid: 'study-line' } });
  const decision = el('strong', { className: s.decision ?? 'none', textContent: s.decision === null ? 'No decision' : s.decision === 'abnormal' ? 'Abnormal' : 'Normal', dataset: { testid: 'decision' } });
  if (s.probability === null) {
    p.append(
      decision,
      `: every view (${s.views.length}) was left out — ${s.views.length === 1 ? 'it does' : 'none of them does'} not look like the upper-extremity radiographs the model was trained on. The model gives no result for this study.`,
    );
    return p;
  }
  const prob = el('span', { textContent: formatProbability(s.probability, m.threshold), dataset: { testid: 'probability', value: String(s.probability) } });
  p.append(
    decision,
    ' — P(abnormal) ',
    prob,
    ` (${s.counted.length === 1 ? 'one view' : `mean of ${s.counted.length} views`}) — ${s.probability > m.threshold ? 'above' : 'at or below'} the threshold ${formatThreshold(m.threshold)}, ${operatingPointText(m.card)}.`,
  );
  return p;
}

function leftOutLine(s: StudyResult, m: PageModel): HTMLElement | null {
  if (!s.leftOut.length || s.probability === null) return null;
  const names = s.leftOut.map((v) => `${v.name} (${v.rejection ? 'out of distribution' : 'left out'})`).join(', ');
  const w = s.withLeftOut!;
  const same = w.decision === s.decision;
  const text = `Left out: ${names}. ${same ? `Counted, ${s.leftOut.length === 1 ? 'it' : 'they'} would not change the decision` : `Counted, ${s.leftOut.length === 1 ? 'it' : 'they'} would change the result to ${w.decision}`} (P ${formatProbability(w.probability, m.threshold)}).`;
  return el('p', { className: 'left-out warning', textContent: text, dataset: { testid: 'left-out', differs: String(!same) } });
}

function thumbnail(v: ViewResult): HTMLCanvasElement {
  const size = 72;
  const scale = Math.min(size / v.width, size / v.height);
  const w = Math.max(1, Math.round(v.width * scale));
  const h = Math.max(1, Math.round(v.height * scale));
  const c = el('canvas', { width: w, height: h });
  c.setAttribute('aria-hidden', 'true');
  const px = new ImageData(w, h);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(v.height - 1, Math.floor((y + 0.5) / scale));
    for (let x = 0; x < w; x++) {
      const sx = Math.min(v.width - 1, Math.floor((x + 0.5) / scale));
      const g = Math.round(255 * Math.max(0, Math.min(1, v.grey[sy * v.width + sx]!)));
      const o = 4 * (y * w + x);
      px.data[o] = px.data[o + 1] = px.data[o + 2] = g;
      px.data[o + 3] = 255;
    }
  }
  c.getContext('2d')!.putImageData(px, 0, 0);
  return c;
}

function viewLabel(v: ViewResult, m: PageModel): string {
  const id = v.prediction.view;
  const where = [id.bodyPartExamined, id.viewPosition, id.laterality].filter(Boolean).join(' ');
  const what = v.counts ? `${v.prediction.decision}, P(abnormal) ${formatProbability(v.prediction.probability, m.threshold)}` : 'left out: out of distribution';
  return `${v.name}${where ? ` (${where})` : ''}: ${what}`;
}

function renderStudies(r: Prediction, m: PageModel): void {
  const box = $('results');
  const cards = r.studies.map((s) => {
    const facts: [string, string][] = [];
    if (s.identified) {
      if (s.patientName) facts.push(['Patient name', s.patientName]);
      if (s.patientId) facts.push(['Patient ID', s.patientId]);
      facts.push(['Study date', s.studyDate ?? 'not in the files']);
      if (s.studyUid) facts.push(['Study UID', s.studyUid]);
    } else facts.push(['Identity', 'no patient or study identifiers in these files (PNG and JPEG never have them): check that these views belong together']);
    facts.push(['Body part', s.bodyParts.join(', ') || 'not stated']);
    facts.push(['View position', s.viewPositions.join(', ') || 'not stated']);
    const dl = el('dl', { className: 'facts' });
    for (const [k, v] of facts) dl.append(el('dt', { textContent: k }), el('dd', { textContent: v }));
    const list = el('ul', { className: 'thumbs', ariaLabel: `Views of this study` });
    for (const v of s.views) {
      const b = el(
        'button',
        { type: 'button', className: `thumb${v.counts ? '' : ' rejected'}`, dataset: { testid: 'view', index: String(v.index), value: String(v.prediction.probability), counts: String(v.counts) } },
        thumbnail(v),
        el('span', { className: 'cap' }, el('span', { className: 'name', textContent: v.name }), el('span', { textContent: v.counts ? `${decisionWord(v.prediction.decision)} ${formatProbability(v.prediction.probability, m.threshold)}` : 'left out' })),
      );
      b.setAttribute('aria-label', viewLabel(v, m));
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => showView(v));
      list.append(el('li', {}, b));
    }
    const warnings = s.warnings.map((w) => el('p', { className: 'warning', textContent: w }));
    const article = el(
      'article',
      { className: 'study', dataset: { testid: 'study', key: s.key, decision: s.decision ?? 'none' } },
      el('h2', { textContent: studyTitle(s) }),
      dl,
      studyLine(s, m),
      ...[leftOutLine(s, m)].filter((x): x is HTMLElement => x !== null),
      ...warnings,
      list,
    );
    return article;
  });
  const failed = r.failed.length
    ? [el('section', { className: 'failed', dataset: { testid: 'failed' } }, el('h2', { textContent: `Not read (${r.failed.length})` }), el('ul', {}, ...r.failed.map((f) => el('li', { textContent: f.reason }))))]
    : [];
  box.replaceChildren(...cards, ...failed);
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------------------------------
// Viewer

function describeHeatmap(v: ViewResult): string {
  if (!v.heatmap || !v.heatmap.drawable) return '';
  const { map, h, w } = v.heatmap;
  let best = 0;
  for (let i = 1; i < map.length; i++) if (map[i]! > map[best]!) best = i;
  const x = (best % w) / w;
  const y = Math.floor(best / w) / h;
  const col = x < 1 / 3 ? 'left' : x < 2 / 3 ? 'centre' : 'right';
  const row = y < 1 / 3 ? 'upper' : y < 2 / 3 ? 'middle' : 'lower';
  return `; heatmap on, strongest in the ${row} ${col} of the model's input`;
}

function canvasText(v: ViewResult): string {
  const where = [v.prediction.view.bodyPartExamined, v.prediction.view.viewPosition].filter(Boolean).join(' ');
  const wl = viewer.wl;
  const heat = $('heatmap').dataset.drawn === 'true' && heatmapOn ? describeHeatmap(v) : '; no heatmap drawn';
  return `Radiograph ${v.name}${where ? `, ${where}` : ''}, ${v.width} × ${v.height} pixels, zoom ${viewer.zoom.toFixed(1)}×, window centre ${wl.centre.toFixed(2)} width ${wl.width.toFixed(2)}${wl.invert ? ', inverted' : ''}${heat}.`;
}

function showView(v: ViewResult): void {
  if (!model) return;
  shown = v;
  const m = model;
  for (const b of document.querySelectorAll<HTMLButtonElement>('[data-testid=view]')) b.setAttribute('aria-pressed', String(Number(b.dataset.index) === v.index));
  const box = $('viewer');
  box.hidden = false;
  box.classList.toggle('rejected', !v.counts);
  $('viewer-title').textContent = v.name;
  const stage = $('stage');
  const maxW = Math.max(160, Math.min(stage.parentElement!.clientWidth || 480, 560));
  viewer.show({ grey: v.grey, width: v.width, height: v.height }, maxW, Math.max(200, Math.min(560, window.innerHeight * 0.65)));
  const research = !v.counts && revealed.has(v.index);
  const line = $('view-line');
  line.dataset.counts = String(v.counts);
  if (v.counts) {
    line.textContent = `${v.prediction.decision === 'abnormal' ? 'Abnormal' : 'Normal'} — P(abnormal) ${probabilityLine(v.prediction.probability, m.card, m.threshold)}.`;
    line.dataset.value = String(v.prediction.probability);
  } else if (research) {
    line.textContent = `Research use — not a finding: this view was left out (${v.rejection?.reason ?? 'rejected'}). The model's output for it: P(abnormal) ${formatProbability(v.prediction.probability, m.threshold)}.`;
    line.dataset.value = String(v.prediction.probability);
  } else {
    line.textContent = `Left out: ${v.rejection?.reason ?? 'rejected'}. No probability and no heatmap are shown for it.`;
    delete line.dataset.value;
  }
  const anyway = $<HTMLButtonElement>('show-anyway');
  anyway.hidden = v.counts || research;
  const warn = $('view-warnings');
  warn.replaceChildren(...v.prediction.warnings.map((w) => el('li', { textContent: w })));
  warn.hidden = v.prediction.warnings.length === 0;
  drawHeatmap();
}

function drawHeatmap(): void {
  const v = shown;
  if (!v || !model) return;
  const allowed = v.counts || revealed.has(v.index);
  const canDraw = allowed && v.heatmap !== null && v.heatmap.drawable;
  viewer.setHeatmap(canDraw ? v.heatmap : null, { size: model.card.preprocessing.size, resize: model.card.preprocessing.resize });
  const heat = $('heatmap');
  heat.hidden = !heatmapOn;
  heat.style.opacity = String(Number($<HTMLInputElement>('opacity').value) / 100);
  const toggle = $<HTMLButtonElement>('heat-toggle');
  toggle.setAttribute('aria-pressed', String(heatmapOn));
  toggle.textContent = heatmapOn ? 'Heatmap: on (H)' : 'Heatmap: off (H)';
  const note = $('heatmap-note');
  const legend = $('legend');
  if (!allowed) {
    note.textContent = 'No heatmap: this view was left out by the out-of-distribution gate.';
    legend.hidden = true;
  } else if (!canDraw) {
    note.textContent = v.heatmapNote ?? 'No heatmap for this view.';
    legend.hidden = true;
  } else {
    note.textContent = heatmapOn
      ? `Heatmap: where the model found evidence for "abnormal" in this view, relative to its strongest region; coarse (the model's last feature map), not a finding or an outline. Untinted: below ${Math.round(100 * HEATMAP_FLOOR)}% of the strongest.`
      : 'Heatmap hidden (press H or the button to show it).';
    legend.hidden = !heatmapOn;
  }
  updateCanvasText();
}

function updateCanvasText(): void {
  if (shown) $('image').setAttribute('aria-label', canvasText(shown));
}

function nextView(step: number): void {
  if (!result || !result.views.length) return;
  const i = shown ? shown.index : -1;
  const n = result.views.length;
  showView(result.views[(((i + step) % n) + n) % n]!);
}

/** The view shown first: the one that drives the first decided study most (its highest counted probability). */
function defaultView(r: Prediction): ViewResult | null {
  for (const s of r.studies) {
    if (!s.counted.length) continue;
    return s.counted.reduce((a, b) => (b.prediction.probability > a.prediction.probability ? b : a));
  }
  return r.views[0] ?? null;
}

// ---------------------------------------------------------------------------------------------------------------
// Files in

async function handleFiles(files: File[]): Promise<void> {
  if (!files.length) return;
  if (!model) {
    pending.push(...files);
    const names = pending.map((f) => f.name).join(', ');
    $('queued').textContent = `${pending.length} file${pending.length > 1 ? 's' : ''} waiting for the model: ${names}. They will be read as soon as it is ready.`;
    $('queued').hidden = false;
    setStatus(`Loading the model… ${pending.length} file${pending.length > 1 ? 's' : ''} waiting.`);
    return;
  }
  state('busy');
  setStatus(`Reading ${files.length} file${files.length > 1 ? 's' : ''}…`);
  const err = $('error');
  err.hidden = true;
  revealed.clear();
  lastFiles = files;
  const t0 = performance.now();
  const r = await model.predict(files, { heatmaps: true });
  const ms = performance.now() - t0;
  result = r;
  if (r.failed.length) {
    err.textContent = r.failed.map((f) => f.reason).join('\n');
    err.hidden = false;
  }
  renderStudies(r, model);
  const first = defaultView(r);
  if (first) showView(first);
  else $('viewer').hidden = true;
  const decided = r.studies.filter((s) => s.decision !== null).length;
  setStatus(
    r.views.length
      ? `Done: ${r.studies.length} stud${r.studies.length > 1 ? 'ies' : 'y'} from ${r.views.length} view${r.views.length > 1 ? 's' : ''}${decided < r.studies.length ? `; ${r.studies.length - decided} without a decision` : ''}${r.failed.length ? `; ${r.failed.length} file${r.failed.length > 1 ? 's' : ''} not read` : ''}.`
      : `No image could be read (${r.failed.length} file${r.failed.length > 1 ? 's' : ''}).`,
  );
  const perView = r.views.length ? r.views.reduce((a, v) => a + v.ms, 0) / r.views.length : 0;
  (window as unknown as { nextray: Record<string, unknown> }).nextray.last = { ms, perViewMs: perView, views: r.views.map((v) => ({ name: v.name, ms: v.ms, probability: v.prediction.probability })) };
  diagnostics(`last files: ${(ms / 1000).toFixed(2)} s, ${perView.toFixed(0)} ms per view (preprocessing + inference)`);
  state('done');
}

let diagBase = '';
let diagExtra = '';
function diagnostics(extra?: string): void {
  if (extra !== undefined) diagExtra = extra;
  $('diagnostics').textContent = `Diagnostics: ${diagBase}${diagExtra ? `; ${diagExtra}` : ''}.`;
}

// ---------------------------------------------------------------------------------------------------------------
// Controls

function setupControls(): void {
  viewer = new Viewer($<HTMLCanvasElement>('image'), $<HTMLCanvasElement>('heatmap'));
  viewer.onChange = updateCanvasText;
  const input = $<HTMLInputElement>('file');
  input.addEventListener('change', () => {
    const files = [...(input.files ?? [])];
    input.value = '';
    void handleFiles(files);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void handleFiles([...(e.dataTransfer?.files ?? [])]);
  });
  const opacity = $<HTMLInputElement>('opacity');
  opacity.value = String(DEFAULT_OPACITY);
  opacity.addEventListener('input', () => {
    $('heatmap').style.opacity = String(Number(opacity.value) / 100);
    $('opacity-value').textContent = `${opacity.value}%`;
  });
  $('opacity-value').textContent = `${opacity.value}%`;
  const toggleHeat = (): void => {
    heatmapOn = !heatmapOn;
    drawHeatmap();
  };
  $('heat-toggle').addEventListener('click', toggleHeat);
  $('show-anyway').addEventListener('click', () => {
    if (!shown) return;
    revealed.add(shown.index);
    showView(shown);
    $('view-line').focus();
  });
  const presets = $('presets');
  for (const p of PRESETS) {
    const b = el('button', { type: 'button', textContent: `${p.label} (${p.key})`, dataset: { preset: p.key } });
    b.addEventListener('click', () => viewer.preset(p));
    presets.append(b);
  }
  $('invert').addEventListener('click', () => viewer.toggleInvert());
  $('zoom-in').addEventListener('click', () => viewer.zoomBy(1.25));
  $('zoom-out').addEventListener('click', () => viewer.zoomBy(1 / 1.25));
  $('reset').addEventListener('click', () => viewer.reset());
  $('prev').addEventListener('click', () => nextView(-1));
  $('next').addEventListener('click', () => nextView(1));
  const mode = $<HTMLButtonElement>('drag-mode');
  let panMode = false;
  const setMode = (pan: boolean): void => {
    panMode = pan;
    mode.textContent = pan ? 'Drag: pan (M)' : 'Drag: window/level (M)';
    mode.setAttribute('aria-pressed', String(pan));
  };
  setMode(false);
  mode.addEventListener('click', () => setMode(!panMode));

  // Pointer: drag = window/level (horizontal: width, vertical: level) or pan (pan mode, shift, or the middle/right
  // button); wheel = zoom about the pointer.
  const stage = $('stage');
  let drag: { x: number; y: number; pan: boolean; c: number; w: number } | null = null;
  stage.addEventListener('pointerdown', (e) => {
    if (!shown) return;
    stage.setPointerCapture(e.pointerId);
    drag = { x: e.clientX, y: e.clientY, pan: panMode || e.shiftKey || e.button !== 0, c: viewer.wl.centre, w: viewer.wl.width };
  });
  stage.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (drag.pan) {
      viewer.panBy(dx, dy);
      drag.x = e.clientX;
      drag.y = e.clientY;
    } else viewer.setWindow(drag.c - dy / 400, drag.w * Math.exp(dx / 200));
  });
  const end = (): void => {
    drag = null;
  };
  stage.addEventListener('pointerup', end);
  stage.addEventListener('pointercancel', end);
  stage.addEventListener('contextmenu', (e) => e.preventDefault());
  stage.addEventListener(
    'wheel',
    (e) => {
      if (!shown) return;
      e.preventDefault();
      const r = $('image').getBoundingClientRect();
      viewer.zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
    },
    { passive: false },
  );

  // Keys for every control (not while typing in a field or moving a slider).
  document.addEventListener('keydown', (e) => {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t instanceof HTMLInputElement && t.type !== 'file' && t.type !== 'checkbox') return;
    if (t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
    const onStage = t === $('stage');
    const k = e.key;
    let done = true;
    if (k === 'o' || k === 'O') $('file').click();
    else if (!shown) done = false;
    else if (k === 'h' || k === 'H') toggleHeat();
    else if (k === '+' || k === '=') viewer.zoomBy(1.25);
    else if (k === '-' || k === '_') viewer.zoomBy(1 / 1.25);
    else if (k === '0') viewer.reset();
    else if (k === 'i' || k === 'I') viewer.toggleInvert();
    else if (k === 'm' || k === 'M') setMode(!panMode);
    else if (k === 'n' || k === 'N' || k === 'PageDown') nextView(1);
    else if (k === 'p' || k === 'P' || k === 'PageUp') nextView(-1);
    else if (k === '[') viewer.setWindow(viewer.wl.centre, viewer.wl.width / 1.15);
    else if (k === ']') viewer.setWindow(viewer.wl.centre, viewer.wl.width * 1.15);
    else if (k === ',') viewer.setWindow(viewer.wl.centre - 0.03, viewer.wl.width);
    else if (k === '.') viewer.setWindow(viewer.wl.centre + 0.03, viewer.wl.width);
    else if (onStage && k.startsWith('Arrow')) {
      const s = 20;
      viewer.panBy(k === 'ArrowLeft' ? s : k === 'ArrowRight' ? -s : 0, k === 'ArrowUp' ? s : k === 'ArrowDown' ? -s : 0);
    } else {
      const p = PRESETS.find((x) => x.key === k);
      if (p) viewer.preset(p);
      else done = false;
    }
    if (done) e.preventDefault();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Start

function legendGradient(): string {
  const stops: string[] = [];
  for (let i = 0; i <= 8; i++) {
    const t = HEATMAP_FLOOR + ((1 - HEATMAP_FLOOR) * i) / 8;
    const j = Math.min(255, Math.floor(t * 256));
    stops.push(`rgb(${inference.VIRIDIS[3 * j]}, ${inference.VIRIDIS[3 * j + 1]}, ${inference.VIRIDIS[3 * j + 2]}) ${(100 * i) / 8}%`);
  }
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

async function goOffline(m: PageModel, registration: Promise<ServiceWorkerRegistration | null>): Promise<void> {
  const reg = await registration;
  const s0 = await offlineState();
  if (!reg) {
    $('offline').textContent = `Not available offline: ${s0.problem ?? 'the service worker could not be registered'}.`;
    return;
  }
  const kept = await keepFiles(m.runtime.files);
  await askPersistence();
  const s = await offlineState();
  const off = $('offline');
  off.dataset.ready = String(kept);
  off.textContent = kept
    ? `Available offline: this page, its runtime and the model are stored in this browser${s.usage !== null ? ` (${megabytes(s.usage)} used${s.quota ? ` of ${megabytes(s.quota)} allowed` : ''})` : ''}${s.persisted ? '' : '; the browser may clear them if storage runs short'}.`
    : 'Not yet available offline: the runtime could not be stored (storage full or refused).';
}

async function start(): Promise<void> {
  state('loading');
  setupControls();
  $('legend-bar').style.background = legendGradient();
  (window as unknown as { nextray: Record<string, unknown> }).nextray = {};
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  // The service worker is registered while the model loads. On a static host without COOP/COEP, the page reloads
  // once when the worker takes control, to come back cross-origin isolated (threads).
  const registration = registerWorker();
  if (!self.crossOriginIsolated) void reloadForIsolation(() => pending.length > 0 || result !== null);
  let m: PageModel;
  try {
    m = await load({ backend: backendFromHash(location.hash), headers, onProgress: (s) => setStatus(pending.length ? `${s} ${pending.length} file${pending.length > 1 ? 's' : ''} waiting.` : s) });
  } catch (err) {
    setStatus(`Cannot load the model: ${(err as Error).message}`);
    state('error');
    return;
  }
  model = m;
  // Site adaptation: the head kept in this browser is in use before the first file is read.
  const adapt = setupAdaptPanel(m, () => {
    renderCard(m);
    if (lastFiles.length) void handleFiles(lastFiles);
  });
  await adapt.restore();
  renderCard(m);
  if (m.source.replaced) {
    const u = $('update-notice');
    u.textContent = `A new model was loaded: ${m.card.name} (SHA-256 ${m.card.sha256.slice(0, 12)}…) replaces the one this browser used before (${m.source.replaced.slice(0, 12)}…). Its card is on the right.`;
    u.hidden = false;
  }
  const backend = m.runtime.provider === 'webgpu' ? 'WebGPU' : `wasm, ${m.runtime.threads} thread${m.runtime.threads > 1 ? 's' : ''}`;
  const where = m.source.refused
    ? ' (the stored model: the server asks for its token again, open the page as …/#token=<token> to check for a new one)'
    : m.source.online
      ? ''
      : ' (offline: the stored model)';
  setStatus(`Ready: ${m.card.arch} on ${backend}${where}${m.runtime.note ? ` — ${m.runtime.note}` : ''}.`);
  diagBase =
    `onnxruntime-web ${m.runtime.build} build, ${m.runtime.provider}, ${m.runtime.threads} thread${m.runtime.threads > 1 ? 's' : ''}` +
    `${self.crossOriginIsolated ? ', cross-origin isolated' : ', not cross-origin isolated (one thread)'}; model from ${m.source.from}` +
    `; ready in ${(m.timings.totalMs / 1000).toFixed(2)} s (model ${(m.timings.fetchMs / 1000).toFixed(2)} s, session ${(m.timings.sessionMs / 1000).toFixed(2)} s${m.timings.warmupMs > 0 ? `, first run ${(m.timings.warmupMs / 1000).toFixed(2)} s` : ''})`;
  diagnostics();
  Object.assign((window as unknown as { nextray: Record<string, unknown> }).nextray, {
    readyMs: m.timings.totalMs,
    phases: m.timings,
    backend: m.runtime.provider,
    threads: m.runtime.threads,
    card: m.card,
    source: m.source,
  });
  state('ready');
  mark('ready');
  // The first run compiles kernels; done now, after the page is usable (a file picked meanwhile waits for it).
  const warmed = m.warmup().then(
    (ms) => {
      if (ms > 0) diagBase += `; first run (warm-up) ${(ms / 1000).toFixed(2)} s`;
      diagnostics();
    },
    () => undefined,
  );
  if (pending.length) {
    const files = pending;
    pending = [];
    $('queued').hidden = true;
    await handleFiles(files);
  }
  await warmed;
  await goOffline(m, registration).catch((err: unknown) => {
    $('offline').textContent = `Not available offline: ${(err as Error).message}`;
  });
}

mark('script');
void start();
