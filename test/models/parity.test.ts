/**
 * torchvision parity: the fixtures hold random torchvision weights and the logits torchvision 0.14 itself computed
 * from them. The small in-repo ones (test/fixtures/torchvision-small, made by its make.py: narrow networks of
 * torchvision's own BasicBlock/Bottleneck/DenseNet types) always run; the large ones in ../shared (resnet18,
 * ResNet(Bottleneck, [1, 1, 1, 1]), densenet121 at torchvision widths) run when present. Our builders + importer must
 * reproduce them to 1e-4 relative error (max |ours - torch| / max |torch|), from .safetensors and from a torch.save
 * .pth. Also: no tensors leak.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/engine/index.js';
import type { NetworkModel } from '../../src/models/index.js';
import { readNpyFile, readStateDict } from '../../src/models/weights/files.js';
import { SHARED_FIXTURES_SKIP } from '../helpers/paths.js';
import { LARGE_FIXTURE_SET, SMALL_FIXTURE_SET, fixturePath, type TorchvisionFixture } from '../helpers/torchvision.js';

before(async () => {
  await initEngine();
});

async function checkParity(fx: TorchvisionFixture, weightsFile: string, model: Pick<NetworkModel, 'loadStateDict' | 'forward' | 'dispose'>) {
  const name = fx.name;
  const sd = await readStateDict(fixturePath(fx, weightsFile));
  const report = model.loadStateDict(sd);
  assert.equal(report.loaded.length, sd.size, 'every checkpoint tensor was loaded');
  assert.deepEqual([report.missing, report.unexpected, report.mismatched], [[], [], []]);

  const input = await readNpyFile(fixturePath(fx, `${name}.input.npy`));
  const want = await readNpyFile(fixturePath(fx, `${name}.logits.npy`));
  assert.deepEqual(input.shape, [2, 3, 64, 64]);
  assert.deepEqual(want.shape, [2, fx.numClasses]);
  // Warm-up: the first inference folds each batch norm into its convolution and keeps the result (nn.ts convBn),
  // so leaks are measured from the second call on: repeated calls must not grow the tensor count.
  tf.tidy(() => model.forward(tf.zeros([1, 64, 64, 3]) as tf.Tensor4D, false));
  const before = tf.memory().numTensors;
  const logits = tf.tidy(() => {
    const nchw = tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number]);
    return model.forward(tf.transpose(nchw, [0, 2, 3, 1]), false);
  });
  assert.deepEqual(logits.shape, want.shape);
  const got = logits.dataSync();
  logits.dispose();
  assert.equal(tf.memory().numTensors, before, 'forward leaks no tensors');

  const ref = want.data as Float32Array;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!));
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
  }
  const rel = maxDiff / maxRef;
  assert.ok(rel < 1e-4, `${name} from ${weightsFile}: relative error ${rel} >= 1e-4`);
  model.dispose();
}

function parityTests(set: readonly TorchvisionFixture[]): void {
  for (const fx of set) {
    for (const w of fx.weights) {
      test(`${fx.name} (${fx.size}) from ${w} matches torchvision logits`, async () => {
        await checkParity(fx, w, fx.build());
      });
    }
  }
}

parityTests(SMALL_FIXTURE_SET);
describe('large torchvision fixtures (../shared/fixtures/torchvision)', { skip: SHARED_FIXTURES_SKIP }, () => parityTests(LARGE_FIXTURE_SET));
