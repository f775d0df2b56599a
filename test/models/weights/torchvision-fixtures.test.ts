/**
 * The shared torchvision fixtures (/work/shared/fixtures/torchvision): resnet18.pth (torch.save) and
 * resnet18.safetensors must give identical state_dicts, byte for byte, and every .safetensors must parse with
 * the parameter count torchvision reports in ARCH.json.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TORCHVISION_FIXTURES } from '../../helpers/paths.js';
import { readStateDict, readSafetensorsFile } from '../../../src/models/weights/files.js';
import { compareStateDicts } from '../../../src/models/weights/state-dict.js';
import { numel } from '../../../src/models/weights/types.js';

describe('torchvision fixtures', () => {
  it('resnet18.pth and resnet18.safetensors hold identical tensors (keys, dtypes, shapes, bytes)', async () => {
    const pth = await readStateDict(join(TORCHVISION_FIXTURES, 'resnet18.pth'));
    const st = await readStateDict(join(TORCHVISION_FIXTURES, 'resnet18.safetensors'));
    assert.equal(pth.size, 122); // 62 weights/biases + 20 BN layers x 3 buffers
    assert.deepEqual(compareStateDicts(pth, st), []);
    assert.deepEqual([...pth.keys()].sort(), [...st.keys()].sort());
    const nbt = pth.get('layer4.1.bn2.num_batches_tracked')!;
    assert.equal(nbt.dtype, 'I64');
    assert.deepEqual(nbt.shape, []);
    assert.deepEqual(pth.get('conv1.weight')!.shape, [64, 3, 7, 7]);
    assert.deepEqual(pth.get('fc.weight')!.shape, [1000, 512]);
  });

  for (const arch of ['resnet18', 'bottleneck_mini', 'densenet121']) {
    it(`${arch}.safetensors parses; trainable parameters add up to ARCH.json's count`, async () => {
      const path = join(TORCHVISION_FIXTURES, `${arch}.safetensors`);
      const { tensors } = await readSafetensorsFile(path);
      const meta = JSON.parse(readFileSync(join(TORCHVISION_FIXTURES, `${arch}.json`), 'utf8')) as { params: number };
      let params = 0;
      for (const [k, t] of tensors) {
        assert.ok(t.dtype === 'F32' || (t.dtype === 'I64' && k.endsWith('num_batches_tracked')), `${k}: ${t.dtype}`);
        // running statistics are buffers, not parameters (torchvision counts model.parameters())
        if (!/running_(mean|var)$|num_batches_tracked$/.test(k)) params += numel(t.shape);
      }
      assert.equal(params, meta.params);
    });
  }
});
