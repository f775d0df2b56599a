/**
 * What `export --checkpoint` records for the model card (metadata `dataset`, `validation_metrics`): the data kind
 * from the generator's synth.json beside the dataset root (else MURA, the safe side), the image counts, and only the
 * checkpoint's validation numbers.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { trainingFacts } from '../../src/cli/export.js';
import type { CheckpointMetadata } from '../../src/models/weights/checkpoint.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-export-facts-');
after(() => tmp.cleanup());

const meta = (root: string): CheckpointMetadata =>
  ({
    dataset: { fingerprint: 'sha256:abc', root, train_images: 10, val_images: 4 },
    extra: { metrics: { epoch: 3, train_loss: 0.5, val_loss: 0.4, val_auc: 0.75, lr: 0.001 } },
  }) as unknown as CheckpointMetadata;

test('dataset kind, counts and validation metrics go into the ONNX metadata; training numbers do not', () => {
  const synth = join(tmp.dir, 'synthetic', 'MURA-v1.1');
  mkdirSync(synth, { recursive: true });
  writeFileSync(join(tmp.dir, 'synthetic', 'synth.json'), '{}');
  const real = join(tmp.dir, 'real', 'MURA-v1.1');
  mkdirSync(real, { recursive: true });
  const s = trainingFacts(meta(synth));
  assert.deepEqual(JSON.parse(s.dataset!), { kind: 'synthetic', name: 'MURA-v1.1', fingerprint: 'sha256:abc', train_images: 10, val_images: 4 });
  assert.deepEqual(JSON.parse(s.validation_metrics!), { epoch: 3, val_loss: 0.4, val_auc: 0.75 });
  assert.equal(JSON.parse(trainingFacts(meta(real)).dataset!).kind, 'mura', 'no synth.json: MURA (the notice errs on the safe side)');
  assert.equal(JSON.parse(trainingFacts(meta('/gone/synth-data/MURA-v1.1')).dataset!).kind, 'synthetic', "'synth' in the path");
  assert.deepEqual(trainingFacts(undefined), {});
});
