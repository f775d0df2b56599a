/**
 * The ONNX export straight from a state_dict (what `nextray forward` runs) against the export from a live TF.js model
 * (createModel + loadStateDict + exportOnnx), on torchvision's own weights and logits (the parity fixtures: BasicBlock
 * and Bottleneck ResNets, a DenseNet; the large ones when ../shared is present): the two files are byte for byte the
 * same (same graph, same folded weights), and ONNX Runtime gives torchvision's logits from it to 1e-4 relative, with
 * the NCHW input and symbolic size forward uses. Scaling the kernels in place and writing the file over the weights' buffer (`consume`) changes only the order of
 * the initializers: the same size and the same logits bit for bit.
 * Fails on a kernel left HWIO/transposed, a BatchNorm folded twice or not at all, a Linear kernel not transposed.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine } from '../../../src/engine/index.js';
import { StateDictMismatchError } from '../../../src/models/index.js';
import { exportNetworkFromStateDict, exportOnnx } from '../../../src/models/onnx/export.js';
import { readNpyFile, readStateDict } from '../../../src/models/weights/files.js';
import { OnnxClassifier } from '../../../src/inference/node/onnx-session.js';
import { ALL_FIXTURES, fixturePath, type TorchvisionFixture } from '../../helpers/torchvision.js';

before(async () => {
  await initEngine('cpu');
});

const OPTS = { inputSize: 64, inputLayout: 'nchw', dynamicSize: true } as const;

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.byteLength, b.byteLength, `${what}: file sizes`);
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) assert.fail(`${what}: first difference at byte ${i}`);
}

async function check(fx: TorchvisionFixture): Promise<void> {
  const file = fixturePath(fx, fx.weights[0]!);
  const model = fx.build();
  let viaTfjs: Uint8Array;
  try {
    model.loadStateDict(await readStateDict(file), { strict: true });
    viaTfjs = exportOnnx(model, OPTS).toBytes();
  } finally {
    model.dispose();
  }
  const spec = fx.build();
  const direct = exportNetworkFromStateDict(spec.network, spec.arch, await readStateDict(file), { ...OPTS, head: 'imagenet', numClasses: fx.numClasses }).toBytes();
  const consumedSd = await readStateDict(file);
  const consumed = exportNetworkFromStateDict(spec.network, spec.arch, consumedSd, { ...OPTS, head: 'imagenet', numClasses: fx.numClasses, consume: true }).toBytes();
  spec.dispose();
  sameBytes(direct, viaTfjs, `${fx.name}: state_dict export vs TF.js export`);
  // The in-place export writes the same initializers over the buffer the .pth was read into, in that buffer's
  // order: the same size, and (below) the same logits bit for bit.
  assert.equal(consumed.byteLength, direct.byteLength, `${fx.name}: in-place export size`);
  // A ResNet's kernels are moved down within the .pth's buffer; a DenseNet keeps BatchNorm parameters the .pth
  // stores before their place, so its export is copied (both are right; the ResNets must reuse the buffer).
  if (!fx.name.startsWith('densenet')) assert.ok(consumed.buffer === consumedSd.values().next().value!.data.buffer, `${fx.name}: the in-place export reuses the weights' buffer`);

  const input = await readNpyFile(fixturePath(fx, `${fx.name}.input.npy`));
  const want = (await readNpyFile(fixturePath(fx, `${fx.name}.logits.npy`))).data as Float32Array;
  const [n, , h, w] = input.shape as [number, number, number, number];
  const clf = await OnnxClassifier.create(direct, { threads: 1 });
  try {
    const got = (await clf.run(input.data as Float32Array, n, { size: [h, w] })).logits;
    let diff = 0;
    let ref = 0;
    for (let i = 0; i < want.length; i++) {
      diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
      ref = Math.max(ref, Math.abs(want[i]!));
    }
    assert.ok(diff / ref < 1e-4, `${fx.name}: relative error ${diff / ref} against torchvision`);
    const inPlace = await OnnxClassifier.create(consumed, { threads: 1 });
    try {
      const again = (await inPlace.run(input.data as Float32Array, n, { size: [h, w] })).logits;
      for (let i = 0; i < got.length; i++) if (!Object.is(again[i], got[i])) assert.fail(`${fx.name}: in-place export logit ${i}: ${again[i]} vs ${got[i]}`);
    } finally {
      await inPlace.release();
    }
  } finally {
    await clf.release();
  }
}

for (const fx of ALL_FIXTURES) {
  test(`${fx.name} (${fx.size}): the export from the state_dict is the TF.js export's file and gives torchvision's logits`, { skip: fx.skip }, async () => {
    await check(fx);
  });
}

test('a state_dict that does not fit the network is refused like loadStateDict refuses it', async () => {
  const fx = ALL_FIXTURES[0]!;
  const sd = await readStateDict(fixturePath(fx, fx.weights[0]!));
  const key = [...sd.keys()].find((k) => k.endsWith('conv1.weight'))!;
  sd.delete(key);
  const spec = fx.build();
  try {
    assert.throws(() => exportNetworkFromStateDict(spec.network, spec.arch, sd, { ...OPTS, head: 'imagenet', numClasses: fx.numClasses }), (e: unknown) => e instanceof StateDictMismatchError && e.message.includes(key));
  } finally {
    spec.dispose();
  }
});
