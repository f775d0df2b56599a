/**
 * The MURA loader's walk and symlinks inside the dataset: a link back to an enclosing folder (`patient/up -> ..`)
 * or to a folder higher up is an alias of folders the walk lists under their own paths, so it lists nothing twice
 * (before: every image again, as "unlisted", under up/ and up2/); an image the CSV lists through such a link is still
 * found.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { loadMuraDataset } from '../../src/data/mura.js';
import { tempDir } from '../helpers/paths.js';
import { writeTinyDataset } from '../train/fixture.js';

const tmp = tempDir('nextray-mura-links-');
after(() => tmp.cleanup());

test('loop links inside the dataset list nothing twice; an image listed through a link is found', async () => {
  const dir = join(tmp.dir, 'd');
  await writeTinyDataset(dir, { trainPatients: 4, validPatients: 4, size: 24 });
  const root = join(dir, 'MURA-v1.1');
  const plain = await loadMuraDataset(dir);
  assert.deepEqual(plain.issues, []);
  const region = readdirSync(join(root, 'train')).sort()[0]!;
  const patient = readdirSync(join(root, 'train', region)).sort()[0]!;
  symlinkSync('..', join(root, 'train', region, patient, 'up'));
  symlinkSync('../..', join(root, 'train', region, patient, 'up2'));
  const looped = await loadMuraDataset(dir);
  assert.deepEqual(looped.issues, [], looped.issues.map((i) => `${i.kind}: ${i.path}`).join('\n'));
  assert.equal(looped.images.length, plain.images.length);

  // A patient folder that is a link to another patient's folder in the same split, listed in the CSV.
  const study = readdirSync(join(root, 'train', region, patient)).find((n) => n.startsWith('study'))!;
  symlinkSync(patient, join(root, 'train', region, 'patient09999'));
  appendFileSync(join(root, 'train_image_paths.csv'), `MURA-v1.1/train/${region}/patient09999/${study}/image1.png\n`);
  appendFileSync(join(root, 'train_labeled_studies.csv'), `MURA-v1.1/train/${region}/patient09999/${study}/,${study.endsWith('positive') ? 1 : 0}\n`);
  const linked = await loadMuraDataset(dir);
  assert.deepEqual(linked.issues, [], linked.issues.map((i) => `${i.kind}: ${i.message}`).join('\n'));
  assert.ok(linked.images.some((i) => i.path.includes('patient09999')), 'the image listed through the link is used');
});
