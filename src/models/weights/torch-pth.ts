/**
 * Reader for PyTorch `torch.save` files, without Python and without running any code from the file.
 *
 * Zip format (torch >= 1.6, the default): `<archive>/data.pkl` is a pickle whose tensors refer to raw storages
 * `<archive>/data/<key>` through persistent ids; `<archive>/byteorder` (newer torch) says "little" or "big".
 * Legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`): several pickles back to back followed by
 * the storages, each as an int64 element count and raw bytes.
 * Tar format (torch < 0.1.10, in which torchvision's original ImageNet weights such as resnet152-b121ed2d.pth are
 * published): members `storages`, `tensors` and `pickle`. All three are read.
 *
 * Tensors are rebuilt from (storage, offset, size, stride) exactly as `torch._utils._rebuild_tensor_v2` does, with
 * non-contiguous views materialised into dense row-major arrays; contiguous little-endian tensors stay views into
 * the file bytes.
 */
import { allocTyped, typedFromBytes } from './dtype.js';
import { BASIC_GLOBALS, describe, GlobalRef, PickleError, PyDict, PyOpaque, Unpickler, type GlobalHandler } from './pickle.js';
import { DTYPE_SIZE, numel, WeightFormatError, type DType, type RawTensor, type StateDict } from './types.js';
import { isTar, readTar } from './tar.js';
import { isZip, openZip } from './zip.js';

/** torch storage class -> element type. */
const STORAGE_DTYPES: Record<string, DType> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** A storage type as it appears in a pickle (the global `torch.FloatStorage` etc.). */
class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: DType,
  ) {}
}

/** One raw storage: its bytes become known at once (zip) or after the main pickle (legacy). */
export class Storage {
  bytes: Uint8Array | null = null;
  constructor(
    readonly key: string,
    readonly dtype: DType,
    /** Element count declared by the pickle (the file's count is checked against it). */
    readonly numel: number,
    readonly bigEndian: boolean,
  ) {}
}

/**
 * A tensor as pickled: a strided view of a storage. Kept lazy so the legacy format, whose storage bytes follow
 * the pickle, works; `toRaw()` materialises it.
 */
export class TorchTensor {
  constructor(
    readonly storage: Storage,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    public requiresGrad: boolean,
    /** True when it was pickled as an nn.Parameter. */
    public isParameter = false,
  ) {}

  get dtype(): DType {
    return this.storage.dtype;
  }

  /** The dense row-major tensor (a view into the file bytes when contiguous and aligned). */
  toRaw(source = '<bytes>', name?: string): RawTensor {
    const fail = (msg: string): never => {
      throw new WeightFormatError(source, msg, name);
    };
    const s = this.storage;
    if (!s.bytes) return fail(`storage '${s.key}' has no data in the file`);
    const size = DTYPE_SIZE[s.dtype];
    const storageNumel = Math.floor(s.bytes.byteLength / size);
    const n = numel(this.shape);
    const dtype = s.dtype;
    if (n === 0) return { dtype, shape: [...this.shape], data: allocTyped(dtype, 0) } as RawTensor;
    // Highest element index the view touches; torch strides are never negative.
    let last = this.storageOffset;
    for (let i = 0; i < this.shape.length; i++) last += (this.shape[i]! - 1) * this.stride[i]!;
    if (this.storageOffset < 0 || last >= storageNumel) {
      fail(
        `view (offset ${this.storageOffset}, shape [${this.shape.join(', ')}], stride [${this.stride.join(', ')}]) ` +
          `reaches element ${last} but storage '${s.key}' holds ${storageNumel} ${dtype} elements`,
      );
    }
    if (isContiguous(this.shape, this.stride)) {
      const bytes = s.bytes.subarray(this.storageOffset * size, (this.storageOffset + n) * size);
      return { dtype, shape: [...this.shape], data: typedFromBytes(dtype, bytes, n, { bigEndian: s.bigEndian }) } as RawTensor;
    }
    // Non-contiguous (transposed, sliced, expanded): gather element by element in row-major order.
    const src = typedFromBytes(dtype, s.bytes, storageNumel, { bigEndian: s.bigEndian }) as unknown as ArrayLike<unknown>;
    const out = allocTyped(dtype, n) as unknown as Record<number, unknown>;
    const rank = this.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let off = this.storageOffset;
    for (let i = 0; i < n; i++) {
      out[i] = src[off];
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]!++;
        off += this.stride[d]!;
        if (idx[d]! < this.shape[d]!) break;
        off -= this.stride[d]! * this.shape[d]!;
        idx[d] = 0;
      }
    }
    return { dtype, shape: [...this.shape], data: out } as unknown as RawTensor;
  }
}

/** Row-major contiguity as torch defines it: strides of size-1 dimensions do not matter. */
function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

function intList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) {
    throw new PickleError(`${what} is not a tuple of integers (${describe(v)})`);
  }
  return v as number[];
}

function rebuildTensorV2(args: unknown[]): TorchTensor {
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof Storage)) throw new PickleError(`_rebuild_tensor_v2: first argument is ${describe(storage)}, not a storage`);
  if (typeof offset !== 'number') throw new PickleError('_rebuild_tensor_v2: storage offset is not an integer');
  const shape = intList(size, 'tensor size');
  const strides = intList(stride, 'tensor stride');
  if (shape.length !== strides.length) throw new PickleError(`tensor size [${shape}] and stride [${strides}] differ in rank`);
  // torch never writes negative sizes, strides or offsets; a file that does is corrupt (and could read out of bounds).
  if (offset < 0 || shape.some((d) => d < 0) || strides.some((d) => d < 0)) {
    throw new PickleError(`tensor with offset ${offset}, size [${shape}], stride [${strides}] has negative entries`);
  }
  return new TorchTensor(storage, offset, [...shape], [...strides], requiresGrad === true);
}

function asParameter(args: unknown[]): unknown {
  const [t, requiresGrad] = args;
  if (t instanceof TorchTensor) {
    t.isParameter = true;
    t.requiresGrad = requiresGrad === true;
  }
  return t;
}

/** The whitelist: plain containers plus torch's tensor and storage rebuild functions, reimplemented here. */
function torchGlobals(): Record<string, GlobalHandler> {
  const g: Record<string, GlobalHandler> = { ...BASIC_GLOBALS };
  g['torch._utils._rebuild_tensor_v2'] = { call: rebuildTensorV2 };
  g['torch._utils._rebuild_tensor'] = { call: (a) => rebuildTensorV2([...a, false]) }; // (storage, offset, size, stride)
  g['torch._utils._rebuild_parameter'] = { call: asParameter }; // (data, requires_grad, hooks)
  g['torch._utils._rebuild_parameter_with_state'] = { call: asParameter }; // (data, requires_grad, hooks, state)
  // torch >= 1.12 pickles tensor subclasses (and Parameters in some paths) through _rebuild_from_type_v2(func,
  // type, args, state): func is itself a whitelisted global, already resolved, so only call its handler.
  g['torch._tensor._rebuild_from_type_v2'] = {
    call(a) {
      const [fn, , fnArgs] = a;
      const h = fn instanceof GlobalRef ? fn.handler : null;
      if (!h || !Array.isArray(fnArgs)) throw new PickleError('_rebuild_from_type_v2: function is not whitelisted');
      return h.call(fnArgs);
    },
  };
  const marker = (what: string): GlobalHandler => ({
    call: () => {
      throw new PickleError(`${what} cannot be constructed here`);
    },
  });
  g['torch.nn.parameter.Parameter'] = marker('torch.nn.parameter.Parameter');
  g['torch.Tensor'] = marker('torch.Tensor');
  g['torch.Size'] = { call: (a) => intList(a[0], 'torch.Size') };
  g['torch.device'] = { call: (a) => a.map(String).join(':') };
  // Storage types torch has but this reader does not (complex, quantised): a clear message, not a security refusal.
  for (const name of ['ComplexFloatStorage', 'ComplexDoubleStorage', 'QInt8Storage', 'QUInt8Storage', 'QInt32Storage', 'QUInt4x2Storage', 'QUInt2x4Storage']) {
    g[`torch.${name}`] = {
      call: () => {
        throw new PickleError(
          `storage type torch.${name} is not supported (supported: ${Object.keys(STORAGE_DTYPES).map((n) => `torch.${n}`).join(', ')})`,
        );
      },
    };
  }
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    const st = new StorageType(name, dtype);
    g[`torch.${name}`] = { call: () => st };
    // Files saved from GPU tensors by old torch name CUDA storage types; the bytes are the same.
    g[`torch.cuda.${name}`] = { call: () => st };
    // The tar format records each tensor's class (torch.FloatTensor, ...) but only as a label.
    const tensorClass = name.replace(/Storage$/, 'Tensor');
    g[`torch.${tensorClass}`] = marker(`torch.${tensorClass}`);
    g[`torch.cuda.${tensorClass}`] = marker(`torch.cuda.${tensorClass}`);
  }
  return g;
}

/** The storage types are referenced as classes, not called, so GLOBAL must yield the type itself. */
function storageTypeOf(ref: unknown): StorageType {
  if (ref instanceof GlobalRef) {
    const t = ref.handler?.call([]);
    if (t instanceof StorageType) return t;
    throw new PickleError(`persistent id names ${ref.module}.${ref.name}, not a torch storage type`);
  }
  if (ref instanceof PyOpaque) {
    throw new PickleError(
      `storage type ${ref.qualifiedName} is not supported (supported: ${Object.keys(STORAGE_DTYPES).map((n) => `torch.${n}`).join(', ')})`,
    );
  }
  throw new PickleError(`persistent id has ${describe(ref)} where a torch storage type belongs`);
}

export interface TorchLoadOptions {
  /** Name used in error messages (a file path). */
  source?: string;
  /**
   * Non-whitelisted globals: 'refuse' (default) throws; 'opaque' keeps inert placeholders (safe, nothing runs),
   * useful for training checkpoints that also pickled optimiser schedulers, argparse namespaces or numpy scalars.
   */
  unknownGlobals?: 'refuse' | 'opaque';
}

/** The whole unpickled object of a torch file: tensors are TorchTensor, dicts PyDict. */
export interface TorchFile {
  root: unknown;
  format: 'zip' | 'legacy' | 'tar';
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** True for the pickle-stream format of torch < 1.6 (`\x80\x02\x8a\x0a` + the magic number). */
export function isLegacyTorch(bytes: Uint8Array): boolean {
  const sig = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
  return bytes.byteLength >= sig.length && sig.every((b, i) => bytes[i] === b);
}

function wrapPickleError(source: string, err: unknown): never {
  if (err instanceof PickleError) throw new WeightFormatError(source, err.message);
  throw err;
}

/** Unpickle a torch.save file (zip or legacy) into its object tree, tensors left lazy. */
export function loadTorchFile(bytes: Uint8Array, opts: TorchLoadOptions = {}): TorchFile {
  const source = opts.source ?? '<bytes>';
  if (isZip(bytes)) return { root: loadZip(bytes, source, opts), format: 'zip' };
  if (isLegacyTorch(bytes)) return { root: loadLegacy(bytes, source, opts), format: 'legacy' };
  if (isTar(bytes)) return { root: loadTar(bytes, source, opts), format: 'tar' };
  throw new WeightFormatError(source, 'not a PyTorch file: neither a torch.save zip archive nor a legacy (pickle or tar) one');
}

/** Read `count` little-endian int64 values at `pos` as safe integers. */
function int64s(dv: DataView, pos: number, count: number, what: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = dv.getBigInt64(pos + 8 * i, true);
    if (v < BigInt(Number.MIN_SAFE_INTEGER) || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError(`${what} out of range`);
    out.push(Number(v));
  }
  return out;
}

/**
 * The tar format of PyTorch < 0.1.10 (torchvision's original ImageNet weights): members `storages` (a count, then
 * per storage a pickled (key, location, storage type), an int64 element count and the raw bytes, then a pickled
 * list of storage views), `tensors` (a count, then per tensor a pickled (key, storage key, tensor type) and binary
 * ndim, sizes, strides, offset) and `pickle`, whose persistent ids are tensor keys. Mirrors torch's legacy_load.
 */
function loadTar(bytes: Uint8Array, source: string, opts: TorchLoadOptions): unknown {
  const files = readTar(bytes, source);
  for (const m of ['storages', 'tensors', 'pickle']) {
    if (!files.has(m)) throw new WeightFormatError(source, `tar archive without '${m}': not a torch.save file`);
  }
  const globals = torchGlobals();
  try {
    let bigEndian = false;
    const sysInfo = files.get('sys_info');
    if (sysInfo) {
      const info = new Unpickler(sysInfo, { globals: BASIC_GLOBALS }).load();
      if (info instanceof Map) bigEndian = info.get('little_endian') === false;
    }
    if (bigEndian) throw new PickleError('big-endian tar-format torch files are not supported');

    const storages = new Map<string, Storage>();
    const sb = files.get('storages')!;
    const sdv = new DataView(sb.buffer, sb.byteOffset, sb.byteLength);
    let u = new Unpickler(sb, { globals: BASIC_GLOBALS });
    const numStorages = u.load();
    if (typeof numStorages !== 'number') throw new PickleError('storage count missing');
    let pos = u.pos;
    for (let i = 0; i < numStorages; i++) {
      u = new Unpickler(sb, { globals }, pos);
      const rec = u.load();
      if (!Array.isArray(rec) || rec.length !== 3) throw new PickleError(`storage record ${i} is not (key, location, type)`);
      const key = String(rec[0]);
      const type = storageTypeOf(rec[2]);
      pos = u.pos;
      if (pos + 8 > sb.byteLength) throw new PickleError(`tar 'storages' truncated before storage '${key}'`);
      const [count] = int64s(sdv, pos, 1, `storage '${key}' size`);
      pos += 8;
      const nbytes = count! * DTYPE_SIZE[type.dtype];
      if (count! < 0 || pos + nbytes > sb.byteLength) throw new PickleError(`tar 'storages' truncated inside storage '${key}'`);
      const st = new Storage(key, type.dtype, count!, false);
      st.bytes = sb.subarray(pos, pos + nbytes);
      storages.set(key, st);
      pos += nbytes;
    }
    const views = new Unpickler(sb, { globals: BASIC_GLOBALS }, pos).load();
    if (!Array.isArray(views)) throw new PickleError('storage view list missing');
    for (const v of views) {
      if (!Array.isArray(v) || v.length !== 4) throw new PickleError('storage view is not (target, root, offset, numel)');
      const [target, rootKey, offset, count] = v as [unknown, unknown, number, number];
      const root = storages.get(String(rootKey));
      if (!root?.bytes) throw new PickleError(`storage view of unknown storage '${String(rootKey)}'`);
      const size = DTYPE_SIZE[root.dtype];
      if (offset < 0 || count < 0 || (offset + count) * size > root.bytes.byteLength) {
        throw new PickleError(`storage view '${String(target)}' [${offset}, +${count}) exceeds storage '${root.key}'`);
      }
      const st = new Storage(String(target), root.dtype, count, false);
      st.bytes = root.bytes.subarray(offset * size, (offset + count) * size);
      storages.set(st.key, st);
    }

    const tensors = new Map<string, TorchTensor>();
    const tb = files.get('tensors')!;
    const tdv = new DataView(tb.buffer, tb.byteOffset, tb.byteLength);
    u = new Unpickler(tb, { globals: BASIC_GLOBALS });
    const numTensors = u.load();
    if (typeof numTensors !== 'number') throw new PickleError('tensor count missing');
    pos = u.pos;
    for (let i = 0; i < numTensors; i++) {
      u = new Unpickler(tb, { globals }, pos);
      const rec = u.load();
      if (!Array.isArray(rec) || rec.length !== 3) throw new PickleError(`tensor record ${i} is not (key, storage key, type)`);
      const key = String(rec[0]);
      const storage = storages.get(String(rec[1]));
      if (!storage) throw new PickleError(`tensor '${key}' refers to unknown storage '${String(rec[1])}'`);
      pos = u.pos;
      if (pos + 8 > tb.byteLength) throw new PickleError(`tar 'tensors' truncated at tensor '${key}'`);
      const ndim = tdv.getInt32(pos, true);
      pos += 8; // int32 ndim, then 4 bytes legacy padding
      if (ndim < 0 || ndim > 64 || pos + 16 * ndim + 8 > tb.byteLength) throw new PickleError(`tar 'tensors' damaged at tensor '${key}'`);
      const shape = int64s(tdv, pos, ndim, 'tensor size');
      const stride = int64s(tdv, pos + 8 * ndim, ndim, 'tensor stride');
      const [offset] = int64s(tdv, pos + 16 * ndim, 1, 'storage offset');
      pos += 16 * ndim + 8;
      tensors.set(key, rebuildTensorV2([storage, offset, shape, stride, false]));
    }

    const persistentLoad = (pid: unknown): unknown => {
      if (Array.isArray(pid)) {
        throw new PickleError('the file pickles a whole nn.Module (its source code), not a state_dict; re-save model.state_dict()');
      }
      const t = tensors.get(String(pid));
      if (!t) throw new PickleError(`pickle refers to unknown tensor '${String(pid)}'`);
      return t;
    };
    return new Unpickler(files.get('pickle')!, { globals, persistentLoad, unknownGlobals: opts.unknownGlobals }).load();
  } catch (err) {
    return wrapPickleError(source, err);
  }
}

function loadZip(bytes: Uint8Array, source: string, opts: TorchLoadOptions): unknown {
  const zip = openZip(bytes, source);
  const pkl = [...zip.entries.keys()].find((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) {
    const names = [...zip.entries.keys()];
    if (names.some((n) => n.endsWith('.npy'))) {
      throw new WeightFormatError(source, 'this is a NumPy .npz archive, not a torch.save file (use parseNpz)');
    }
    throw new WeightFormatError(source, `ZIP archive without data.pkl: not a torch.save file (entries: ${names.slice(0, 5).join(', ')})`);
  }
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  if (zip.entries.has(`${prefix}constants.pkl`) || [...zip.entries.keys()].some((n) => n.startsWith(`${prefix}code/`))) {
    throw new WeightFormatError(
      source,
      'this is a TorchScript archive (torch.jit.save), which holds code, not a state_dict; ' +
        'save the weights with torch.save(model.state_dict(), path) instead',
    );
  }
  let bigEndian = false;
  if (zip.entries.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
    if (order !== 'little' && order !== 'big') throw new WeightFormatError(source, `unknown byteorder '${order}'`);
    bigEndian = order === 'big';
  }
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): unknown => {
    // ('storage', storage_type, key, location, numel)
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new PickleError(`unsupported persistent id ${describe(pid)}; expected ('storage', type, key, location, numel)`);
    }
    const type = storageTypeOf(pid[1]);
    const key = String(pid[2]);
    const count = pid[4];
    if (typeof count !== 'number') throw new PickleError(`storage '${key}': element count is not an integer`);
    let st = storages.get(key);
    if (st) return st;
    st = new Storage(key, type.dtype, count, bigEndian);
    const entry = `${prefix}data/${key}`;
    if (!zip.entries.has(entry)) throw new PickleError(`storage '${key}' is missing from the archive (no ${entry})`);
    const data = zip.read(entry);
    if (data.byteLength < count * DTYPE_SIZE[type.dtype]) {
      throw new PickleError(`storage '${key}' has ${data.byteLength} bytes, fewer than ${count} ${type.dtype} elements need`);
    }
    st.bytes = data;
    storages.set(key, st);
    return st;
  };
  try {
    return new Unpickler(zip.read(pkl), { globals: torchGlobals(), persistentLoad, unknownGlobals: opts.unknownGlobals }).load();
  } catch (err) {
    return wrapPickleError(source, err);
  }
}

function loadLegacy(bytes: Uint8Array, source: string, opts: TorchLoadOptions): unknown {
  const plain = (u: Unpickler): unknown => u.load();
  try {
    const header = new Unpickler(bytes, { globals: BASIC_GLOBALS });
    const magic = plain(header);
    if (BigInt(magic as number | bigint) !== LEGACY_MAGIC) throw new PickleError('bad legacy torch magic number');
    const protocol = plain(header);
    if (protocol !== 1001) throw new PickleError(`unsupported legacy torch protocol version ${String(protocol)}`);
    const sysInfo = plain(header);
    let bigEndian = false;
    if (sysInfo instanceof Map) {
      bigEndian = sysInfo.get('little_endian') === false;
      const sizes = sysInfo.get('type_sizes');
      if (sizes instanceof Map && sizes.get('long') !== undefined && sizes.get('long') !== 8 && sizes.get('long') !== 4) {
        throw new PickleError('legacy file written on a platform with unusual type sizes');
      }
    }
    const storages = new Map<string, Storage>();
    const persistentLoad = (pid: unknown): unknown => {
      // ('storage', storage_type, root_key, location, numel, view_metadata)
      if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 6) {
        throw new PickleError(`unsupported persistent id ${describe(pid)} in legacy torch file`);
      }
      const type = storageTypeOf(pid[1]);
      const key = String(pid[2]);
      const count = pid[4];
      if (typeof count !== 'number') throw new PickleError(`storage '${key}': element count is not an integer`);
      if (pid[5] !== null) throw new PickleError(`storage '${key}' is a legacy storage view, which is not supported`);
      let st = storages.get(key);
      if (!st) {
        st = new Storage(key, type.dtype, count, bigEndian);
        storages.set(key, st);
      }
      return st;
    };
    const main = new Unpickler(bytes, { globals: torchGlobals(), persistentLoad, unknownGlobals: opts.unknownGlobals }, header.pos);
    const root = main.load();
    const keysPickle = new Unpickler(bytes, { globals: BASIC_GLOBALS }, main.pos);
    const keys = keysPickle.load();
    if (!Array.isArray(keys)) throw new PickleError('legacy torch file: storage key list missing');
    let pos = keysPickle.pos;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const k of keys) {
      const st = storages.get(String(k));
      if (!st) throw new PickleError(`legacy torch file lists storage '${String(k)}' that no tensor uses`);
      if (pos + 8 > bytes.byteLength) throw new PickleError(`legacy torch file truncated before storage '${st.key}'`);
      const count = Number(dv.getBigInt64(pos, !bigEndian));
      pos += 8;
      const nbytes = count * DTYPE_SIZE[st.dtype];
      if (count !== st.numel) throw new PickleError(`storage '${st.key}' holds ${count} elements, the pickle says ${st.numel}`);
      if (pos + nbytes > bytes.byteLength) throw new PickleError(`legacy torch file truncated inside storage '${st.key}'`);
      st.bytes = bytes.subarray(pos, pos + nbytes);
      pos += nbytes;
    }
    return root;
  } catch (err) {
    return wrapPickleError(source, err);
  }
}

export interface StateDictOptions extends TorchLoadOptions {
  /**
   * Where the state_dict sits inside a wrapping checkpoint, as a dotted path (e.g. 'state_dict', 'model',
   * 'model.ema'). Default: the root if it is a dict of tensors, else the first of 'state_dict', 'model_state_dict',
   * 'model', 'net', 'module', 'ema' that is.
   */
  key?: string;
  /** Strip this prefix from every key (e.g. 'module.' added by DataParallel); stripped only where present. */
  stripPrefix?: string;
}

const WRAPPER_KEYS = ['state_dict', 'model_state_dict', 'model', 'net', 'module', 'ema'];

function isTensorDict(v: unknown): v is Map<unknown, unknown> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const x of v.values()) if (!(x instanceof TorchTensor)) return false;
  return true;
}

/**
 * Find the state_dict inside an unpickled torch object and materialise its tensors. Throws a WeightFormatError
 * that lists the keys it saw when it cannot tell where the tensors are.
 */
export function extractStateDict(root: unknown, opts: StateDictOptions = {}): StateDict {
  const source = opts.source ?? '<bytes>';
  let dict: unknown = root;
  if (opts.key !== undefined) {
    for (const part of opts.key.split('.')) {
      if (!(dict instanceof Map) || !dict.has(part)) {
        const have = dict instanceof Map ? [...dict.keys()].map(String).join(', ') : describe(dict);
        throw new WeightFormatError(source, `no entry '${part}' (of key '${opts.key}') in the checkpoint; it has: ${have}`);
      }
      dict = dict.get(part);
    }
  } else if (!isTensorDict(root) && root instanceof Map) {
    const k = WRAPPER_KEYS.find((w) => isTensorDict(root.get(w)));
    if (k !== undefined) dict = root.get(k);
  }
  if (dict instanceof TorchTensor) {
    throw new WeightFormatError(source, 'the file holds a single tensor, not a state_dict');
  }
  if (!(dict instanceof Map)) {
    const hint = root instanceof PyOpaque ? ` (a pickled ${root.qualifiedName}; save model.state_dict() instead of the model)` : '';
    throw new WeightFormatError(source, `expected a state_dict (a dict of tensors) but found ${describe(dict)}${hint}`);
  }
  const out: StateDict = new Map();
  const others: string[] = [];
  for (const [k, v] of dict) {
    if (v instanceof TorchTensor) {
      let name = String(k);
      if (opts.stripPrefix && name.startsWith(opts.stripPrefix)) name = name.slice(opts.stripPrefix.length);
      out.set(name, v.toRaw(source, String(k)));
    } else others.push(String(k));
  }
  if (out.size === 0) {
    const where = opts.key !== undefined ? `entry '${opts.key}'` : 'the top-level dict';
    throw new WeightFormatError(
      source,
      `${where} holds no tensors; its keys are: ${others.slice(0, 20).join(', ')}${others.length > 20 ? ', ...' : ''}. ` +
        `If it wraps a state_dict under another key, pass { key: '<name>' }`,
    );
  }
  if (others.length) {
    throw new WeightFormatError(
      source,
      `the dict mixes tensors with ${others.length} non-tensor entries (${others.slice(0, 5).join(', ')}); ` +
        'pass { key } to pick the state_dict inside it',
    );
  }
  return out;
}

/** Parse a `torch.save(model.state_dict(), f)` file (or a checkpoint wrapping one, see `StateDictOptions.key`). */
export function parseTorchPth(bytes: Uint8Array, opts: StateDictOptions = {}): StateDict {
  return extractStateDict(loadTorchFile(bytes, opts).root, opts);
}

/** The `_metadata` attribute torchvision state_dicts carry (per-module versions), or undefined. */
export function stateDictMetadata(root: unknown): unknown {
  return root instanceof PyDict ? root.attrs['_metadata'] : undefined;
}
