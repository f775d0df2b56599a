/**
 * Table-1 counts of a dataset built by construction (golden numbers worked out by hand in mura-fixture.ts), and
 * the `nextray data summary` / `nextray data split` commands end to end through the real CLI: --help, the exact
 * --json shape, problems on stderr, exit codes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { loadMuraDataset } from '../../src/data/mura.js';
import { formatSummaryTable, summarizeStudies } from '../../src/data/summary.js';
import { loadSplit } from '../../src/data/splits.js';
import { appendLine, buildMura } from './mura-fixture.js';

/** The reference dataset's counts, by hand (see REFERENCE_STUDIES). */
const GOLDEN = {
  splits: {
    train: {
      XR_ELBOW: { images: 2, studies: 1, patients: 1, abnormal_studies: 1, normal_studies: 0 },
      XR_HAND: { images: 4, studies: 1, patients: 1, abnormal_studies: 0, normal_studies: 1 },
      XR_WRIST: { images: 6, studies: 3, patients: 2, abnormal_studies: 1, normal_studies: 2 },
    },
    valid: {
      XR_ELBOW: { images: 4, studies: 2, patients: 1, abnormal_studies: 1, normal_studies: 1 },
      XR_WRIST: { images: 2, studies: 1, patients: 1, abnormal_studies: 1, normal_studies: 0 },
    },
  },
};

const tmp = tempDir('nextray-summary-');
after(() => tmp.cleanup());
let clean: string;
before(async () => {
  clean = join(tmp.dir, 'clean');
  await buildMura(clean);
});

describe('summarizeStudies / formatSummaryTable', () => {
  it('counts the reference dataset exactly, regions in MURA order', async () => {
    const ds = await loadMuraDataset(clean);
    const s = summarizeStudies(ds.studies);
    assert.deepEqual(s, GOLDEN);
    assert.deepEqual(Object.keys(s.splits.train), ['XR_ELBOW', 'XR_HAND', 'XR_WRIST']);
  });

  it('prints a table with totals (patients counted once across regions)', async () => {
    const ds = await loadMuraDataset(clean);
    const lines = formatSummaryTable(ds.studies).split('\n');
    const cells = (l: string) => l.trim().split(/\s+/);
    const trainAt = lines.indexOf('train:');
    const validAt = lines.indexOf('valid:');
    const allAt = lines.indexOf('all splits:');
    const totals = lines.filter((l) => l.startsWith('Total')).map(cells);
    // train: 3 normal, 2 abnormal, 5 studies, 12 images, 3 patients (patient00002 has wrist and elbow).
    assert.deepEqual(totals[0], ['Total', '3', '2', '5', '12', '3']);
    assert.deepEqual(totals[1], ['Total', '1', '2', '3', '6', '2']);
    assert.deepEqual(totals[2], ['Total', '4', '4', '8', '18', '5']);
    assert.ok(trainAt >= 0 && validAt > trainAt && allAt > validAt);
    assert.deepEqual(cells(lines.find((l) => l.startsWith('XR_WRIST'))!), ['XR_WRIST', '2', '1', '3', '6', '2']);
  });
});

describe('nextray data summary (CLI)', () => {
  it('--help shows usage, an example and the exit codes', () => {
    const r = runCli(['data', 'summary', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: nextray data summary \[options\] <dir>/);
    assert.match(r.stdout, /Examples:\n\s+\$ nextray data summary/);
    assert.match(r.stdout, /Exit codes:/);
    const top = runCli(['data', '--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /summary/);
    assert.match(top.stdout, /split/);
  });

  it('--json prints exactly the required shape, exit 0, nothing on stderr', () => {
    const r = runCli(['data', 'summary', clean, '--json']);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), GOLDEN);
  });

  it('prints the table without --json; DIR may be MURA-v1.1 itself', () => {
    const r = runCli(['data', 'summary', join(clean, 'MURA-v1.1'), '--check-images']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\nTotal\s+4\s+4\s+8\s+18\s+5\n/);
  });

  it('reports every problem on stderr with its file, keeps the JSON shape, exits 1', async () => {
    const dir = join(tmp.dir, 'broken');
    const root = await buildMura(dir);
    const gone = join(root, 'valid/XR_WRIST/patient00010/study1_positive/image2.png');
    rmSync(gone);
    appendLine(root, 'train_image_paths.csv', 'MURA-v1.1/train/../../etc/passwd');
    const bad = join(root, 'train/XR_HAND/patient00003/study1_negative/image4.png');
    writeFileSync(bad, '');
    const r = runCli(['data', 'summary', dir, '--json', '--check-images']);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as typeof GOLDEN;
    assert.deepEqual(Object.keys(out), ['splits']);
    assert.deepEqual(Object.keys(out.splits), ['train', 'valid']);
    // The missing and the empty image are left out of the counts.
    assert.deepEqual(out.splits.valid.XR_WRIST, { images: 1, studies: 1, patients: 1, abnormal_studies: 1, normal_studies: 0 });
    assert.equal(out.splits.train.XR_HAND.images, 3);
    assert.ok(r.stderr.includes(`problem: ${gone}: `), r.stderr);
    assert.ok(r.stderr.includes(`problem: ${join(root, 'train_image_paths.csv')}: line 13: `), r.stderr);
    assert.ok(r.stderr.includes(`problem: ${bad}: `), r.stderr);
    assert.match(r.stderr, /3 problem\(s\) in .*: 1 path-outside-root, 1 image-missing, 1 image-unreadable\n$/);
  });

  it('exits 2 with a one-line message when DIR is not a dataset, or on a usage error', () => {
    const r = runCli(['data', 'summary', join(tmp.dir, 'nothing-here')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^nextray: .*nothing-here: no such folder\n$/);
    assert.equal(r.stdout, '');
    assert.equal(runCli(['data', 'summary']).code, 2);
    assert.equal(runCli(['data', 'summary', clean, '--concurrency', '0']).code, 2);
  });
});

describe('nextray data split (CLI)', () => {
  it('--help shows an example', () => {
    const r = runCli(['data', 'split', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /\$ nextray data split .* --val-fraction 0\.8 --seed 42 --out /);
    assert.match(r.stdout, /--format <format>/);
  });

  it('writes a split loadSplit accepts; same seed, same bytes; --json prints the counts', async () => {
    const out1 = join(tmp.dir, 'a.json');
    const r = runCli(['data', 'split', clean, '--seed', '5', '--val-fraction', '0.5', '--out', out1]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote .*a\.json \(json\)/);
    const ds = await loadMuraDataset(clean);
    const split = loadSplit(out1, ds);
    assert.equal(split.seed, 5);
    assert.equal(split.val_fraction, 0.5);
    // Two valid patients (patient00010: 1 study; patient00011: 2 studies): one on each side.
    assert.equal(split.subsets.validation.patients.length, 1);
    assert.equal(split.subsets.test.patients.length, 1);
    const out2 = join(tmp.dir, 'b.json');
    const j = runCli(['data', 'split', clean, '--seed', '5', '--val-fraction', '0.5', '--out', out2, '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.equal(readFileSync(out1, 'utf8'), readFileSync(out2, 'utf8'));
    const printed = JSON.parse(j.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(printed), ['out', 'format', 'seed', 'val_fraction', 'fingerprint', 'subsets']);
    assert.equal(printed.fingerprint, ds.fingerprint);
  });

  it('--format csv (or a .csv name) writes the CSV form', () => {
    const out = join(tmp.dir, 'c.txt');
    const r = runCli(['data', 'split', clean, '--seed', 'abc', '--out', out, '--format', 'csv']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(out, 'utf8'), /^# format: "nextray-mura-split"\n/);
    assert.equal(loadSplit(out).seed, 'abc');
  });

  it('exits 2 on a bad fraction or a missing --seed, and writes nothing', () => {
    const out = join(tmp.dir, 'never.json');
    for (const args of [
      ['--seed', '1', '--val-fraction', '1'],
      ['--val-fraction', '0.8'],
    ]) {
      const r = runCli(['data', 'split', clean, ...args, '--out', out]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(!existsSync(out));
    }
  });

  it('exits 1 but still writes the split when the dataset has problems', async () => {
    const dir = join(tmp.dir, 'broken-split');
    const root = await buildMura(dir);
    appendLine(root, 'valid_image_paths.csv', 'MURA-v1.1/valid/XR_WRIST/patient00010/study1_positive/image9.png');
    const out = join(tmp.dir, 'd.json');
    const r = runCli(['data', 'split', dir, '--seed', '1', '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /image9\.png: listed at valid_image_paths\.csv line 7 but not found on disk \[image-missing\]/);
    assert.ok(existsSync(out));
  });
});
