/**
 * `nextray pacs watch` end to end against a real Orthanc (Debian's, with its DICOMweb plugin) that the test starts on
 * 127.0.0.1 with random ports, a temporary config and storage, and authentication on. Studies arrive as from a
 * modality: dcmtk's storescu over C-STORE (uncompressed, JPEG lossless by dcmcjpeg, JPEG-LS by gdcmconv).
 *
 * - Each stable study gets exactly one SR (valid for dciodvfy) and, with --heatmaps, one Secondary Capture per view
 *   (valid for dciodvfy); a second run finds them up to date and stores nothing.
 * - Restart safety: the worker is killed with SIGKILL at chosen points (after fetching, after predicting, just
 *   before storing, just after storing), then started again: no study ends without its SR, none has two, and no
 *   study is begun again except the one in flight at each kill. A worker that forgets its position, or moves it
 *   before storing, fails this.
 * - Bad input (a truncated instance, an MPEG2 instance, an instance without pixel module, a 300-frame CT series) is logged
 *   with its SOP Instance UID and left out; the worker goes on to the next study.
 * - DICOMweb: QIDO-RS + WADO-RS pull and STOW-RS push, against the same Orthanc's plugin.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { initEngine } from '../../src/engine/index.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { createModel } from '../../src/models/index.js';
import { exportOnnx } from '../../src/models/onnx/export.js';
import { saveOnnx } from '../../src/models/onnx/files.js';
import { parseDicom } from '../../src/data/dicom/reader.js';
import { writePart10, tag } from '../../src/pacs/dicom-writer.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { encapsulate, writeDicom, TS } from '../helpers/dicom-writer.js';
import { Rng } from '../../src/util/rng.js';
import { orthancReports, pacsSkip, runNextray, startOrthanc, storescu, waitStable, writeStudy, type OrthancServer, type Run } from '../helpers/pacs.js';

const skip = pacsSkip(['orthanc', 'dicomweb', 'storescu', 'dciodvfy', 'dcmcjpeg', 'gdcmconv']);
const tmp = tempDir('nextray-pacs-watch-');
const d = (...p: string[]) => join(tmp.dir, ...p);
let orthanc: OrthancServer;
let env: NodeJS.ProcessEnv;

before(async () => {
  if (skip) return;
  await initEngine('cpu');
  const model = createModel('resnet-slim', { head: 'binary', seed: 5 });
  saveOnnx(d('m.onnx'), exportOnnx(model, { inputSize: 32, preprocessing: makePreprocessing({ size: 32 }), decisionThreshold: 0.5, cam: true }));
  model.dispose();
  orthanc = await startOrthanc(tmp.dir);
  env = { NEXTRAY_PACS_USER: orthanc.user, NEXTRAY_PACS_PASSWORD: orthanc.password, NEXTRAY_PACS_BACKOFF_MS: '200' };
});
after(async () => {
  await orthanc?.stop();
  tmp.cleanup();
});

const watch = (extra: string[], opts: { killWhen?: RegExp; env?: NodeJS.ProcessEnv } = {}): Promise<Run> =>
  runNextray(REPO_ROOT, ['pacs', 'watch', '--orthanc', orthanc.url, '--model', d('m.onnx'), '--threads', '1', ...extra], { env: { ...env, ...opts.env }, ...(opts.killWhen ? { killWhen: opts.killWhen } : {}) });

async function fileOf(instanceId: string): Promise<Uint8Array> {
  const r = await fetch(`${orthanc.url}instances/${instanceId}/file`, { headers: { authorization: `Basic ${Buffer.from(`${orthanc.user}:${orthanc.password}`).toString('base64')}` } });
  return new Uint8Array(await r.arrayBuffer());
}

function dciodvfyErrors(bytes: Uint8Array, name: string): string[] {
  const f = d(name);
  writeFileSync(f, bytes);
  const r = spawnSync('dciodvfy', [f], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n').filter((l) => /^Error/.test(l));
}

test('watch --once: one SR per stable study and one heatmap image per view, valid for dciodvfy; a second run stores nothing', { skip, timeout: 240_000 }, async () => {
  const plain = writeStudy(d('in1'), 1);
  const lossless = writeStudy(d('in1'), 2);
  const jls = writeStudy(d('in1'), 3);
  // Compressed as a modality might send them: JPEG lossless (dcmtk), JPEG-LS (gdcm).
  for (const f of lossless.files) assert.equal(spawnSync('dcmcjpeg', ['+e1', f, f]).status, 0);
  for (const f of jls.files) assert.equal(spawnSync('gdcmconv', ['--jpegls', f, f]).status, 0);
  storescu(orthanc, [...plain.files, ...lossless.files, ...jls.files]);
  await waitStable(orthanc, [plain.studyUid, lossless.studyUid, jls.studyUid]);

  const r = await watch(['--once', '--state', d('state1.json'), '--heatmaps']);
  assert.equal(r.code, 0, r.stderr);
  for (const s of [plain, lossless, jls]) {
    assert.match(r.stderr, new RegExp(`study ${s.studyUid.replace(/\./g, '\\.')}: stored SR 2\\.25\\.\\d+`));
    for (const sop of s.sopUids) assert.match(r.stderr, new RegExp(sop.replace(/\./g, '\\.') + ' p=0\\.\\d{3}'), 'each view is named by its SOP Instance UID');
    const srs = await orthancReports(orthanc, s.studyUid);
    assert.equal(srs.length, 1, `study ${s.studyUid}: one SR`);
    const sr = await fileOf(srs[0]!);
    assert.deepEqual(dciodvfyErrors(sr, 'sr.dcm'), []);
    const p = parseDicom(sr);
    assert.equal(p.dataSet.string('x0020000d'), s.studyUid, 'same study');
    assert.equal(p.dataSet.string('x00100010'), `Synth^Patient${s.studyUid.split('.').pop()}`, 'patient copied');
  }
  // The heatmaps: a series of Secondary Captures beside the SR's, one per view, RGB at the source size.
  const studies = await orthanc.get<string[]>('studies');
  let scs = 0;
  for (const id of studies) {
    const series = await orthanc.get<Array<{ MainDicomTags: { Modality?: string; SeriesDescription?: string }; Instances: string[] }>>(`studies/${id}/series`);
    for (const s of series.filter((x) => x.MainDicomTags.Modality === 'OT')) {
      assert.match(s.MainDicomTags.SeriesDescription ?? '', /^neXt-Ray heatmaps/);
      assert.equal(s.Instances.length, 2);
      scs += s.Instances.length;
      const sc = await fileOf(s.Instances[0]!);
      assert.deepEqual(dciodvfyErrors(sc, 'sc.dcm'), []);
      const p = parseDicom(sc).dataSet;
      assert.deepEqual([p.string('x00080016'), p.string('x00280004'), p.uint16('x00280010'), p.uint16('x00280011')], ['1.2.840.10008.5.1.4.1.1.7', 'RGB', 48, 48]);
      // The map is drawn in colour over the grey radiograph: some pixels are not grey (a blank or grey stub fails).
      const px = p.elements.x7fe00010!;
      const rgb = new Uint8Array(p.byteArray.buffer, p.byteArray.byteOffset + px.dataOffset, px.length);
      let coloured = 0;
      for (let i = 0; i + 2 < rgb.length; i += 3) if (rgb[i] !== rgb[i + 2]) coloured++;
      assert.ok(coloured > rgb.length / 3 / 4, `${coloured} coloured pixels of ${rgb.length / 3}`);
      assert.equal(p.elements.x00082112!.items![0]!.dataSet!.string('x00081155')?.startsWith('1.2.826.0.1.3680043.9.7.7.'), true, 'the source image is referenced');
    }
  }
  assert.equal(scs, 6);

  // Storing the results made Orthanc announce the studies again: the next run finds them up to date.
  await waitStable(orthanc, [plain.studyUid, lossless.studyUid, jls.studyUid]);
  await new Promise((res) => setTimeout(res, 2500));
  const again = await watch(['--once', '--state', d('state1.json'), '--heatmaps']);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /storing SR/);
  assert.match(again.stderr, /up to date/);
  for (const s of [plain, lossless, jls]) assert.equal((await orthancReports(orthanc, s.studyUid)).length, 1);
});

test('credentials stay out of argv: a URL with a password is refused; a wrong password is an error naming the server', { skip, timeout: 120_000 }, async () => {
  const withPw = orthanc.url.replace('http://', `http://${orthanc.user}:${orthanc.password}@`);
  const r = await runNextray(REPO_ROOT, ['pacs', 'watch', '--orthanc', withPw, '--model', d('m.onnx'), '--once', '--state', d('never.json')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /the URL holds credentials, which any user can read in the process list/);
  const wrong = await watch(['--once', '--state', d('wrong.json')], { env: { NEXTRAY_PACS_PASSWORD: 'not-it' } });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /HTTP 401, the credentials were refused/);
  writeFileSync(d('cred.json'), JSON.stringify({ user: orthanc.user, password: orthanc.password }), { mode: 0o644 });
  const loose = await runNextray(REPO_ROOT, ['pacs', 'watch', '--orthanc', orthanc.url, '--credentials', d('cred.json'), '--model', d('m.onnx'), '--once', '--state', d('loose.json')]);
  assert.equal(loose.code, 2);
  assert.match(loose.stderr, /can be read by other users \(mode 644\)/);
});

test('kill -9 at chosen points, restart: no study skipped, none reported twice, none begun again but the one in flight', { skip, timeout: 420_000 }, async () => {
  // A state that starts after everything Orthanc holds now.
  const state = d('state-kill.json');
  const first = await watch(['--once', '--state', state, '--start', 'now']);
  assert.equal(first.code, 0, first.stderr);
  const studies = [10, 11, 12, 13, 14, 15].map((n) => writeStudy(d('in2'), n, { views: n % 2 ? 1 : 2 }));
  storescu(orthanc, studies.flatMap((s) => s.files));
  await waitStable(orthanc, studies.map((s) => s.studyUid));

  // Every window once, in a seeded random order, each at the first or second study of its run.
  const rng = new Rng(20240611);
  const steps = ['fetched', 'predicted', 'storing', 'stored'];
  for (let i = steps.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [steps[i], steps[j]] = [steps[j]!, steps[i]!];
  }
  const logs: string[] = [];
  let kills = 0;
  for (const step of steps) {
    const nth = 1 + rng.int(2);
    const r = await watch(['--once', '--state', state], { env: { NEXTRAY_PACS_FAULT_HOLD: `${step}:${nth}` }, killWhen: /fault hold at/ });
    logs.push(r.stderr);
    if (r.killed) kills++;
    else assert.equal(r.code, 0, r.stderr);
  }
  // Until nothing is left: the studies announced again after their SR was stored are found up to date.
  for (let k = 0; k < 3; k++) {
    await new Promise((res) => setTimeout(res, 2500));
    const r = await watch(['--once', '--state', state]);
    assert.equal(r.code, 0, r.stderr);
    logs.push(r.stderr);
  }
  assert.ok(kills >= 2, `at least two runs were killed (${kills})`);
  const all = logs.join('\n');
  for (const s of studies) {
    assert.equal((await orthancReports(orthanc, s.studyUid)).length, 1, `study ${s.studyUid} has exactly one SR`);
    const begun = all.split('\n').filter((l) => l.includes(`study ${s.studyUid}: begin`)).length;
    assert.ok(begun >= 1, `study ${s.studyUid} was processed`);
  }
  // Each kill may cost the change in flight one repetition, nothing more: a restart that went back further (a worker
  // that forgot its position) visits changes it had done.
  const visits = [...all.matchAll(/change (\d+): StableStudy/g)].map((m) => Number(m[1]));
  const repeated = visits.length - new Set(visits).size;
  assert.ok(repeated <= kills, `${repeated} change(s) visited again after ${kills} kills: a restart went back further than the change in flight\n${all}`);
  const begins = all.split('\n').filter((l) => /: begin: /.test(l)).length;
  assert.ok(begins <= studies.length + kills, `${begins} study starts for ${studies.length} studies and ${kills} kills`);
  const st = JSON.parse(readFileSync(state, 'utf8')) as { since: number; failed: unknown[] };
  const last = (await orthanc.get<{ Last: number }>('changes?last')).Last;
  assert.equal(st.since, last, 'the state ends at the newest change');
  assert.deepEqual(st.failed, []);
});

/**
 * A DX instance without the Image Pixel module (no Pixel Data, Rows, Columns ...). Its patient must be the study's:
 * Orthanc files one Study Instance UID under two Patient IDs as two studies.
 */
function noPixelInstance(studyUid: string, seriesUid: string, sop: string, patient: [string, string]): Uint8Array {
  const el = (g: number, e: number, vr: 'UI' | 'CS' | 'PN' | 'LO', value: string) => ({ tag: tag(g, e), vr, value });
  return writePart10({ sopClassUid: '1.2.840.10008.5.1.4.1.1.1.1', sopInstanceUid: sop, implementationClassUid: '1.2.826.0.1.3680043.9.7.99', implementationVersionName: 'TEST' }, [
    el(0x0008, 0x0016, 'UI', '1.2.840.10008.5.1.4.1.1.1.1'),
    el(0x0008, 0x0018, 'UI', sop),
    el(0x0008, 0x0060, 'CS', 'DX'),
    el(0x0010, 0x0010, 'PN', patient[0]),
    el(0x0010, 0x0020, 'LO', patient[1]),
    el(0x0020, 0x000d, 'UI', studyUid),
    el(0x0020, 0x000e, 'UI', seriesUid),
  ]);
}

test('bad input from the PACS is logged with its UIDs and left out; the worker goes on', { skip, timeout: 300_000 }, async () => {
  const state = d('state-bad.json');
  assert.equal((await watch(['--once', '--state', state, '--start', 'now'])).code, 0);
  const good = writeStudy(d('in3'), 20, { views: 1 });
  const study = good.studyUid;
  const series = `${study}.1`;
  const files: string[] = [...good.files];
  // Truncated: a JPEG lossless instance whose compressed frame is cut in half.
  const src = writeStudy(d('in3-src'), 21, { views: 1 });
  assert.equal(spawnSync('dcmcjpeg', ['+e1', src.files[0]!, d('in3-src', 'jl.dcm')]).status, 0);
  const jl = parseDicom(new Uint8Array(readFileSync(d('in3-src', 'jl.dcm')))).dataSet;
  const frag = jl.elements.x7fe00010!.fragments![0]!;
  const jpeg = new Uint8Array(jl.byteArray.buffer, jl.byteArray.byteOffset + frag.position, frag.length);
  const truncatedSop = `${series}.7`;
  const common = (sop: string) => [
    { group: 0x0008, element: 0x0018, vr: 'UI' as const, value: sop },
    { group: 0x0008, element: 0x0060, vr: 'CS' as const, value: 'DX' },
    { group: 0x0020, element: 0x000e, vr: 'UI' as const, value: series },
    { group: 0x0010, element: 0x0010, vr: 'PN' as const, value: 'Synth^Patient20' },
    { group: 0x0010, element: 0x0020, vr: 'LO' as const, value: 'P20' },
  ];
  writeFileSync(d('in3', 'truncated.dcm'), writeDicom({ rows: 48, columns: 48, bitsAllocated: 8, transferSyntax: TS.jpegLossless, pixelBytes: encapsulate([jpeg.slice(0, Math.floor(jpeg.length / 2))]), studyUid: study, extra: common(truncatedSop) }));
  // Unsupported encoding: MPEG2 (a video syntax a PACS accepts; neXt-Ray has no decoder for it).
  const mpegSop = `${series}.8`;
  writeFileSync(d('in3', 'mpeg2.dcm'), writeDicom({ rows: 32, columns: 32, bitsAllocated: 8, transferSyntax: '1.2.840.10008.1.2.4.100', pixelBytes: encapsulate([Uint8Array.of(0, 0, 1, 0xb3, 1, 2, 3, 4)]), studyUid: study, extra: common(mpegSop) }));
  // No Image Pixel module.
  const noPixelSop = `${series}.9`;
  writeFileSync(d('in3', 'nopixel.dcm'), noPixelInstance(study, series, noPixelSop, ['Synth^Patient20', 'P20']));
  // A 300-frame CT series in the same study.
  const ctSeries = `${study}.5`;
  writeFileSync(
    d('in3', 'ct.dcm'),
    writeDicom({
      rows: 16,
      columns: 16,
      bitsAllocated: 16,
      pixels: new Array(300 * 256).fill(0).map((_, i) => i % 1000),
      studyUid: study,
      extra: [
        { group: 0x0008, element: 0x0016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
        { group: 0x0008, element: 0x0018, vr: 'UI', value: `${ctSeries}.1` },
        { group: 0x0008, element: 0x0060, vr: 'CS', value: 'CT' },
        { group: 0x0020, element: 0x000e, vr: 'UI', value: ctSeries },
        { group: 0x0028, element: 0x0008, vr: 'IS', value: '300' },
        { group: 0x0010, element: 0x0010, vr: 'PN', value: 'Synth^Patient20' },
        { group: 0x0010, element: 0x0020, vr: 'LO', value: 'P20' },
      ],
    }),
  );
  // A study with nothing to predict, and a good study after it.
  const emptyStudy = '1.2.826.0.1.3680043.9.7.7.22';
  writeFileSync(d('in3', 'only-nopixel.dcm'), noPixelInstance(emptyStudy, `${emptyStudy}.1`, `${emptyStudy}.1.1`, ['Bad^Input', 'PBAD']));
  const after = writeStudy(d('in3'), 23, { views: 1 });
  storescu(orthanc, [...files, d('in3', 'truncated.dcm'), d('in3', 'mpeg2.dcm'), d('in3', 'nopixel.dcm'), d('in3', 'ct.dcm')]);
  storescu(orthanc, [d('in3', 'only-nopixel.dcm')]);
  storescu(orthanc, after.files);
  await waitStable(orthanc, [study, emptyStudy, after.studyUid]);

  const r = await watch(['--once', '--state', state]);
  assert.equal(r.code, 0, r.stderr);
  const line = (sop: string, reason: RegExp) => assert.match(r.stderr, new RegExp(`study ${study.replace(/\./g, '\\.')}: left out SOP Instance ${sop.replace(/\./g, '\\.')}: .*${reason.source}`));
  line(truncatedSop, /without the JPEG end-of-image marker \(FFD9\), so it was cut short/);
  line(mpegSop, /transfer syntax .*is not supported/);
  line(noPixelSop, /no Pixel Data/);
  assert.match(r.stderr, new RegExp(`left out series ${ctSeries.replace(/\./g, '\\.')} \\(1 instance\\(s\\), not downloaded\\): Modality CT`));
  assert.match(r.stderr, new RegExp(`study ${emptyStudy.replace(/\./g, '\\.')}: no view to predict`));
  assert.match(r.stderr, new RegExp(`study ${after.studyUid.replace(/\./g, '\\.')}: stored SR`), 'the study after the bad ones is reported');
  assert.equal((await orthancReports(orthanc, study)).length, 1, 'the good view of the mixed study is reported');
  assert.equal((await orthancReports(orthanc, emptyStudy)).length, 0);
  const sr = parseDicom(await fileOf((await orthancReports(orthanc, study))[0]!)).dataSet;
  const texts: string[] = [];
  const walk = (items: typeof sr.elements.x0040a730.items) => {
    for (const it of items ?? []) {
      const t = it.dataSet?.string('x0040a160');
      if (t) texts.push(t);
      walk(it.dataSet?.elements.x0040a730?.items);
    }
  };
  walk(sr.elements.x0040a730!.items);
  for (const sop of [truncatedSop, mpegSop, noPixelSop]) assert.ok(texts.some((t) => t.startsWith(`${sop}: `)), `the SR names ${sop} as left out`);
  assert.ok(texts.some((t) => t.startsWith(`series ${ctSeries}`)));
});

test('DICOMweb: QIDO-RS and WADO-RS pull, STOW-RS push (Orthanc\'s plugin); studies already reported stay at one SR', { skip, timeout: 240_000 }, async () => {
  const s = writeStudy(d('in4'), 30, { views: 2 });
  storescu(orthanc, s.files);
  await waitStable(orthanc, [s.studyUid]);
  const r = await runNextray(REPO_ROOT, ['pacs', 'watch', '--dicomweb', orthanc.dicomweb, '--model', d('m.onnx'), '--threads', '1', '--once', '--state', d('state-dw.json'), '--heatmaps'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`study ${s.studyUid.replace(/\./g, '\\.')}: stored SR`));
  const srs = await orthancReports(orthanc, s.studyUid);
  assert.equal(srs.length, 1);
  assert.deepEqual(dciodvfyErrors(await fileOf(srs[0]!), 'dw-sr.dcm'), []);
  // Studies the Orthanc-mode runs reported (same model: same UIDs, same digest) are up to date through DICOMweb too.
  assert.doesNotMatch(r.stderr, /study 1\.2\.826\.0\.1\.3680043\.9\.7\.7\.1: (begin|stored)/);
  assert.match(r.stderr, /study 1\.2\.826\.0\.1\.3680043\.9\.7\.7\.1: up to date/);
  for (const n of [1, 2, 3, 10, 11, 12]) assert.equal((await orthancReports(orthanc, `1.2.826.0.1.3680043.9.7.7.${n}`)).length, 1);
});
