/**
 * The loader and summary against the synthetic generator: a generated dataset loads with no problem (its
 * `imageM.findings.json` sidecars are not mistaken for images), every PNG decodes, and the Table-1 counts equal
 * the ones the generator computed from its own plan — an independent count of the same dataset.
 */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { generateSyntheticMura } from '../../src/data/synth/index.js';
import { loadMuraDataset } from '../../src/data/mura.js';
import { summarizeStudies } from '../../src/data/summary.js';
import { createSplit } from '../../src/data/splits.js';

const tmp = tempDir('nextray-summary-synth-');
after(() => tmp.cleanup());

it('a synthetic dataset loads clean and its counts match the generator', async () => {
  const outDir = join(tmp.dir, 'synth');
  const gen = await generateSyntheticMura({ outDir, studies: 48, size: 64, seed: 5, workers: 0 });
  const ds = await loadMuraDataset(outDir, { checkImages: true });
  assert.deepEqual(ds.issues, []);
  assert.equal(ds.images.length, gen.totals.images);
  assert.deepEqual(summarizeStudies(ds.studies).splits, gen.splits);
  const split = createSplit(ds, { valFraction: 0.8, seed: 1 });
  const validStudies = Object.values(gen.splits.valid).reduce((a, c) => a + (c?.studies ?? 0), 0);
  assert.ok(validStudies > 0);
  assert.equal(split.subsets.validation.totals.studies + split.subsets.test.totals.studies, validStudies);
});
