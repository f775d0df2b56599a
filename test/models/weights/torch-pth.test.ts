/**
 * torch.save reader against files PyTorch 1.13 wrote (test/fixtures/weights/make.py): plain and legacy state_dicts,
 * non-contiguous views and every dtype, wrapped training checkpoints, nn.Parameters, and hostile or damaged files.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unzipSync, zipSync } from 'fflate';
import {
  extractStateDict,
  loadTorchFile,
  parseTorchPth,
  stateDictMetadata,
  TorchTensor,
} from '../../../src/models/weights/torch-pth.js';
import { PyDict, PyOpaque } from '../../../src/models/weights/pickle.js';
import { DTYPE_SIZE, WeightFormatError, type StateDict } from '../../../src/models/weights/types.js';
import { compareStateDicts, detectWeightFormat, parseStateDict } from '../../../src/models/weights/state-dict.js';
import { assertTensorMatches, EXPECTED, fixture, type ExpectedTensor } from './expected.js';

function assertStateDict(sd: StateDict, want: Record<string, ExpectedTensor>, file: string): void {
  assert.deepEqual([...sd.keys()].sort(), Object.keys(want).sort(), `${file}: keys`);
  for (const [k, w] of Object.entries(want)) assertTensorMatches(sd.get(k), w, `${file} ${k}`);
}

describe('torch.save zip format', () => {
  it('reads a plain state_dict with int64 num_batches_tracked, in file order', () => {
    const sd = parseTorchPth(fixture('small.pth'), { source: 'small.pth' });
    assertStateDict(sd, EXPECTED['small.pth'], 'small.pth');
    // state_dict order as PyTorch iterates it (module order), not alphabetical
    assert.deepEqual([...sd.keys()].slice(0, 3), ['0.weight', '1.weight', '1.bias']);
    assert.equal(sd.get('1.num_batches_tracked')!.dtype, 'I64');
    assert.equal(detectWeightFormat(fixture('small.pth')), 'torch-zip');
  });

  it("keeps torchvision's _metadata attribute (BUILD on the OrderedDict)", () => {
    const { root } = loadTorchFile(fixture('small.pth'));
    assert.ok(root instanceof PyDict);
    const meta = stateDictMetadata(root);
    assert.ok(meta instanceof Map);
    assert.deepEqual([...meta.keys()].map(String).sort(), EXPECTED['small.pth#metadata_keys']);
  });

  it('materialises transposed, sliced, expanded and permuted views and every dtype exactly', () => {
    const sd = parseTorchPth(fixture('views.pth'), { source: 'views.pth' });
    assertStateDict(sd, EXPECTED['views.pth'], 'views.pth');
  });

  it('sees the strides and storage offsets PyTorch recorded (the views really are views)', () => {
    const { root } = loadTorchFile(fixture('views.pth'));
    assert.ok(root instanceof Map);
    for (const [k, stride] of Object.entries(EXPECTED['views.pth#strides'] as Record<string, number[]>)) {
      const t = root.get(k);
      assert.ok(t instanceof TorchTensor, k);
      assert.deepEqual(t.stride, stride, `${k} stride`);
      assert.equal(t.storageOffset, EXPECTED['views.pth#offsets'][k], `${k} offset`);
    }
    // transposed/sliced/row/column share one storage in the file
    const a = root.get('transposed') as TorchTensor;
    const b = root.get('sliced') as TorchTensor;
    assert.equal(a.storage, b.storage);
  });

  it('picks the state_dict out of a wrapped training checkpoint, or a named entry', () => {
    const bytes = fixture('wrapped.pth');
    const sd = parseTorchPth(bytes, { source: 'wrapped.pth' });
    assertStateDict(sd, EXPECTED['wrapped.pth'], 'wrapped.pth');
    const same = parseTorchPth(bytes, { key: 'state_dict' });
    assert.deepEqual(compareStateDicts(sd, same), []);
    // Nested optimiser state by dotted path: state -> 0 is keyed by an int in Python
    const { root } = loadTorchFile(bytes);
    const opt = (root as Map<unknown, unknown>).get('optimizer') as Map<unknown, unknown>;
    const state0 = (opt.get('state') as Map<unknown, unknown>).get(0) as Map<unknown, unknown>;
    const expAvg = state0.get('exp_avg');
    assert.ok(expAvg instanceof TorchTensor);
    assertTensorMatches(expAvg.toRaw(), EXPECTED['wrapped.pth#optimizer_exp_avg_0'], 'exp_avg');
    const groups = opt.get('param_groups') as Array<Map<unknown, unknown>>;
    assert.equal(groups[0]!.get('lr'), EXPECTED['wrapped.pth#lr']);
    assert.equal((root as Map<unknown, unknown>).get('epoch'), 3);
    assert.deepEqual((root as Map<unknown, unknown>).get('flags'), [true, null, 'x']);
  });

  it('errors clearly when the chosen entry is not a state_dict or does not exist', () => {
    const bytes = fixture('wrapped.pth');
    assert.throws(() => parseTorchPth(bytes, { key: 'nope', source: 'w.pth' }), (e: Error) => {
      assert.ok(e instanceof WeightFormatError);
      assert.match(e.message, /^w\.pth: no entry 'nope'.*it has: epoch, arch, state_dict, optimizer, best_acc, flags/);
      return true;
    });
    assert.throws(() => parseTorchPth(bytes, { key: 'optimizer', source: 'w.pth' }), /holds no tensors; its keys are: state, param_groups/);
    assert.throws(() => parseTorchPth(bytes, { key: 'epoch' }), /expected a state_dict .* but found a number/);
  });

  it('reads nn.Parameter entries (_rebuild_parameter)', () => {
    const { root } = loadTorchFile(fixture('parameter.pth'));
    const sd = extractStateDict(root);
    assertStateDict(sd, EXPECTED['parameter.pth'], 'parameter.pth');
    const first = (root as Map<unknown, unknown>).values().next().value;
    assert.ok(first instanceof TorchTensor, 'first entry is a tensor');
    assert.equal(first.isParameter, true);
    assert.equal(first.requiresGrad, true);
  });

  it('strips a DataParallel-style prefix when asked', () => {
    const sd = parseTorchPth(fixture('small.pth'), { stripPrefix: '1.' });
    assert.ok(sd.has('weight') && sd.has('running_mean') && sd.has('0.weight'));
  });

  it('returns contiguous float tensors as views into the file (no copy)', () => {
    const bytes = fixture('small.pth');
    const t = parseTorchPth(bytes).get('1.running_var')!;
    assert.equal(t.data.buffer, bytes.buffer);
  });
});

describe('other writers: big-endian storages, deflated archives', () => {
  it("honours byteorder 'big' and reads deflate-compressed entries", () => {
    // Re-pack small.pth as a big-endian machine would have written it, with every entry deflated.
    const original = fixture('small.pth');
    const files = unzipSync(original);
    const pkl = Object.keys(files).find((n) => n.endsWith('/data.pkl'))!;
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const { root } = loadTorchFile(original);
    const swapped = new Set<string>();
    for (const t of (root as Map<unknown, unknown>).values()) {
      const { key, dtype } = (t as TorchTensor).storage;
      if (swapped.has(key)) continue;
      swapped.add(key);
      const b = files[`${prefix}data/${key}`]!;
      const size = DTYPE_SIZE[dtype];
      for (let e = 0; e < b.length; e += size) b.subarray(e, e + size).reverse();
    }
    files[`${prefix}byteorder`] = new TextEncoder().encode('big');
    const repacked = zipSync(files, { level: 6 });
    assert.notDeepEqual(repacked.subarray(0, 64), original.subarray(0, 64));
    assert.deepEqual(compareStateDicts(parseTorchPth(repacked), parseTorchPth(original)), []);
  });
});

describe('legacy (torch < 1.6) format', () => {
  it('reads the same state_dict as the zip format', () => {
    const bytes = fixture('small_legacy.pth');
    assert.equal(detectWeightFormat(bytes), 'torch-legacy');
    const legacy = parseTorchPth(bytes, { source: 'small_legacy.pth' });
    assertStateDict(legacy, EXPECTED['small_legacy.pth'], 'small_legacy.pth');
    assert.deepEqual(compareStateDicts(legacy, parseTorchPth(fixture('small.pth'))), []);
  });

  it('reports a truncated legacy file', () => {
    const bytes = fixture('small_legacy.pth');
    assert.throws(() => parseTorchPth(bytes.subarray(0, bytes.length - 10), { source: 'old.pth' }), /old\.pth: legacy torch file truncated (inside|before) storage/);
  });
});

describe('tar format (torch < 0.1.10, torchvision resnet*-5c106cde-era weights)', () => {
  it('reads storages, storage views, non-contiguous tensors, int64 and f16 as torch.load does', () => {
    const bytes = fixture('old_tar.pth');
    assert.equal(detectWeightFormat(bytes), 'torch-tar');
    assert.equal(loadTorchFile(bytes).format, 'tar');
    const sd = parseStateDict(bytes, { source: 'old_tar.pth' });
    assert.deepEqual([...sd.keys()], ['w', 'wt', 'viewed', 'steps', 'half']);
    assertStateDict(sd, EXPECTED['old_tar.pth'], 'old_tar.pth');
  });

  it('a truncated or damaged tar names the file', () => {
    const bytes = fixture('old_tar.pth');
    assert.throws(() => parseTorchPth(bytes.subarray(0, 1500), { source: 'old.pth' }), /^WeightFormatError: old\.pth: /);
    const bad = Uint8Array.from(bytes);
    bad[0] ^= 0xff;
    assert.throws(() => parseTorchPth(bad, { source: 'old.pth' }), /old\.pth: tar archive: header checksum mismatch/);
  });
});

describe('safety: only whitelisted globals', () => {
  it('refuses os.system with a message naming it, and runs nothing', () => {
    assert.throws(
      () => parseTorchPth(fixture('evil.pth'), { source: 'evil.pth' }),
      (e: Error) => {
        assert.ok(e instanceof WeightFormatError);
        assert.match(e.message, /^evil\.pth: refusing to load global 'posix\.system'|^evil\.pth: refusing to load global 'os\.system'/);
        assert.match(e.message, /not on the whitelist/);
        return true;
      },
    );
  });

  it("in 'opaque' mode keeps os.system as an inert placeholder, and the tensors are still refused as mixed", () => {
    const { root } = loadTorchFile(fixture('evil.pth'), { unknownGlobals: 'opaque' });
    const payload = (root as Map<unknown, unknown>).get('payload');
    assert.ok(payload instanceof PyOpaque);
    assert.deepEqual(payload.args, ['echo you have been pwned']);
    assert.throws(() => extractStateDict(root), /mixes tensors with 1 non-tensor entries \(payload\)/);
  });

  it('refuses argparse.Namespace by default; opaque mode lets the model entry be read', () => {
    const bytes = fixture('namespace.pth');
    assert.throws(() => parseTorchPth(bytes), /refusing to load global 'argparse\.Namespace'/);
    const sd = parseTorchPth(bytes, { unknownGlobals: 'opaque' });
    assertStateDict(sd, EXPECTED['namespace.pth'], 'namespace.pth');
  });
});

describe('damaged and foreign files', () => {
  const small = fixture('small.pth');

  it('a truncated archive names the file and says truncated', () => {
    for (const cut of [100, Math.floor(small.length / 2), small.length - 30]) {
      assert.throws(() => parseTorchPth(small.subarray(0, cut), { source: 'cut.pth' }), (e: Error) => {
        assert.ok(e instanceof WeightFormatError, String(e));
        assert.match(e.message, /^cut\.pth: /);
        return true;
      });
    }
  });

  it('a storage missing from the archive is named', () => {
    // Rename entry 'small/data/0' in both headers so the pickle's reference dangles.
    const bad = Uint8Array.from(small);
    const text = new TextDecoder('latin1').decode(bad);
    const name = /[^/\0]+\/data\/0/.exec(text)![0];
    let at = -1;
    while ((at = text.indexOf(name, at + 1)) >= 0) bad[at + name.length - 1] = 0x58; // '0' -> 'X'
    assert.throws(() => parseTorchPth(bad, { source: 'm.pth' }), /m\.pth: storage '0' is missing from the archive/);
  });

  it('TorchScript archives and whole pickled modules are refused with what to do instead', () => {
    assert.throws(() => parseTorchPth(fixture('torchscript.pt'), { source: 'ts.pt' }), /ts\.pt: this is a TorchScript archive .*torch\.save\(model\.state_dict\(\), path\)/);
    assert.throws(() => parseTorchPth(fixture('whole_module.pth'), { source: 'm.pth' }), /m\.pth: refusing to load global 'torch\.nn\.modules\.linear\.Linear'.*torch\.save\(model\.state_dict\(\), path\)/);
  });

  it('wrong magic bytes give a clear "not a PyTorch file"', () => {
    assert.throws(() => parseTorchPth(new TextEncoder().encode('hello world, not a model'), { source: 'x.bin' }), /x\.bin: not a PyTorch file/);
    assert.throws(() => parseStateDict(new Uint8Array(0), { source: 'empty.bin' }), /empty\.bin: unrecognised weight file .*empty/);
  });

  it('a corrupted pickle opcode is reported, not crashed on', () => {
    const bad = Uint8Array.from(small);
    const text = new TextDecoder('latin1').decode(bad);
    const pkl = text.indexOf('\x80\x02'); // the pickle starts with PROTO 2
    bad[pkl + 2] = 0xff;
    assert.throws(() => parseTorchPth(bad, { source: 'p.pth' }), /p\.pth: unsupported or invalid pickle opcode 0xff/);
  });
});

/**
 * A minimal torch.save archive written by hand (pickle opcodes spelled out), for views PyTorch itself would never
 * write: negative strides, views past the end of their storage, storages shorter than declared.
 */
function handPth(v: { offset: number; size: number[]; stride: number[]; numel: number; storageBytes: number }): Uint8Array {
  const parts: number[] = [];
  const raw = (s: string): void => {
    for (const c of s) parts.push(c.charCodeAt(0));
  };
  const le32 = (n: number): void => {
    parts.push(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff);
  };
  const int = (n: number): void => {
    raw('J'); // BININT, signed 32-bit
    le32(n);
  };
  const str = (s: string): void => {
    raw('X'); // BINUNICODE: 32-bit length, UTF-8 (ASCII here)
    le32(s.length);
    raw(s);
  };
  const tuple = (xs: number[]): void => {
    raw('(');
    xs.forEach(int);
    raw('t');
  };
  raw('\x80\x02ccollections\nOrderedDict\n)R(');
  str('w');
  raw('ctorch._utils\n_rebuild_tensor_v2\n((');
  str('storage');
  raw('ctorch\nFloatStorage\n');
  str('0');
  str('cpu');
  int(v.numel);
  raw('tQ');
  int(v.offset);
  tuple(v.size);
  tuple(v.stride);
  raw('\x89)tRu.');
  return zipSync({ 'hand/data.pkl': Uint8Array.from(parts), 'hand/data/0': new Uint8Array(v.storageBytes), 'hand/version': new TextEncoder().encode('3\n') }, { level: 0 });
}

describe('views PyTorch would not write', () => {
  it('the hand-made archive reads when the view is sound (checks the helper itself)', () => {
    const sd = parseTorchPth(handPth({ offset: 1, size: [2, 2], stride: [1, 2], numel: 6, storageBytes: 24 }));
    assert.deepEqual(sd.get('w')!.shape, [2, 2]);
  });

  it('refuses negative strides and offsets, views past the storage, and short storages', () => {
    const bad = (v: Parameters<typeof handPth>[0], re: RegExp): void => {
      assert.throws(() => parseTorchPth(handPth(v), { source: 'h.pth' }), (e: Error) => {
        assert.ok(e instanceof WeightFormatError, String(e));
        assert.match(e.message, re);
        return true;
      });
    };
    bad({ offset: 0, size: [2], stride: [-1], numel: 4, storageBytes: 16 }, /^h\.pth: tensor with offset 0, size \[2\], stride \[-1\] has negative entries/);
    bad({ offset: -1, size: [2], stride: [1], numel: 4, storageBytes: 16 }, /negative entries/);
    bad({ offset: 1, size: [2, 2], stride: [2, 1], numel: 4, storageBytes: 16 }, /^h\.pth: tensor 'w': view \(offset 1, shape \[2, 2\], stride \[2, 1\]\) reaches element 4 but storage '0' holds 4 F32 elements/);
    bad({ offset: 0, size: [4], stride: [1], numel: 4, storageBytes: 12 }, /storage '0' has 12 bytes, fewer than 4 F32 elements need/);
  });
});
