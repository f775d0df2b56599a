/**
 * The torchvision fixtures (small: test/fixtures/torchvision-small, always; large: ../shared/fixtures/torchvision,
 * when present): NAME.pth (torch.save) and NAME.safetensors must give identical state_dicts, byte for byte, and
 * every .safetensors must parse with the parameter count torchvision reports in NAME.json.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { readStateDict, readSafetensorsFile } from '../../../src/models/weights/files.js';
import { compareStateDicts } from '../../../src/models/weights/state-dict.js';
import { numel } from '../../../src/models/weights/types.js';
import { SHARED_FIXTURES_SKIP } from '../../helpers/paths.js';
import { BASIC_NARROW, LARGE_FIXTURE_SET, RESNET18, SMALL_FIXTURE_SET, fixturePath, type TorchvisionFixture } from '../../helpers/torchvision.js';

describe('torchvision fixtures', () => {
  it('basic_narrow.pth and basic_narrow.safetensors hold identical tensors (keys, dtypes, shapes, bytes)', async () => {
    const pth = await readStateDict(fixturePath(BASIC_NARROW, 'basic_narrow.pth'));
    const st = await readStateDict(fixturePath(BASIC_NARROW, 'basic_narrow.safetensors'));
    assert.equal(pth.size, 86); // 44 weights/biases (14 convs, 14 BN x 2, fc x 2) + 14 BN layers x 3 buffers
    assert.deepEqual(compareStateDicts(pth, st), []);
    assert.deepEqual([...pth.keys()].sort(), [...st.keys()].sort());
    const nbt = pth.get('layer4.0.bn2.num_batches_tracked')!;
    assert.equal(nbt.dtype, 'I64');
    assert.deepEqual(nbt.shape, []);
    assert.deepEqual(pth.get('conv1.weight')!.shape, [8, 3, 7, 7]);
    assert.deepEqual(pth.get('fc.weight')!.shape, [10, 64]);
  });

  paramCountTests(SMALL_FIXTURE_SET);

  describe('large torchvision fixtures (../shared/fixtures/torchvision)', { skip: SHARED_FIXTURES_SKIP }, () => {
    it('resnet18.pth and resnet18.safetensors hold identical tensors (keys, dtypes, shapes, bytes)', async () => {
      const pth = await readStateDict(fixturePath(RESNET18, 'resnet18.pth'));
      const st = await readStateDict(fixturePath(RESNET18, 'resnet18.safetensors'));
      assert.equal(pth.size, 122); // 62 weights/biases + 20 BN layers x 3 buffers
      assert.deepEqual(compareStateDicts(pth, st), []);
      assert.deepEqual([...pth.keys()].sort(), [...st.keys()].sort());
      const nbt = pth.get('layer4.1.bn2.num_batches_tracked')!;
      assert.equal(nbt.dtype, 'I64');
      assert.deepEqual(nbt.shape, []);
      assert.deepEqual(pth.get('conv1.weight')!.shape, [64, 3, 7, 7]);
      assert.deepEqual(pth.get('fc.weight')!.shape, [1000, 512]);
    });
    paramCountTests(LARGE_FIXTURE_SET);
  });
});

function paramCountTests(set: readonly TorchvisionFixture[]): void {
  for (const fx of set) {
    it(`${fx.name}.safetensors (${fx.size}) parses; trainable parameters add up to NAME.json's count`, async () => {
      const { tensors } = await readSafetensorsFile(fixturePath(fx, `${fx.name}.safetensors`));
      const meta = JSON.parse(readFileSync(fixturePath(fx, `${fx.name}.json`), 'utf8')) as { params: number };
      let params = 0;
      for (const [k, t] of tensors) {
        assert.ok(t.dtype === 'F32' || (t.dtype === 'I64' && k.endsWith('num_batches_tracked')), `${k}: ${t.dtype}`);
        // running statistics are buffers, not parameters (torchvision counts model.parameters())
        if (!/running_(mean|var)$|num_batches_tracked$/.test(k)) params += numel(t.shape);
      }
      assert.equal(params, meta.params);
    });
  }
}
