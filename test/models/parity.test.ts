/**
 * torchvision parity: the shared fixtures hold random torchvision weights and the logits torchvision 0.14 itself
 * computed from them (see /work/shared/fixtures/torchvision/README.md). Our builders + importer must reproduce
 * them to 1e-4 relative error (max |ours - torch| / max |torch|), for a BasicBlock ResNet (from .safetensors and
 * from .pth), a Bottleneck ResNet with downsample branches, and DenseNet-121. Also: no tensors leak.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initEngine, tf } from '../../src/engine/index.js';
import { buildResNet, createCustomModel, createModel, type NetworkModel } from '../../src/models/index.js';
import { readNpyFile, readStateDict } from '../../src/models/weights/files.js';
import { TORCHVISION_FIXTURES } from '../helpers/paths.js';

before(async () => {
  await initEngine();
});

async function checkParity(name: string, weightsFile: string, model: Pick<NetworkModel, 'loadStateDict' | 'forward' | 'dispose'>) {
  const sd = await readStateDict(join(TORCHVISION_FIXTURES, weightsFile));
  const report = model.loadStateDict(sd);
  assert.equal(report.loaded.length, sd.size, 'every checkpoint tensor was loaded');
  assert.deepEqual([report.missing, report.unexpected, report.mismatched], [[], [], []]);

  const input = await readNpyFile(join(TORCHVISION_FIXTURES, `${name}.input.npy`));
  const want = await readNpyFile(join(TORCHVISION_FIXTURES, `${name}.logits.npy`));
  assert.deepEqual(input.shape, [2, 3, 64, 64]);
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

test('resnet18 (BasicBlock) from .safetensors matches torchvision logits', async () => {
  await checkParity('resnet18', 'resnet18.safetensors', createModel('resnet18', { init: 'none' }));
});

test('resnet18 from a torch.save .pth matches torchvision logits', async () => {
  await checkParity('resnet18', 'resnet18.pth', createModel('resnet18', { init: 'none' }));
});

test('ResNet(Bottleneck, [1, 1, 1, 1]) (resnet50/101/152 blocks, downsample.0/.1) matches torchvision logits', async () => {
  const model = createCustomModel('bottleneck_mini', (h) => buildResNet({ block: 'bottleneck', layers: [1, 1, 1, 1] }, h), {
    init: 'none',
  });
  await checkParity('bottleneck_mini', 'bottleneck_mini.safetensors', model);
});

test('densenet121 matches torchvision logits', async () => {
  await checkParity('densenet121', 'densenet121.safetensors', createModel('densenet121', { init: 'none' }));
});
