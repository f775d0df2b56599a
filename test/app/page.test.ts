/**
 * The web app in real Chromium (playwright-core driving /usr/bin/chromium) against `nextray serve`'s server with a
 * small exported model: ready cross-origin isolated with one wasm thread per core the browser reports, with every
 * non-local request aborted; probabilities equal the CLI's (`nextray predict`, onnxruntime-node, 1e-4); the study is
 * the mean of the views that count; a view the out-of-distribution gate rejects shows no probability or heatmap and
 * the study line names it; DICOM views are grouped by patient and study; the heatmap is onnxruntime-node's CAM; a
 * file picked while the model loads is read once it is ready.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { camOnImage } from '../../src/inference/core/cam.js';
import { colourAt } from '../../src/inference/core/colormap.js';
import type { FastifyInstance } from 'fastify';
import { buildServer, defaultAppDir } from '../../src/serve/server.js';
import { openPredictor, type Predictor } from '../../src/serve/predictor.js';
import { preprocessImage } from '../../src/data/images.js';
import { OnnxClassifier } from '../../src/inference/node/onnx-session.js';
import { tempDir } from '../helpers/paths.js';
import { tool, toolsSkip } from '../helpers/dicom-tools.js';
import { MURA_AGREEMENT_CLAUSE_7 } from '../../src/evaluate/report.js';
import type { ModelCard } from '../../src/models/card.js';
import { writeImages, writeTinyModel } from '../serve/fixture.js';
import { chromiumMissing, launch, offlinePage } from './browser.js';
import { canvasPixels, cliProbabilities, hasColour, pick, studyCards, writeCheckerboard, writeFlatHeatmapModel, writePatientView, type Patient } from './fixture.js';

const skip = chromiumMissing() ?? (existsSync(join(defaultAppDir(), 'index.html')) ? null : 'dist/app not built (npm run build)');
const tmp = tempDir('nextray-app-');
let images: Awaited<ReturnType<typeof writeImages>>;
let predictor: Predictor;
let server: FastifyInstance;
let origin: string;
let browser: Browser;
let modelPath: string;
let cli = new Map<string, number>();
/** The model card's sections the page shows (src/models/card.ts), as `export --checkpoint` stores them in the .onnx. */
const CARD: Partial<ModelCard> = {
  operatingPoint: { rule: 'sensitivity-target', threshold: 0.5, targetSensitivity: 0.9, sensitivity: 0.9, specificity: 0.71, cases: 1199, level: 'study', fittedOn: 'validation' },
  dataset: { fingerprint: 'sha256:0123', kind: 'mura', name: 'MURA-v1.1' },
  training: { validationMetrics: { val_auc: 0.8123, val_kappa: 0.5 } },
};

const ALICE: Patient = { id: 'PAT-0001', name: 'DOE^ALICE', studyUid: '1.2.826.0.1.3680043.9.7.100', studyDate: '20240131', bodyPart: 'HAND', viewPosition: 'PA' };
const BOB: Patient = { id: 'PAT-0002', name: 'ROE^BOB', studyUid: '1.2.826.0.1.3680043.9.7.200', studyDate: '20240205', bodyPart: 'ELBOW', viewPosition: 'AP' };
let dicoms: Record<'alice1' | 'alice2' | 'bob1' | 'mislabelled', string>;
let checker: string;

before(async () => {
  if (skip) return;
  modelPath = await writeTinyModel(tmp.dir, {
    threshold: 0.5,
    fitOod: true,
    card: CARD,
  });
  images = await writeImages(tmp.dir);
  dicoms = {
    alice1: writePatientView(tmp.dir, 'alice-pa.dcm', ALICE, 0),
    alice2: writePatientView(tmp.dir, 'alice-lat.dcm', { ...ALICE, viewPosition: 'LL' }, 2, [120, 80]),
    bob1: writePatientView(tmp.dir, 'bob-ap.dcm', BOB, 1, [100, 100]),
    // Alice's Study Instance UID under another Patient ID: must not be merged into her study.
    mislabelled: writePatientView(tmp.dir, 'carol.dcm', { ...ALICE, id: 'PAT-0003', name: 'POE^CAROL' }, 3),
  };
  checker = await writeCheckerboard(tmp.dir);
  cli = cliProbabilities(modelPath, [images.png1, images.png2, images.jpeg, images.photo, checker, ...Object.values(dicoms)]);
  predictor = await openPredictor(modelPath, { threads: 1 });
  server = await buildServer({ predictor, modelPath, log: () => {} });
  origin = await server.listen({ host: '127.0.0.1', port: 0 });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await predictor?.release();
  tmp.cleanup();
});

async function readyPage(viewport?: { width: number; height: number }): Promise<{ page: Page; blocked: string[]; consoleErrors: string[] }> {
  const o = await offlinePage(browser, origin, viewport);
  await o.page.goto(origin + '/');
  await o.page.waitForSelector('body[data-state=ready]', { timeout: 90_000 });
  return o;
}

const near = (a: number, b: number, what: string, tol = 1e-4): void => assert.ok(Math.abs(a - b) <= tol, `${what}: page ${a} vs nextray predict ${b}`);

test('offline, cross-origin isolated, one wasm thread per core; model card with the operating point; MURA notice', { skip: skip ?? false }, async () => {
  const { page, blocked, consoleErrors } = await readyPage();
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  assert.match((await page.textContent('[data-testid=status]')) ?? '', new RegExp(`Ready: resnet-slim on wasm, ${cores} thread${cores > 1 ? 's' : ''}`));
  assert.equal(await page.evaluate(() => (window as unknown as { nextray: { threads: number } }).nextray.threads), cores);
  const card = (await page.textContent('[data-testid=model-card]')) ?? '';
  assert.match(card, /resnet-slim/);
  assert.match(card, /Input size64 × 64 px/);
  assert.match(card, /Decision threshold0\.50: chosen for 90% sensitivity on validation \(specificity 71%, 1199 validation studies\)/);
  assert.match(card, /not calibrated/);
  assert.match(card, /auc 0\.8123/);
  assert.match(card, /OOD gatemahalanobis, threshold/);
  assert.equal(await page.isVisible('[data-testid=research-notice]'), true);
  assert.ok(((await page.textContent('[data-testid=research-notice]')) ?? '').includes(MURA_AGREEMENT_CLAUSE_7), 'the notice quotes clause 7 as the report does');
  // Status and results are announced; the picture has a text alternative.
  assert.equal(await page.getAttribute('[data-testid=status]', 'role'), 'status');
  assert.equal(await page.getAttribute('[data-testid=results]', 'aria-live'), 'polite');
  assert.equal(await page.getAttribute('[data-testid=error]', 'role'), 'alert');
  assert.equal(await page.getAttribute('[data-testid=image]', 'role'), 'img');
  assert.deepEqual(blocked, [], 'the page asked for nothing outside its server');
  assert.deepEqual(consoleErrors, []);
  await page.context().close();
});

test('PNG and JPEG views give the CLI probability; the study is their mean, shown with two decimals and the operating point, no timings', { skip: skip ?? false }, async () => {
  const { page, blocked } = await readyPage();
  const study = [images.png1, images.png2, images.jpeg];
  await pick(page, study);
  const views = await page.$$eval('[data-testid=view]', (els) => els.map((e) => Number((e as HTMLElement).dataset.value)));
  assert.equal(views.length, 3);
  study.forEach((f, i) => near(views[i]!, cli.get(f)!, `view ${i}`));
  const [card, ...more] = await studyCards(page);
  assert.equal(more.length, 0, 'PNG/JPEG files form one study');
  assert.equal(card!.title, 'Unidentified study');
  const mean = study.reduce((a, f) => a + cli.get(f)!, 0) / 3;
  near(card!.probability!, mean, 'study');
  assert.equal(card!.decision, mean > 0.5 ? 'Abnormal' : 'Normal');
  // Two decimals, three when two would put it on the wrong side of (or on) the threshold 0.50.
  const shown = [2, 3, 4].map((d) => mean.toFixed(d)).find((x) => x !== '0.50' && Number(x) > 0.5 === mean > 0.5)!;
  assert.ok(card!.line.includes(`P(abnormal) ${shown} (mean of 3 views) — ${mean > 0.5 ? 'above' : 'at or below'} the threshold 0.50, chosen for 90% sensitivity on validation`), card!.line);
  assert.doesNotMatch(await page.textContent('[data-testid=results]') ?? '', /\d\.\d{4}|ms\b/, 'no 4-decimal numbers or timings in the result');
  assert.doesNotMatch(await page.textContent('[data-testid=view-line]') ?? '', /\d\.\d{4}|ms\b/);
  assert.match(await page.textContent('[data-testid=diagnostics]') ?? '', /ms per view/, 'timings live in the diagnostics line');
  assert.deepEqual(blocked, []);
  await page.context().close();
});

test('dropped files are read like picked ones; a bad file is named and the others still count', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  const text = join(tmp.dir, 'notes.png');
  writeFileSync(text, 'this is not an image');
  const files = [images.png2, text].map((f) => ({ name: f.split('/').pop()!, b64: readFileSync(f).toString('base64') }));
  await page.evaluate(() => (document.body.dataset.state = 'dropping'));
  const dt = await page.evaluateHandle((fs) => {
    const d = new DataTransfer();
    for (const f of fs) d.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
    return d;
  }, files);
  await page.dispatchEvent('[data-testid=dropzone]', 'drop', { dataTransfer: dt });
  await page.waitForSelector('body[data-state=done]', { timeout: 30_000 });
  near((await studyCards(page))[0]!.probability!, cli.get(images.png2)!, 'dropped view2.png');
  assert.equal(await page.$$eval('[data-testid=view]', (els) => els.length), 1);
  assert.match((await page.textContent('[data-testid=error]')) ?? '', /notes\.png: not an image/);
  assert.match((await page.textContent('[data-testid=failed]')) ?? '', /notes\.png: not an image/);
  await page.context().close();
});

test('rejected views (a generated grey checkerboard and a colour picture among radiographs): no probability, no heatmap, named by the study line; all rejected: no decision', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  // The rejected views first: neither may become the view on display.
  await pick(page, [checker, images.photo, images.png1, images.png2]);
  const [s] = await studyCards(page);
  const counted = (cli.get(images.png1)! + cli.get(images.png2)!) / 2;
  near(s!.probability!, counted, 'the study counts the two radiographs only');
  assert.match(s!.line, /mean of 2 views/);
  assert.match(s!.leftOut ?? '', /^Left out: checkerboard\.png \(out of distribution\), photo\.jpg \(out of distribution\)\./);
  // Whether counting them would change the decision, said against the CLI's numbers.
  const all = (cli.get(checker)! + cli.get(images.photo)! + cli.get(images.png1)! + cli.get(images.png2)!) / 4;
  assert.equal(await page.getAttribute('[data-testid=left-out]', 'data-differs'), String(all > 0.5 !== counted > 0.5));
  // The view on display by default is one that counts, with its heatmap.
  assert.equal(await page.getAttribute('[data-testid=view-line]', 'data-counts'), 'true');
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'true');
  assert.equal(hasColour((await canvasPixels(page, 'heatmap')).px), true);
  // The grey checkerboard: the model has a map for it, but a rejected view shows neither it nor a probability.
  const thumb = page.locator('[data-testid=view][data-index="0"]');
  assert.equal(await thumb.getAttribute('data-counts'), 'false');
  assert.match((await thumb.textContent()) ?? '', /left out/);
  await thumb.click();
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'false');
  assert.ok((await canvasPixels(page, 'heatmap')).px.every((v, i) => i % 4 !== 3 || v === 0), 'the heatmap layer is empty');
  assert.match((await page.textContent('[data-testid=heatmap-note]')) ?? '', /left out by the out-of-distribution gate/);
  const line = (await page.textContent('[data-testid=view-line]')) ?? '';
  assert.match(line, /^Left out: out of distribution/);
  assert.doesNotMatch(line, /P\(abnormal\)|0\.\d\d/);
  assert.equal(await page.getAttribute('[data-testid=view-line]', 'data-value'), null);
  // Research use: the numbers (and here the map) behind an explicit button, labelled as not a finding.
  await page.click('[data-testid=show-anyway]');
  assert.match((await page.textContent('[data-testid=view-line]')) ?? '', /^Research use — not a finding/);
  near(Number(await page.getAttribute('[data-testid=view-line]', 'data-value')), cli.get(checker)!, 'research-use number');
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'true');
  // The colour picture: no heatmap even for research use.
  await page.click('[data-testid=view][data-index="1"]');
  assert.match((await page.textContent('[data-testid=view-warnings]')) ?? '', /colour picture/);
  await page.click('[data-testid=show-anyway]');
  near(Number(await page.getAttribute('[data-testid=view-line]', 'data-value')), cli.get(images.photo)!, 'research-use number');
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'false', 'a colour picture never gets a heatmap');
  assert.match((await page.textContent('[data-testid=heatmap-note]')) ?? '', /No heatmap for a colour picture/);
  // Every view rejected: no decision, said plainly.
  await pick(page, [images.photo]);
  const [only] = await studyCards(page);
  assert.equal(only!.decision, 'No decision');
  assert.equal(only!.probability, null);
  assert.match(only!.line, /every view \(1\) was left out .* The model gives no result for this study\./);
  await page.context().close();
});

test('DICOM views are grouped by patient and study: two patients give two cards with their identifiers; one UID under two Patient IDs is not merged', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  await pick(page, [dicoms.alice1, dicoms.bob1, dicoms.alice2]);
  const cards = await studyCards(page);
  assert.equal(cards.length, 2, 'two patients, two study cards');
  const [a, b] = cards;
  assert.equal(a!.title, 'Patient DOE ALICE · ID PAT-0001');
  assert.match(a!.facts, /Study date2024-01-31/);
  assert.match(a!.facts, /Body partHAND/);
  assert.match(a!.facts, /View positionPA, LL/);
  assert.match(a!.facts, /Study UID1\.2\.826\.0\.1\.3680043\.9\.7\.100/);
  near(a!.probability!, (cli.get(dicoms.alice1)! + cli.get(dicoms.alice2)!) / 2, 'Alice: the mean of her two views');
  assert.equal(b!.title, 'Patient ROE BOB · ID PAT-0002');
  assert.match(b!.facts, /Study date2024-02-05/);
  assert.match(b!.facts, /Body partELBOW/);
  assert.match(b!.facts, /View positionAP/);
  near(b!.probability!, cli.get(dicoms.bob1)!, 'Bob');
  // Carol's file carries Alice's Study Instance UID: two cards, each saying so.
  await pick(page, [dicoms.alice1, dicoms.mislabelled]);
  const two = await studyCards(page);
  assert.equal(two.length, 2);
  assert.deepEqual(two.map((c) => c.title), ['Patient DOE ALICE · ID PAT-0001', 'Patient POE CAROL · ID PAT-0003']);
  near(two[0]!.probability!, cli.get(dicoms.alice1)!, 'Alice alone');
  for (const c of two) assert.match(c.text, /also appears with Patient ID PAT-000[13]: kept apart/);
  await page.context().close();
});

test('DICOM in the page: MONOCHROME1 gives the PNG probability; HTJ2K (no decoder) is named with the reason', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  await pick(page, [images.dicomMono1]);
  near((await studyCards(page))[0]!.probability!, cli.get(images.png1)!, 'view1-mono1.dcm');
  await pick(page, [images.dicomLossless]);
  assert.match((await page.textContent('[data-testid=error]')) ?? '', /lossless\.dcm: transfer syntax 1\.2\.840\.10008\.1\.2\.4\.201 \(High-Throughput JPEG 2000.*not supported/);
  await page.context().close();
});

test('compressed DICOM in the page (dcmtk and gdcm encode the same view): JPEG lossless, JPEG-LS, RLE, JPEG 2000 give the PNG probability; JPEG baseline the CLI one', { skip: skip ?? toolsSkip(['dcmcjpeg', 'dcmcjpls', 'dcmcrle', 'gdcmconv']) }, async () => {
  const out = (name: string): string => join(tmp.dir, name);
  tool('dcmcjpeg', ['+e1', images.dicom, out('c-ljpeg.dcm')]);
  tool('dcmcjpls', [images.dicom, out('c-jls.dcm')]);
  tool('dcmcrle', [images.dicom, out('c-rle.dcm')]);
  tool('gdcmconv', ['--j2k', images.dicom, out('c-j2k.dcm')]);
  tool('dcmcjpeg', ['+eb', images.dicom, out('c-jpeg.dcm')]);
  const files = ['c-ljpeg.dcm', 'c-jls.dcm', 'c-rle.dcm', 'c-j2k.dcm', 'c-jpeg.dcm'].map(out);
  const ref = cliProbabilities(modelPath, files);
  const { page } = await readyPage();
  for (const f of files) {
    await pick(page, [f]);
    // The view's probability (the lossy one is noisy enough for this small model's gate to leave it out, as the CLI does).
    const p = Number(await page.getAttribute('[data-testid=view]', 'data-value'));
    near(p, ref.get(f)!, f);
    // Lossless: the pixels of view1.png, so its probability; JPEG baseline is lossy (the CLI's, above, is the reference).
    if (!f.endsWith('c-jpeg.dcm')) near(p, cli.get(images.png1)!, `${f} is lossless: the PNG's probability`);
  }
  await page.context().close();
});

test("the heatmap layer is onnxruntime-node's CAM (viridis from 40% of its peak up, letterbox undone); H and the button toggle it; the slider sets its opacity", { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  await pick(page, [images.png1]);
  assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'true');
  assert.equal(await page.isVisible('[data-testid=legend]'), true);
  assert.match((await page.textContent('[data-testid=heatmap-note]')) ?? '', /not a finding/);
  const heat = await canvasPixels(page, 'heatmap');
  const clf = await OnnxClassifier.create(modelPath, { threads: 1 });
  const r = await clf.run(await preprocessImage(images.png1, clf.info.preprocessing), 1);
  const map = camOnImage(r.cam!, r.camSize![0], r.camSize![1], heat.w, heat.h, clf.info.preprocessing);
  await clf.release();
  let off = 0;
  let tinted = 0;
  for (let i = 0; i < map.length; i++) {
    const o = 4 * i;
    if (map[i]! >= 0.4 + 0.02) {
      const want = colourAt(map[i]!);
      if (heat.px[o + 3] !== 255 || Math.max(...[0, 1, 2].map((k) => Math.abs(heat.px[o + k]! - want[k]!))) > 2) off++;
      tinted++;
    } else if (map[i]! < 0.4 - 0.02 && heat.px[o + 3] !== 0) off++;
  }
  assert.ok(tinted > map.length / 10, 'a visible part of the picture is tinted');
  assert.ok(off <= map.length / 100, `${off} of ${map.length} pixels differ from onnxruntime-node's CAM layer`);
  // Default opacity keeps the picture readable; the slider changes only the layer's opacity.
  assert.equal(await page.$eval('[data-testid=heatmap]', (e) => (e as HTMLElement).style.opacity), '0.35');
  await page.$eval('[data-testid=opacity]', (e) => ((e as HTMLInputElement).value = '70'));
  await page.dispatchEvent('[data-testid=opacity]', 'input');
  assert.equal(await page.$eval('[data-testid=heatmap]', (e) => (e as HTMLElement).style.opacity), '0.7');
  // H hides and shows it; so does the button.
  await page.focus('[data-testid=stage]');
  await page.keyboard.press('h');
  assert.equal(await page.isVisible('[data-testid=heatmap]'), false);
  assert.equal(await page.getAttribute('[data-testid=heatmap-toggle]', 'aria-pressed'), 'false');
  await page.click('[data-testid=heatmap-toggle]');
  assert.equal(await page.isVisible('[data-testid=heatmap]'), true);
  await page.context().close();
});

test('a heatmap near zero everywhere draws nothing, and says why', { skip: skip ?? false }, async () => {
  const flat = await writeFlatHeatmapModel(tmp.dir);
  const p2 = await openPredictor(flat, { threads: 1 });
  const s2 = await buildServer({ predictor: p2, modelPath: flat, log: () => {} });
  const url = await s2.listen({ host: '127.0.0.1', port: 0 });
  try {
    const { page } = await offlinePage(browser, url);
    await page.goto(url + '/');
    await page.waitForSelector('body[data-state=ready]', { timeout: 90_000 });
    await pick(page, [images.png1]);
    assert.equal(await page.getAttribute('[data-testid=heatmap]', 'data-drawn'), 'false');
    assert.match((await page.textContent('[data-testid=heatmap-note]')) ?? '', /near zero everywhere/);
    assert.equal(await page.isVisible('[data-testid=legend]'), false);
    near((await studyCards(page))[0]!.probability!, cliProbabilities(flat, [images.png1]).get(images.png1)!, 'flat model');
    await page.context().close();
  } finally {
    await s2.close();
    await p2.release();
  }
});

test('a file picked while the model is still loading is queued, announced, and read once it is ready', { skip: skip ?? false }, async () => {
  const { page } = await offlinePage(browser, origin);
  // Hold the model description back until the file is picked.
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  await page.route('**/model.json', async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-state=loading]');
  await page.setInputFiles('input[type=file]', [images.png1]);
  await page.waitForSelector('[data-testid=queued]:not([hidden])');
  assert.match((await page.textContent('[data-testid=queued]')) ?? '', /1 file waiting for the model: view1\.png/);
  assert.match((await page.textContent('[data-testid=status]')) ?? '', /1 file waiting/);
  release();
  await page.waitForSelector('body[data-state=done]', { timeout: 90_000 });
  near((await studyCards(page))[0]!.probability!, cli.get(images.png1)!, 'the queued file');
  assert.equal(await page.isVisible('[data-testid=queued]'), false);
  await page.context().close();
});

test('keyboard only: choose files, move through the views, change window, zoom and heatmap, reveal a rejected view', { skip: skip ?? false }, async () => {
  const { page } = await readyPage();
  // O opens the file chooser (the chooser itself is the system's dialog).
  const chooser = page.waitForEvent('filechooser');
  await page.evaluate(() => 0); // a round trip, so Playwright's file-chooser interception is on before the key
  await page.keyboard.press('o');
  await (await chooser).setFiles([images.png1, images.png2, images.photo]);
  await page.waitForSelector('body[data-state=done]', { timeout: 60_000 });
  // Tab reaches every control: the thumbnails and every toolbar button.
  const reached = new Set<string>();
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    reached.add(
      await page.evaluate(() => {
        const a = document.activeElement as HTMLElement;
        return a.dataset.index !== undefined ? `view${a.dataset.index}` : a.dataset.preset !== undefined ? `preset${a.dataset.preset}` : a.id || a.tagName;
      }),
    );
  }
  for (const id of ['view0', 'view1', 'view2', 'preset1', 'preset4', 'invert', 'zoom-in', 'zoom-out', 'reset', 'drag-mode', 'prev', 'next', 'heat-toggle', 'opacity', 'stage']) {
    assert.ok(reached.has(id), `Tab reaches ${id} (reached: ${[...reached].join(', ')})`);
  }
  // Enter on a thumbnail shows that view.
  await page.focus('[data-testid=view][data-index="1"]');
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute('[data-testid=view][data-index="1"]', 'aria-pressed'), 'true');
  assert.match((await page.getAttribute('[data-testid=image]', 'aria-label')) ?? '', /^Radiograph view2\.png/);
  // N moves to the next view (the rejected photograph), and the text alternative follows.
  await page.focus('[data-testid=stage]');
  await page.keyboard.press('n');
  assert.match((await page.getAttribute('[data-testid=image]', 'aria-label')) ?? '', /^Radiograph photo\.jpg.*no heatmap drawn/);
  // Window presets, invert, zoom and pan by key change what the canvas shows and says.
  const before = await canvasPixels(page, 'image');
  await page.keyboard.press('2');
  await page.keyboard.press('i');
  await page.keyboard.press('+');
  await page.keyboard.press('ArrowLeft');
  const label = (await page.getAttribute('[data-testid=image]', 'aria-label')) ?? '';
  assert.match(label, /zoom 1\.3×, window centre 0\.65 width 0\.50, inverted/);
  const afterKeys = await canvasPixels(page, 'image');
  assert.notDeepEqual(afterKeys.px, before.px);
  await page.keyboard.press('0');
  assert.match((await page.getAttribute('[data-testid=image]', 'aria-label')) ?? '', /zoom 1\.0×, window centre 0\.50 width 1\.00/);
  // The rejected view's numbers, by keyboard: Tab to the button, Enter.
  await page.focus('[data-testid=show-anyway]');
  await page.keyboard.press('Enter');
  assert.match((await page.textContent('[data-testid=view-line]')) ?? '', /^Research use — not a finding/);
  await page.context().close();
});

test('phone layout (375 × 667): no horizontal scroll, the study and the viewer fit', { skip: skip ?? false }, async () => {
  const { page } = await readyPage({ width: 375, height: 667 });
  await pick(page, [images.png1, images.png2, images.photo]);
  const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth, canvas: document.getElementById('image')!.getBoundingClientRect().right }));
  assert.ok(widths.doc <= 375 && widths.body <= 375, `page ${widths.doc} px wide`);
  assert.ok(widths.canvas <= 375, `the picture ends at ${widths.canvas} px`);
  const shot = await page.screenshot({ fullPage: true });
  assert.equal(shot.readUInt32BE(16), 375, 'the full-page screenshot is 375 px wide');
  await page.context().close();
});

test('behind a token the page asks for it (login page), and opens with it from its #token= address', { skip: skip ?? false }, async () => {
  const guarded = await buildServer({ predictor, modelPath, token: 's3cret', log: () => {} });
  const url = await guarded.listen({ host: '127.0.0.1', port: 0 });
  try {
    const { page } = await offlinePage(browser, url);
    await page.goto(url + '/');
    await page.waitForSelector('body[data-state=login]', { timeout: 60_000 });
    await page.goto(url + '/#token=wrong');
    await page.reload();
    await page.waitForSelector('[data-testid=login-error]:not([hidden])', { timeout: 60_000 });
    assert.match((await page.textContent('[data-testid=login-error]')) ?? '', /Wrong token/);
    await page.goto(url + '/#token=s3cret');
    await page.reload();
    await page.waitForSelector('body[data-state=ready]', { timeout: 60_000 });
    assert.ok(!page.url().includes('s3cret'), `the token is gone from the address: ${page.url()}`);
    await pick(page, [images.png1]);
    near((await studyCards(page))[0]!.probability!, cli.get(images.png1)!, 'with token');
    await page.context().close();
  } finally {
    await guarded.close();
  }
});
