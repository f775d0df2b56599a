/**
 * "Adapt to this site" in the page, in real Chromium against `nextray serve` with a small model exported with the
 * `features` output: a folder of labelled synthetic studies from another site (`--site portable`, MURA layout) is
 * picked through the panel; the held-out before/after table is the one `nextray adapt --json` computes on the same
 * folder (same browser-safe fitting; the page's features come from onnxruntime-web and the browser's PNG decoder, the
 * CLI's from onnxruntime-node and sharp, so continuous figures agree to 1e-4, not bit for bit); not one request is
 * made while it adapts; predictions then use the adapted head and equal `nextray predict` on the CLI's adapted .onnx;
 * the panel says a head is active; a head file made for another model is refused with the reason; reset gives back
 * the original predictions; an exported head imports again and survives a reload (IndexedDB).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { buildServer, defaultAppDir } from '../../src/serve/server.js';
import { openPredictor, type Predictor } from '../../src/serve/predictor.js';
import { initEngine } from '../../src/engine/index.js';
import { buildModel } from '../../src/train/archs.js';
import { exportOnnxFile } from '../../src/models/onnx/files.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { generateSyntheticMura } from '../../src/data/synth/generate.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { chromiumMissing, launch, offlinePage } from './browser.js';
import { cliProbabilities } from './fixture.js';

const skip = chromiumMissing() ?? (existsSync(join(defaultAppDir(), 'index.html')) ? null : 'dist/app not built (npm run build)');
const tmp = tempDir('nextray-app-adapt-');
const data = join(tmp.dir, 'portable-site');
const modelPath = join(tmp.dir, 'model.onnx');
const adaptedPath = join(tmp.dir, 'adapted.onnx');
const MIN_STUDIES = 3;
let predictor: Predictor;
let server: FastifyInstance;
let origin: string;
let browser: Browser;
/** `nextray adapt --json` on the same folder. */
let cliRecord: {
  decision: string;
  base_sha256: string;
  data: Record<string, unknown>;
  method: { lambda: number | string; temperature: number; threshold: number };
  held_out: { studies: number; before: Record<string, number | null>; after: Record<string, number | null>; intervals_95: { difference: Record<string, [number, number] | null> } };
};
/** A few of the site's images, read before and after adapting. */
let probe: string[] = [];
let baseProbs = new Map<string, number>();
let adaptedProbs = new Map<string, number>();

function imagesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.png'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

before(async () => {
  if (skip) return;
  await initEngine('cpu');
  await generateSyntheticMura({ outDir: data, studies: 60, seed: 12, size: 48, validFraction: 0.3, workers: 0, site: 'portable' });
  const m = buildModel('resnet-slim', { dropout: 0, seed: 9, init: 'random' });
  exportOnnxFile(m, modelPath, { inputSize: 48, preprocessing: makePreprocessing({ size: 48 }), cam: true, temperature: 1.3, decisionThreshold: 0.45, features: true });
  m.dispose();
  const r = runCli(['adapt', '--model', modelPath, '--data', data, '--out', adaptedPath, '--min-studies', String(MIN_STUDIES), '--workers', '0', '--threads', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  cliRecord = JSON.parse(r.stdout);
  assert.equal(cliRecord.decision, 'adapted', 'the fixture must give an adopted head (a random-weight model refits well)');
  const all = imagesUnder(data);
  probe = [all[0]!, all[Math.floor(all.length / 2)]!, all[all.length - 1]!];
  baseProbs = cliProbabilities(modelPath, probe);
  adaptedProbs = cliProbabilities(adaptedPath, probe);
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

async function viewProbabilities(page: Page): Promise<number[]> {
  return page.$$eval('[data-testid=view]', (els) => els.map((e) => Number((e as HTMLElement).dataset.value)));
}

async function repredicted(page: Page, act: () => Promise<unknown>): Promise<void> {
  await page.evaluate(() => (document.body.dataset.state = 'waiting'));
  await act();
  await page.waitForSelector('body[data-state=done]', { timeout: 60_000 });
}

/** The largest page-vs-CLI difference seen (reported as a diagnostic). */
let maxDiff = 0;
const near = (a: number | null | undefined, b: number | null | undefined, what: string, tol = 1e-6): void => {
  if (a === null || b === null || a === undefined || b === undefined) return assert.equal(a ?? null, b ?? null, what);
  maxDiff = Math.max(maxDiff, Math.abs(a - b));
  assert.ok(Math.abs(a - b) <= tol, `${what}: page ${a} vs nextray adapt ${b}`);
};

test('adapting in the page: the CLI\'s before/after, no request, the head in use, refused for another model, reset, export/import, kept', { skip: skip ?? false }, async (t) => {
  const { page, blocked, consoleErrors } = await offlinePage(browser, origin);
  const requests: string[] = [];
  page.context().on('request', (r) => requests.push(r.url()));
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-state=ready]', { timeout: 90_000 });
  // Let the page finish storing itself for offline use, so later requests can only come from adaptation.
  await page.waitForFunction(() => !(document.getElementById('offline')?.textContent ?? '').startsWith('Checking'), undefined, { timeout: 60_000 });
  assert.equal(await page.getAttribute('[data-testid=adapt-active]', 'data-active'), 'false');

  // The deployed model's predictions, as the CLI gives them.
  await repredicted(page, () => page.setInputFiles('#file', probe));
  const before = await viewProbabilities(page);
  probe.forEach((f, i) => near(before[i], baseProbs.get(f), `deployed P(${f})`));

  // Adapt: pick the folder. Not one request while it runs (images, features and labels stay in the page).
  await page.click('[data-testid=adapt] summary');
  await page.fill('#adapt-min', String(MIN_STUDIES));
  const requestsBefore = requests.length;
  await repredicted(page, async () => {
    await page.setInputFiles('#adapt-folder', data);
    await page.waitForSelector('[data-testid=adapt][data-state=done]', { timeout: 300_000 });
  });
  assert.deepEqual(requests.slice(requestsBefore), [], 'no request at all during adaptation');

  // The table is nextray adapt's on the same data.
  const rec = (await page.evaluate(() => (window as unknown as { nextray: { adaptation: { record: typeof cliRecord } } }).nextray.adaptation.record)) as typeof cliRecord;
  assert.equal(rec.base_sha256, createHash('sha256').update(readFileSync(modelPath)).digest('hex'));
  assert.equal(rec.base_sha256, cliRecord.base_sha256);
  assert.deepEqual(rec.data, cliRecord.data, 'the same studies, patients and split');
  assert.equal(rec.decision, cliRecord.decision);
  assert.equal(rec.method.lambda, cliRecord.method.lambda, 'the same penalty chosen by cross-fitting');
  // The same site preprocessing candidates, scored alike, and the same one kept.
  const prepOf = (r: typeof cliRecord) => (r.method as unknown as { site_preprocessing: { trials: { site_filter: unknown; grey_map: boolean; cv_log_loss: number }[]; site_filter: unknown } }).site_preprocessing;
  assert.deepEqual(prepOf(rec).site_filter, prepOf(cliRecord).site_filter, 'the same site filter kept');
  assert.equal(prepOf(rec).trials.length, prepOf(cliRecord).trials.length);
  prepOf(rec).trials.forEach((t, i) => near(t.cv_log_loss, prepOf(cliRecord).trials[i]!.cv_log_loss, `cross-fitted log loss of ${JSON.stringify(t.site_filter)}`));
  near(rec.method.temperature, cliRecord.method.temperature, 'temperature');
  near(rec.method.threshold, cliRecord.method.threshold, 'threshold');
  for (const side of ['before', 'after'] as const) {
    for (const k of ['auc', 'sensitivity', 'specificity', 'kappa', 'ece', 'log_loss', 'threshold']) near(rec.held_out[side][k], cliRecord.held_out[side][k], `${side} ${k}`);
  }
  const table = await page.$$eval('[data-testid=adapt-table] tr[data-metric]', (rows) =>
    rows.map((r) => ({ metric: (r as HTMLElement).dataset.metric!, before: Number((r.querySelector('[data-testid=before]') as HTMLElement).dataset.value), after: Number((r.querySelector('[data-testid=after]') as HTMLElement).dataset.value) })),
  );
  assert.equal(table.length, 7);
  for (const row of table) {
    near(row.before, cliRecord.held_out.before[row.metric], `table before ${row.metric}`);
    near(row.after, cliRecord.held_out.after[row.metric], `table after ${row.metric}`);
  }
  assert.match((await page.textContent('[data-testid=adapt-caveat]')) ?? '', /held-out studies .* not a clinical validation/);

  // Predictions now use the adapted head: nextray predict on the CLI's adapted model gives the same.
  assert.equal(await page.getAttribute('[data-testid=adapt-active]', 'data-active'), 'true');
  assert.match((await page.textContent('[data-testid=adapt-active]')) ?? '', /Adapted head in use: fitted on 60 studies from "portable-site"/);
  assert.match((await page.textContent('[data-testid=model-card]')) ?? '', /Adapted head/);
  const adapted = await viewProbabilities(page);
  probe.forEach((f, i) => near(adapted[i], adaptedProbs.get(f), `adapted P(${f})`));
  assert.ok(adapted.some((p, i) => Math.abs(p - before[i]!) > 1e-3), 'the adapted head changes the predictions');

  // Export the head file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#adapt-export')]);
  const exported = readFileSync((await download.path())!, 'utf8');
  const head = JSON.parse(exported);
  assert.equal(head.base_model.sha256, rec.base_sha256);
  near(head.head.threshold, cliRecord.method.threshold, 'exported threshold');

  // A head for another model file is refused, with the reason; the head in use stays.
  const foreign = JSON.stringify({ ...head, base_model: { ...head.base_model, sha256: 'ab'.repeat(32) } });
  await page.setInputFiles('#adapt-import', { name: 'other-head.json', mimeType: 'application/json', buffer: Buffer.from(foreign) });
  await page.waitForSelector('[data-testid=adapt][data-state=refused]');
  const refusal = (await page.textContent('[data-testid=adapt-error]')) ?? '';
  assert.match(refusal, /other-head\.json was fitted for the model with SHA-256 abababababab\.\.\., but the running model is/);
  assert.equal(await page.isVisible('[data-testid=adapt-error]'), true);
  assert.equal(await page.getAttribute('[data-testid=adapt-active]', 'data-active'), 'true');

  // Reset: the original predictions again.
  await repredicted(page, () => page.click('#adapt-reset'));
  assert.equal(await page.getAttribute('[data-testid=adapt-active]', 'data-active'), 'false');
  assert.deepEqual(await viewProbabilities(page), before, 'reset gives back the deployed predictions');

  // The exported head imports again, and is kept across a reload.
  await repredicted(page, () => page.setInputFiles('#adapt-import', { name: 'head.json', mimeType: 'application/json', buffer: Buffer.from(exported) }));
  assert.equal(await page.getAttribute('[data-testid=adapt-active]', 'data-active'), 'true');
  (await viewProbabilities(page)).forEach((p, i) => near(p, adapted[i], `re-imported P(${probe[i]})`, 1e-9));
  await page.reload();
  await page.waitForSelector('body[data-state=ready]', { timeout: 90_000 });
  assert.equal(await page.getAttribute('[data-testid=adapt-active]', 'data-active'), 'true', 'the head is kept in IndexedDB');
  await repredicted(page, () => page.setInputFiles('#file', probe));
  (await viewProbabilities(page)).forEach((p, i) => near(p, adapted[i], `after reload P(${probe[i]})`, 1e-9));

  assert.deepEqual(blocked, [], 'the page asked for nothing outside its server');
  assert.deepEqual(consoleErrors, []);
  t.diagnostic(`largest page vs nextray adapt/predict difference: ${maxDiff.toExponential(2)}`);
  await page.context().close();
});
