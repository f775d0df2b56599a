/**
 * loadMuraDataset on tiny MURA-format datasets built in temp folders: the model it builds (images grouped into
 * studies, labels, splits), both ways of naming DIR, and every kind of problem it must report (without stopping).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { DatasetError, loadMuraDataset, type DatasetIssue, type MuraDataset } from '../../src/data/mura.js';
import { MAX_IMAGE_PIXELS } from '../../src/data/images.js';
import {
  appendLine,
  buildMura,
  hugeHeaderPng,
  readLines,
  REFERENCE_STUDIES,
  studyPath,
  tinyPng,
  writeLines,
} from './mura-fixture.js';

const tmp = tempDir('nextray-mura-');
after(() => tmp.cleanup());
let n = 0;
/** A fresh copy of the reference dataset; returns [parent dir, MURA-v1.1 dir]. */
async function fresh(): Promise<[string, string]> {
  const dir = join(tmp.dir, `d${n++}`);
  return [dir, await buildMura(dir)];
}

function kinds(ds: MuraDataset): string[] {
  return ds.issues.map((i) => i.kind).sort();
}
function only(ds: MuraDataset, kind: string): DatasetIssue[] {
  return ds.issues.filter((i) => i.kind === kind);
}

describe('loadMuraDataset on a clean dataset', () => {
  let dir: string;
  let root: string;
  let ds: MuraDataset;
  before(async () => {
    [dir, root] = await fresh();
    ds = await loadMuraDataset(dir, { checkImages: true });
  });

  it('reports no problem', () => {
    assert.deepEqual(ds.issues, []);
    assert.deepEqual(ds.warnings, []);
  });

  it('builds images and studies as constructed', () => {
    // 3+2+1+2+4 train + 2+1+3 valid images, 8 studies.
    assert.equal(ds.images.length, 18);
    assert.equal(ds.studies.length, 8);
    assert.equal(ds.root, root);
    assert.equal(ds.base, dir);
    const s = ds.studies.find((x) => x.key === 'MURA-v1.1/valid/XR_ELBOW/patient00011/study2_positive/')!;
    assert.equal(s.patient, 'patient00011');
    assert.equal(s.region, 'XR_ELBOW');
    assert.equal(s.label, 1);
    assert.equal(s.split, 'valid');
    assert.deepEqual(
      s.images.map((i) => i.path),
      [1, 2, 3].map((m) => `MURA-v1.1/valid/XR_ELBOW/patient00011/study2_positive/image${m}.png`),
    );
    assert.equal(s.images[0]!.absPath, join(root, 'valid/XR_ELBOW/patient00011/study2_positive/image1.png'));
    for (const img of ds.images) {
      const st = ds.studies.find((x) => x.key === img.study)!;
      assert.ok(st.images.includes(img));
      assert.equal(img.label, st.label);
    }
    const labels = ds.studies.map((x) => x.label);
    assert.deepEqual(labels, REFERENCE_STUDIES.map((x) => x.label));
  });

  it('gives the same result when DIR is MURA-v1.1 itself', async () => {
    const ds2 = await loadMuraDataset(root);
    assert.deepEqual(ds2.issues, []);
    assert.equal(ds2.root, root);
    assert.deepEqual(ds2.images, ds.images);
    assert.equal(ds2.fingerprint, ds.fingerprint);
  });

  it('fingerprints the CSVs: same bytes same print, any change a different one', async () => {
    assert.match(ds.fingerprint, /^sha256:[0-9a-f]{64}$/);
    const [dir2, root2] = await fresh();
    assert.equal((await loadMuraDataset(dir2)).fingerprint, ds.fingerprint);
    const lines = readLines(root2, 'valid_image_paths.csv');
    writeLines(root2, 'valid_image_paths.csv', lines.reverse());
    assert.notEqual((await loadMuraDataset(dir2)).fingerprint, ds.fingerprint);
  });

  it('accepts CRLF line ends, a BOM and a trailing blank line', async () => {
    const [dir2, root2] = await fresh();
    const lines = readLines(root2, 'train_image_paths.csv');
    writeFileSync(join(root2, 'train_image_paths.csv'), '\uFEFF' + lines.join('\r\n') + '\r\n\r\n');
    const ds2 = await loadMuraDataset(dir2);
    assert.deepEqual(ds2.issues, []);
    assert.equal(ds2.images.length, 18);
  });

  it('does not report the synthetic generator sidecars (imageM.findings.json) or other non-images', async () => {
    const [dir2, root2] = await fresh();
    writeFileSync(join(root2, 'train/XR_WRIST/patient00001/study1_positive/image1.findings.json'), '{}');
    writeFileSync(join(root2, 'valid/.DS_Store'), 'x');
    writeFileSync(join(root2, 'valid/XR_WRIST/patient00010/study1_positive/._image1.png'), 'x');
    const ds2 = await loadMuraDataset(dir2);
    assert.deepEqual(ds2.issues, []);
  });
});

describe('loadMuraDataset reports every problem, with the file, and goes on', () => {
  it('a folder that is not a dataset is a DatasetError', async () => {
    await assert.rejects(loadMuraDataset(join(tmp.dir, 'nope')), (e: unknown) => e instanceof DatasetError && /no such folder/.test(e.message));
    const empty = join(tmp.dir, 'empty');
    mkdirSync(empty);
    await assert.rejects(loadMuraDataset(empty), (e: unknown) => e instanceof DatasetError && /not a MURA dataset/.test(e.message));
  });

  it('missing and empty CSVs', async () => {
    const [dir, root] = await fresh();
    rmSync(join(root, 'train_labeled_studies.csv'));
    writeFileSync(join(root, 'valid_image_paths.csv'), '\n');
    const ds = await loadMuraDataset(dir);
    const missing = only(ds, 'csv-missing');
    assert.equal(missing.length, 1);
    assert.equal(missing[0]!.path, join(root, 'train_labeled_studies.csv'));
    const empty = only(ds, 'csv-empty');
    assert.equal(empty.length, 1);
    assert.equal(empty[0]!.path, join(root, 'valid_image_paths.csv'));
    assert.match(missing[0]!.message, /CSV file is missing; study labels of train are taken from the study folder names/);
    assert.match(empty[0]!.message, /no lines; no image of valid is loaded/);
    // Reported once each: not also as 5 unlabeled train studies, 3 valid studies without images and 6 unlisted
    // valid images, which would bury the cause.
    assert.deepEqual(kinds(ds), ['csv-empty', 'csv-missing']);
    // Loading went on: train images are all there, labels from their folders.
    assert.equal(ds.images.length, 12);
    assert.deepEqual(ds.studies.map((s) => s.label), [1, 0, 0, 1, 0]);
  });

  it('all CSVs missing is a DatasetError naming what was looked for', async () => {
    const [dir, root] = await fresh();
    for (const f of ['train_image_paths.csv', 'train_labeled_studies.csv', 'valid_image_paths.csv', 'valid_labeled_studies.csv'])
      rmSync(join(root, f));
    await assert.rejects(loadMuraDataset(dir), (e: unknown) => e instanceof DatasetError && /train_image_paths\.csv/.test(e.message));
  });

  it('malformed CSV lines', async () => {
    const [dir, root] = await fresh();
    const sp = studyPath(REFERENCE_STUDIES[0]!);
    const labeled = readLines(root, 'train_labeled_studies.csv');
    // line 1: no label; line 2: label 2; line 3: three fields; the rest stay good.
    labeled[0] = sp;
    labeled[1] = labeled[1]!.replace(/,0$/, ',2');
    labeled[2] = labeled[2] + ',extra';
    writeLines(root, 'train_labeled_studies.csv', labeled);
    appendLine(root, 'valid_image_paths.csv', 'MURA-v1.1/valid/XR_WRIST/patient00010/study1_positive/image1.png,1');
    const ds = await loadMuraDataset(dir);
    const bad = only(ds, 'csv-malformed');
    assert.deepEqual(
      bad.map((i) => [i.csv, i.line]),
      [
        ['train_labeled_studies.csv', 1],
        ['train_labeled_studies.csv', 2],
        ['train_labeled_studies.csv', 3],
        ['valid_image_paths.csv', 7],
      ],
    );
    for (const i of bad) assert.equal(i.path, join(root, i.csv!));
    assert.match(bad[1]!.message, /line 2: label must be 0 \(normal\) or 1 \(abnormal\), found "2"/);
    // The three studies lost their label rows, so they are reported as unlabeled too; nothing else.
    assert.deepEqual(kinds(ds), [...Array(4).fill('csv-malformed'), ...Array(3).fill('study-unlabeled')]);
  });

  it('duplicated lines are reported once each and counted once', async () => {
    const [dir, root] = await fresh();
    const imgs = readLines(root, 'train_image_paths.csv');
    appendLine(root, 'train_image_paths.csv', imgs[0]!);
    appendLine(root, 'train_image_paths.csv', imgs[0]!);
    const labeled = readLines(root, 'valid_labeled_studies.csv');
    appendLine(root, 'valid_labeled_studies.csv', labeled[0]!);
    appendLine(root, 'valid_labeled_studies.csv', labeled[0]!.replace(/,1$/, ',0'));
    const ds = await loadMuraDataset(dir);
    const dups = only(ds, 'csv-duplicate');
    assert.deepEqual(
      dups.map((d) => [d.csv, d.line]),
      [
        ['train_image_paths.csv', 13],
        ['train_image_paths.csv', 14],
        ['valid_labeled_studies.csv', 4],
        ['valid_labeled_studies.csv', 5],
      ],
    );
    assert.match(dups.find((d) => d.line === 5)!.message, /different label/);
    assert.equal(ds.issues.length, 4);
    assert.equal(ds.images.length, 18);
  });

  it('paths outside the dataset root: "..", absolute, and symlinks that leave it', async () => {
    const [dir, root] = await fresh();
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/../../etc/passwd');
    appendLine(root, 'train_image_paths.csv', '/etc/passwd');
    appendLine(root, 'valid_labeled_studies.csv', '../MURA-v1.1/valid/XR_WRIST/patient00010/study1_positive/,1');
    // A file symlink and a patient-folder symlink that point outside, both listed.
    const outside = join(tmp.dir, `outside${n}`);
    mkdirSync(join(outside, 'study1_positive'), { recursive: true });
    writeFileSync(join(outside, 'secret.png'), await tinyPng());
    writeFileSync(join(outside, 'study1_positive', 'image1.png'), await tinyPng());
    const img = join(root, 'train/XR_WRIST/patient00001/study1_positive/image1.png');
    rmSync(img);
    symlinkSync(join(outside, 'secret.png'), img);
    symlinkSync(outside, join(root, 'train/XR_HAND/patient00099'));
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/XR_HAND/patient00099/study1_positive/image1.png');
    appendLine(root, 'train_labeled_studies.csv', 'MURA-v1.1/train/XR_HAND/patient00099/study1_positive/,1');
    // A symlink that stays inside the dataset is fine.
    symlinkSync(
      join(root, 'train/XR_HAND/patient00003/study1_negative/image1.png'),
      join(root, 'train/XR_HAND/patient00003/study1_negative/image5.png'),
    );
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/XR_HAND/patient00003/study1_negative/image5.png');

    const ds = await loadMuraDataset(dir, { checkImages: true });
    const out = only(ds, 'path-outside-root');
    assert.equal(out.length, 5);
    assert.match(out.find((i) => i.message.includes('etc/passwd') && i.message.includes('..'))!.message, /leads outside the dataset root/);
    assert.match(out.find((i) => i.message.includes('"/etc/passwd"'))!.message, /absolute path/);
    assert.ok(out.some((i) => i.csv === 'valid_labeled_studies.csv'));
    assert.ok(out.some((i) => i.path === img && /symbolic link/.test(i.message)));
    assert.ok(out.some((i) => i.path.endsWith(join('patient00099', 'study1_positive', 'image1.png')) && /symbolic link/.test(i.message)));
    // The escaped images are not read; the study whose only image escaped has no usable image.
    assert.ok(!ds.images.some((i) => i.absPath === img));
    assert.ok(!ds.studies.some((s) => s.patient === 'patient00099'));
    assert.ok(ds.images.some((i) => i.path.endsWith('patient00003/study1_negative/image5.png')));
    assert.deepEqual(kinds(ds), Array(5).fill('path-outside-root'));
  });

  it('paths that do not follow the MURA grammar', async () => {
    const [dir, root] = await fresh();
    mkdirSync(join(root, 'train/XR_KNEE/patient00001/study1_positive'), { recursive: true });
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/XR_KNEE/patient00001/study1_positive/image1.png');
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/XR_WRIST/patient00001/study1/image1.png');
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.findings.json');
    appendLine(root, 'train_image_paths.csv', 'OTHER/train/XR_WRIST/patient00001/study1_positive/image1.png');
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/XR_WRIST/./patient00001/study1_positive/image1.png');
    appendLine(root, 'train_labeled_studies.csv', 'MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png,1');
    const ds = await loadMuraDataset(dir);
    const g = only(ds, 'path-grammar');
    assert.equal(g.length, 6);
    assert.deepEqual(kinds(ds), Array(6).fill('path-grammar'));
    assert.match(g.find((i) => i.message.includes('/./'))!.message, /write it as MURA-v1.1\/train\/XR_WRIST\/patient00001/);
    assert.match(g.find((i) => i.message.includes('OTHER/'))!.message, /does not start with the dataset folder/);
    assert.equal(ds.images.length, 18);
  });

  it('an image listed under the wrong split, and a patient in both splits', async () => {
    const [dir, root] = await fresh();
    appendLine(root, 'valid_image_paths.csv', 'MURA-v1.1/train/XR_HAND/patient00003/study1_negative/image1.png');
    mkdirSync(join(root, 'valid/XR_HAND/patient00001/study1_positive'), { recursive: true });
    writeFileSync(join(root, 'valid/XR_HAND/patient00001/study1_positive/image1.png'), await tinyPng());
    appendLine(root, 'valid_image_paths.csv', 'MURA-v1.1/valid/XR_HAND/patient00001/study1_positive/image1.png');
    appendLine(root, 'valid_labeled_studies.csv', 'MURA-v1.1/valid/XR_HAND/patient00001/study1_positive/,1');
    const ds = await loadMuraDataset(dir);
    assert.deepEqual(kinds(ds), ['patient-in-both-splits', 'split-mismatch']);
    assert.equal(only(ds, 'split-mismatch')[0]!.line, 7);
    const both = only(ds, 'patient-in-both-splits')[0]!;
    assert.match(both.message, /patient00001 has studies in both train \(MURA-v1\.1\/train\/XR_WRIST\/patient00001\/study1_positive\/\)/);
    assert.equal(both.path, join(root, 'valid/XR_HAND/patient00001/study1_positive'));
  });

  it('images listed but missing, label vs folder disagreements, studies in one CSV only, unlisted files', async () => {
    const [dir, root] = await fresh();
    const gone = join(root, 'valid/XR_ELBOW/patient00011/study2_positive/image2.png');
    rmSync(gone);
    // Label 0 for a _positive study.
    const labeled = readLines(root, 'train_labeled_studies.csv');
    labeled[0] = labeled[0]!.replace(/,1$/, ',0');
    // Drop the label row of patient00003's study; add a label row for a study no image CSV line names.
    writeLines(root, 'train_labeled_studies.csv', [
      ...labeled.filter((l) => !l.includes('patient00003')),
      'MURA-v1.1/train/XR_FINGER/patient00004/study1_negative/,0',
    ]);
    const extra = join(root, 'train/XR_WRIST/patient00002/study1_negative/image2.png');
    writeFileSync(extra, await tinyPng());
    const ds = await loadMuraDataset(dir);
    assert.deepEqual(kinds(ds), ['image-missing', 'label-mismatch', 'study-unlabeled', 'study-without-images', 'unlisted-image']);
    assert.equal(only(ds, 'image-missing')[0]!.path, gone);
    assert.match(only(ds, 'image-missing')[0]!.message, /valid_image_paths\.csv line 5/);
    const mm = only(ds, 'label-mismatch')[0]!;
    assert.equal(mm.path, join(root, 'train/XR_WRIST/patient00001/study1_positive'));
    assert.match(mm.message, /labels it 0 .* folder says _positive/);
    assert.equal(only(ds, 'study-unlabeled')[0]!.path, join(root, 'train/XR_HAND/patient00003/study1_negative'));
    assert.equal(only(ds, 'study-without-images')[0]!.path, join(root, 'train/XR_FINGER/patient00004/study1_negative'));
    assert.equal(only(ds, 'unlisted-image')[0]!.path, extra);
    // Documented resolutions: CSV label wins; the unlabeled study keeps its folder label; the missing image is
    // left out but its study stays.
    assert.equal(ds.studies.find((s) => s.key.includes('patient00001/study1_positive'))!.label, 0);
    assert.ok(ds.images.filter((i) => i.study.includes('patient00001/study1_positive')).every((i) => i.label === 0));
    assert.equal(ds.studies.find((s) => s.key.includes('patient00003'))!.label, 0);
    assert.equal(ds.studies.find((s) => s.key.includes('patient00011/study2'))!.images.length, 2);
    assert.equal(ds.images.length, 17);
  });

  it(
    'an image under a folder that cannot be listed says so',
    { skip: process.getuid?.() === 0 ? 'root can list any folder' : false },
    async () => {
      const [dir, root] = await fresh();
      const locked = join(root, 'train/XR_HAND/patient00003');
      chmodSync(locked, 0o000);
      try {
        const ds = await loadMuraDataset(dir);
        const miss = only(ds, 'image-missing');
        assert.equal(miss.length, 4);
        assert.match(miss[0]!.message, /a folder above it cannot be read/);
      } finally {
        chmodSync(locked, 0o755);
      }
    },
  );

  it('with checkImages: truncated, corrupt, zero-byte, non-image and huge files, each named, loading goes on', async () => {
    const [dir, root] = await fresh();
    const at = (rel: string) => join(root, rel);
    const png = await tinyPng();
    const truncated = at('train/XR_WRIST/patient00001/study1_positive/image1.png');
    writeFileSync(truncated, png.subarray(0, Math.floor(png.length / 2)));
    const corrupt = at('train/XR_WRIST/patient00001/study1_positive/image2.png');
    const c = Buffer.from(png);
    c.fill(0x55, 40, c.length - 12); // keep signature and IHDR, destroy the data
    writeFileSync(corrupt, c);
    const zero = at('train/XR_ELBOW/patient00002/study1_positive/image1.png');
    truncateSync(zero, 0);
    const text = at('train/XR_WRIST/patient00002/study1_negative/image1.png');
    writeFileSync(text, 'this is not a picture\n');
    const side = Math.ceil(Math.sqrt(MAX_IMAGE_PIXELS)) + 1;
    const huge = at('valid/XR_WRIST/patient00010/study1_positive/image1.png');
    writeFileSync(huge, hugeHeaderPng(side, side));
    const jpegTrunc = at('valid/XR_ELBOW/patient00011/study2_positive/image1.png');
    const { default: sharp } = await import('sharp');
    const jpg = await sharp(png).jpeg().toBuffer();
    renameSync(jpegTrunc, jpegTrunc + '.bak');
    writeFileSync(jpegTrunc, jpg.subarray(0, Math.floor(jpg.length / 2)));

    let progressCalls = 0;
    let lastTotal = 0;
    const ds = await loadMuraDataset(dir, {
      checkImages: true,
      concurrency: 3,
      onImageChecked: (done, total) => {
        progressCalls++;
        lastTotal = total;
        assert.ok(done <= total);
      },
    });
    assert.equal(progressCalls, 18);
    assert.equal(lastTotal, 18);
    const bad = only(ds, 'image-unreadable');
    assert.deepEqual(bad.map((i) => i.path).sort(), [truncated, corrupt, zero, text, huge, jpegTrunc].sort());
    assert.deepEqual(kinds(ds), Array(6).fill('image-unreadable'));
    assert.match(bad.find((i) => i.path === zero)!.message, /0 bytes/);
    assert.match(bad.find((i) => i.path === text)!.message, /not an image|text/i);
    assert.match(bad.find((i) => i.path === huge)!.message, /too large|pixel/i);
    assert.equal(ds.images.length, 12);
    // A study whose only image is unreadable drops out; the others keep their good views.
    assert.ok(!ds.studies.some((s) => s.key.includes('XR_WRIST/patient00002/study1_negative')));
    assert.equal(ds.studies.find((s) => s.key.includes('patient00010'))!.images.length, 1);
    // Without checkImages these files are not opened, so nothing is reported.
    assert.deepEqual((await loadMuraDataset(dir)).issues, []);
  });

  it('an injected checker that throws is reported as that image, not a crash', async () => {
    const [dir] = await fresh();
    const ds = await loadMuraDataset(dir, {
      checkImages: true,
      checkImage: async (p) => {
        if (p.endsWith('image3.png')) throw new Error('boom');
        return { ok: true, width: 1, height: 1, channels: 1, bitDepth: 8, warnings: p.includes('patient00003') ? ['flat'] : [] };
      },
    });
    // image3.png exists in three studies (patient00001 study1, patient00003 study1, patient00011 study2); the
    // other three images of patient00003 carry a warning.
    assert.equal(only(ds, 'image-unreadable').length, 3);
    assert.match(only(ds, 'image-unreadable')[0]!.message, /boom/);
    assert.equal(ds.warnings.length, 3);
  });
});
