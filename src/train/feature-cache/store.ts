/**
 * The on-disk store of one key-set of the feature cache: every cached frozen-prefix output computed with the same
 * frozen tensors, architecture, prefix boundary, preprocessing, engine, compute precision and storage precision
 * (key.ts), each entry addressed by the image's content hash and its variant (as stored / horizontally flipped).
 *
 *   ROOT/<key-set id>/meta.json    the key-set in clear (what the folder name hashes), written once
 *   ROOT/<key-set id>/data.bin     a 64-byte header, then fixed-size records appended in order ("slots")
 *   ROOT/<key-set id>/index.bin    the committed index: which (image hash, variant) each slot holds, + a SHA-256
 *   ROOT/<key-set id>/writer.lock  the pid of the one process allowed to append
 *
 * A record is: magic 'NXFR' (u32) | variant (u8) | 3 zero bytes | image content hash (32 bytes) | slot number (u32)
 * | 4 zero bytes | the features (fp16 or fp32, little-endian, H x W x C) | CRC-32 of everything before it (u32),
 * padded to a multiple of 8 bytes. Reads are positioned reads of one record (never a memory map and never the
 * whole file), so memory does not grow with the number of images beyond the index: one Map entry per image.
 *
 * Crash safety. Records are only ever appended. `commit()` first fdatasyncs data.bin, then replaces index.bin
 * atomically (util/atomic.ts), so every slot the index lists is on disk. On open, the slots after the committed
 * ones (those a kill -9, a full disk or a power cut may have torn) are read back and kept only if their magic,
 * slot number and checksum agree; a torn last record is cut off (ftruncate) and simply computed again. A record
 * that fails its checksum when read later (bit rot) is dropped from the index and recomputed by the caller. So a
 * crash at any moment leaves a store whose every entry is exact, and an interrupted extraction resumes where it
 * stopped. A full disk while appending cuts the file back to the last whole record, commits, and throws
 * FeatureCacheError: the entries written so far stay usable.
 */
import { closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { pidAlive, writeFileAtomic, writeJsonAtomic } from '../../util/atomic.js';
import { sha256Hex } from '../../util/hash.js';
import { crc32 } from './crc32.js';
import { FeatureCacheError } from './errors.js';
import { decodeFp16, encodeFp16, FP16_MAX } from './fp16.js';
import { keySetId, type KeySet } from './key.js';

/** 0: the image as stored; 1: horizontally flipped (the flip augmentation's other input). */
export type Variant = 0 | 1;
export const VARIANT_NAMES: readonly string[] = ['as stored', 'hflip'];

const DATA_MAGIC = 'NXRYFEAT';
const INDEX_MAGIC = 'NXRYFIDX';
const FORMAT_VERSION = 1;
const DATA_HEADER_BYTES = 64;
const RECORD_MAGIC = 0x5246584e; // 'NXFR' read as a little-endian u32
const RECORD_HEADER_BYTES = 48;
const DEAD = 0xff;

/** Bytes of one record for entries of `values` features in `storage` precision. */
export function recordBytesFor(values: number, storage: 'fp16' | 'fp32'): number {
  const raw = RECORD_HEADER_BYTES + values * (storage === 'fp16' ? 2 : 4) + 4;
  return Math.ceil(raw / 8) * 8;
}

export interface OpenOptions {
  /** Never append (another process writes, or the folder is read-only). */
  readOnly?: boolean;
}

/** What open() found and did, for the log. */
export interface OpenReport {
  /** Entries usable now. */
  entries: number;
  /** Slots after the last commit that were read back and found whole. */
  recovered: number;
  /** Torn or corrupt records dropped (to be computed again). */
  dropped: number;
  /** Why the store is read-only, when it is. */
  readOnlyReason: string | null;
  /** Whether the store was created by this open. */
  created: boolean;
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export class FeatureStore {
  readonly dir: string;
  readonly id: string;
  readonly keySet: KeySet;
  /** Feature values per entry (H x W x C). */
  readonly values: number;
  readonly recordBytes: number;
  readonly report: OpenReport;
  private fd: number;
  private writable: boolean;
  /** Slots in data.bin (whole records). */
  private slots = 0;
  /** Slots covered by index.bin. */
  private committed = 0;
  /**
   * The in-memory index, the only per-entry memory the store keeps: image hash (hex) -> [slot of variant 0, slot of
   * variant 1] (-1: none). index.bin is written from it; a slot no entry points at (torn, corrupt, superseded) is dead.
   */
  private readonly index = new Map<string, [number, number]>();
  private live = 0;
  private readonly record: Uint8Array;
  private readonly recordView: DataView;
  private lockHeld = false;
  private closed = false;
  /** A committed slot was marked dead since the last commit. */
  private dirty = false;

  private constructor(dir: string, keySet: KeySet, id: string, fd: number, writable: boolean, report: OpenReport) {
    this.dir = dir;
    this.keySet = keySet;
    this.id = id;
    this.values = keySet.shape[0] * keySet.shape[1] * keySet.shape[2];
    this.recordBytes = recordBytesFor(this.values, keySet.storage);
    this.fd = fd;
    this.writable = writable;
    this.report = report;
    this.record = new Uint8Array(this.recordBytes);
    this.recordView = new DataView(this.record.buffer);
  }

  get dataPath(): string {
    return join(this.dir, 'data.bin');
  }

  get indexPath(): string {
    return join(this.dir, 'index.bin');
  }

  /** Entries (image, variant) the store holds. */
  get size(): number {
    return this.live;
  }

  get canWrite(): boolean {
    return this.writable;
  }

  /** Bytes of index.bin for the current slots (what the committed index weighs on disk). */
  get indexFileBytes(): number {
    return 8 + 4 * 4 + 32 + this.slots * 33 + 32;
  }

  /** Images with at least one entry (the in-memory index has one entry per image). */
  get images(): number {
    return this.index.size;
  }

  /**
   * Opens (creating when needed) the store of `keySet` under `root`. A store another live process is writing
   * opens read-only; a folder that cannot be written opens read-only when it has data, and throws otherwise.
   */
  static open(root: string, keySet: KeySet, opts: OpenOptions = {}): FeatureStore {
    if (endianness() !== 'LE') throw new FeatureCacheError('the feature cache stores little-endian records; this machine is big-endian');
    const id = keySetId(keySet);
    const dir = join(root, id);
    let readOnlyReason: string | null = opts.readOnly ? 'opened read-only' : null;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new FeatureCacheError(`${root}: cannot create the feature cache folder (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let lockHeld = false;
    if (!readOnlyReason) {
      const lock = takeLock(dir);
      if (lock === true) lockHeld = true;
      else readOnlyReason = lock;
    }
    const report: OpenReport = { entries: 0, recovered: 0, dropped: 0, readOnlyReason, created: false };
    let store: FeatureStore | null = null;
    try {
      const writable = readOnlyReason === null;
      if (writable) prepareFolder(dir, keySet, id);
      const dataPath = join(dir, 'data.bin');
      let fd: number;
      if (writable) {
        fd = openDataFile(dataPath, recordBytesFor(keySet.shape[0] * keySet.shape[1] * keySet.shape[2], keySet.storage), id, report);
      } else if (existsSync(dataPath) && metaMatches(dir, keySet)) {
        fd = openSync(dataPath, 'r');
      } else {
        fd = -1;
      }
      // A new data file makes any index.bin beside it meaningless.
      if (report.created) rmSync(join(dir, 'index.bin'), { force: true });
      store = new FeatureStore(dir, keySet, id, fd, writable, report);
      store.lockHeld = lockHeld;
      if (fd >= 0) store.load();
      report.entries = store.live;
      return store;
    } catch (err) {
      if (store) store.close();
      else if (lockHeld) rmSync(join(dir, 'writer.lock'), { force: true });
      if (err instanceof FeatureCacheError) throw err;
      throw new FeatureCacheError(`${dir}: cannot open the feature cache (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
  }

  /** Reads index.bin, then checks every slot after it; drops a torn tail. */
  private load(): void {
    const size = fstatSync(this.fd).size;
    const whole = Math.max(0, Math.floor((size - DATA_HEADER_BYTES) / this.recordBytes));
    const trusted = this.readIndex(whole);
    let lastGood = trusted - 1;
    for (let slot = trusted; slot < whole; slot++) {
      const entry = this.readSlot(slot);
      if (entry) {
        this.setSlot(slot, entry.hash, entry.variant);
        lastGood = slot;
        this.report.recovered++;
      } else this.report.dropped++;
    }
    this.slots = whole;
    const partial = size - DATA_HEADER_BYTES - whole * this.recordBytes;
    if (this.writable) {
      // Cut torn records at the end (they would only be skipped), and any partial record after them.
      const keep = lastGood + 1;
      if (keep < whole || partial > 0) {
        ftruncateSync(this.fd, DATA_HEADER_BYTES + keep * this.recordBytes);
        this.slots = keep;
        if (partial > 0) this.report.dropped++;
      }
      if (this.slots !== this.committed) {
        try {
          this.commit();
        } catch {
          // A full disk: the next open checks these slots again.
        }
      }
    }
  }

  /** Loads index.bin's slots when it is whole and matches; returns how many slots it covers (0 if unusable). */
  private readIndex(wholeSlots: number): number {
    let buf: Buffer;
    try {
      buf = readFileSync(this.indexPath);
    } catch {
      return 0;
    }
    const headerBytes = 8 + 4 * 4 + 32;
    if (buf.length < headerBytes + 32 || buf.toString('latin1', 0, 8) !== INDEX_MAGIC) return 0;
    const version = buf.readUInt32LE(8);
    const recordBytes = buf.readUInt32LE(12);
    const count = buf.readUInt32LE(16);
    const id = buf.toString('latin1', 24, 56);
    if (version !== FORMAT_VERSION || recordBytes !== this.recordBytes || id !== this.id) return 0;
    if (buf.length !== headerBytes + count * 33 + 32) return 0;
    const digest = sha256Hex(buf.subarray(0, buf.length - 32));
    if (digest !== buf.toString('hex', buf.length - 32)) return 0;
    // The index can only be ahead of the data if the data file was cut by something else: trust neither then.
    if (count > wholeSlots) return 0;
    for (let s = 0; s < count; s++) {
      const o = headerBytes + s * 33;
      const variant = buf[o + 32]!;
      if (variant === 0 || variant === 1) this.setSlot(s, buf.toString('hex', o, o + 32), variant);
    }
    this.committed = count;
    return count;
  }

  private setSlot(slot: number, hash: string, variant: Variant): void {
    let e = this.index.get(hash);
    if (!e) {
      e = [-1, -1];
      this.index.set(hash, e);
    }
    if (e[variant] === -1) this.live++;
    e[variant] = slot; // a later record of the same entry (one recomputed after a bad read) wins
  }

  /** Reads and checks slot `slot` into this.record; returns its key, or null when torn or corrupt. */
  private readSlot(slot: number): { hash: string; variant: Variant } | null {
    const n = readSync(this.fd, this.record, 0, this.recordBytes, DATA_HEADER_BYTES + slot * this.recordBytes);
    if (n !== this.recordBytes) return null;
    const v = this.recordView;
    if (v.getUint32(0, true) !== RECORD_MAGIC || v.getUint32(40, true) !== slot) return null;
    const variant = this.record[4]!;
    if (variant !== 0 && variant !== 1) return null;
    const crcAt = RECORD_HEADER_BYTES + this.payloadBytes;
    if (crc32(this.record.subarray(0, crcAt)) !== v.getUint32(crcAt, true)) return null;
    return { hash: hexOf(this.record.subarray(8, 40)), variant };
  }

  private get payloadBytes(): number {
    return this.values * (this.keySet.storage === 'fp16' ? 2 : 4);
  }

  /** The slot holding (image, variant), or -1. */
  slotOf(hash: string, variant: Variant): number {
    const e = this.index.get(hash);
    return e ? e[variant] : -1;
  }

  has(hash: string, variant: Variant): boolean {
    return this.slotOf(hash, variant) >= 0;
  }

  /**
   * Reads the entry (image, variant) as float32 into `out` at `offset`. Returns false when it is missing or its
   * record fails the checks (then it is dropped from the index, so the caller computes and appends it again).
   */
  read(hash: string, variant: Variant, out: Float32Array, offset = 0): boolean {
    const slot = this.slotOf(hash, variant);
    if (slot < 0 || this.fd < 0) return false;
    const got = this.readSlot(slot);
    if (!got || got.hash !== hash || got.variant !== variant) {
      this.forget(hash, variant);
      return false;
    }
    const p = this.record.byteOffset + RECORD_HEADER_BYTES;
    if (this.keySet.storage === 'fp16') decodeFp16(new Uint16Array(this.record.buffer, p, this.values), out, offset);
    else out.set(new Float32Array(this.record.buffer, p, this.values), offset);
    return true;
  }

  private forget(hash: string, variant: Variant): void {
    const e = this.index.get(hash);
    if (!e || e[variant] < 0) return;
    if (e[variant] < this.committed) this.dirty = true;
    e[variant] = -1;
    this.live--;
    if (e[0] < 0 && e[1] < 0) this.index.delete(hash);
  }

  /**
   * Appends the entry (image, variant). `values` are float32 features, already rounded to the storage precision
   * by the caller when it also uses them (fp16 storage rounds them the same way again, exactly). Throws
   * FeatureCacheError when the disk is full (after cutting the file back to whole records and committing), and
   * (code ERR_FEATURE_CACHE_FP16_RANGE, nothing written) when fp16 storage cannot hold a value.
   */
  append(hash: string, variant: Variant, values: Float32Array): void {
    if (!this.writable) throw new FeatureCacheError(`${this.dir}: the feature cache is read-only here (${this.report.readOnlyReason ?? 'not writable'})`);
    if (values.length !== this.values) throw new RangeError(`feature cache: ${values.length} values for an entry of ${this.values}`);
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new RangeError(`feature cache: image hash must be 64 hex digits, got '${hash}'`);
    const slot = this.slots;
    const r = this.record;
    const v = this.recordView;
    r.fill(0, 0, RECORD_HEADER_BYTES);
    v.setUint32(0, RECORD_MAGIC, true);
    r[4] = variant;
    r.set(Buffer.from(hash, 'hex'), 8);
    v.setUint32(40, slot, true);
    const p = r.byteOffset + RECORD_HEADER_BYTES;
    if (this.keySet.storage === 'fp16') {
      // An infinite input is counted too: it is what a caller's own fp16 rounding made of an out-of-range value,
      // and an infinite feature is never worth storing.
      const overflow = encodeFp16(values, new Uint16Array(r.buffer, p, this.values)) + countInfinite(values);
      if (overflow) throw fp16RangeError(this.dir, overflow);
    } else new Float32Array(r.buffer, p, this.values).set(values);
    const crcAt = RECORD_HEADER_BYTES + this.payloadBytes;
    v.setUint32(crcAt, crc32(r.subarray(0, crcAt)), true);
    r.fill(0, crcAt + 4);
    const at = DATA_HEADER_BYTES + slot * this.recordBytes;
    try {
      let off = 0;
      while (off < this.recordBytes) off += writeSync(this.fd, r, off, this.recordBytes - off, at + off);
    } catch (err) {
      this.failWrite(err, at);
    }
    this.slots++;
    this.setSlot(slot, hash, variant);
  }

  /** A write failed at byte `at`: cut back to whole records, commit what is whole, and throw. */
  private failWrite(err: unknown, at: number): never {
    const code = (err as NodeJS.ErrnoException).code;
    try {
      ftruncateSync(this.fd, at);
    } catch {
      // the tail check on the next open drops the partial record instead
    }
    try {
      this.commit();
    } catch {
      // index.bin stays at its last commit; the next open checks the slots after it
    }
    this.writable = false;
    const full = code === 'ENOSPC' || code === 'EDQUOT';
    throw new FeatureCacheError(
      full
        ? `${this.dataPath}: disk full after ${this.live} cached entries; the cache is consistent and keeps them (free some space, or give --feature-cache a folder on a bigger disk, and run the same command again to go on)`
        : `${this.dataPath}: cannot write (${code ?? (err as Error).message}); the ${this.live} entries written so far are kept`,
      { code: full ? 'ERR_FEATURE_CACHE_DISK_FULL' : 'ERR_FEATURE_CACHE', cause: err },
    );
  }

  /** Makes every appended record durable, then records them in index.bin (atomically). */
  commit(): void {
    if (!this.writable && !this.lockHeld) return;
    if (this.slots === this.committed && !this.dirty && existsSync(this.indexPath)) return;
    fdatasyncSync(this.fd);
    const headerBytes = 8 + 4 * 4 + 32;
    const buf = Buffer.alloc(headerBytes + this.slots * 33 + 32);
    buf.write(INDEX_MAGIC, 0, 'latin1');
    buf.writeUInt32LE(FORMAT_VERSION, 8);
    buf.writeUInt32LE(this.recordBytes, 12);
    buf.writeUInt32LE(this.slots, 16);
    buf.write(this.id, 24, 'latin1');
    for (let s = 0; s < this.slots; s++) buf[headerBytes + s * 33 + 32] = DEAD;
    for (const [hash, slots] of this.index) {
      for (const variant of [0, 1] as const) {
        const s = slots[variant];
        if (s < 0) continue;
        const o = headerBytes + s * 33;
        buf.write(hash, o, 'hex');
        buf[o + 32] = variant;
      }
    }
    const digest = Buffer.from(sha256Hex(buf.subarray(0, buf.length - 32)), 'hex');
    digest.copy(buf, buf.length - 32);
    writeFileAtomic(this.indexPath, buf);
    this.committed = this.slots;
    this.dirty = false;
  }

  /** Commits and releases the file and the writer lock. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.writable && this.fd >= 0) this.commit();
    } catch {
      // A full disk: the records stay, and the next open checks the slots after the last commit.
    } finally {
      if (this.fd >= 0) closeSync(this.fd);
      this.fd = -1;
      if (this.lockHeld) rmSync(join(this.dir, 'writer.lock'), { force: true });
      this.lockHeld = false;
    }
  }

  /** Every entry's key, for tests and tools: [image hash, variant] in slot order (live entries only). */
  entries(): Array<[string, Variant]> {
    const out: Array<[number, string, Variant]> = [];
    for (const [hash, slots] of this.index) for (const v of [0, 1] as const) if (slots[v] >= 0) out.push([slots[v], hash, v]);
    return out.sort((p, q) => p[0] - q[0]).map(([, h, v]) => [h, v]);
  }
}

/** Features too large for float16 (an untrained network without batchnorm statistics, say): fp32 can store them. */
export function fp16RangeError(where: string, count: number): FeatureCacheError {
  return new FeatureCacheError(`${where}: ${count} value(s) of the frozen prefix's output exceed the float16 range (|x| > ${FP16_MAX})`, {
    code: 'ERR_FEATURE_CACHE_FP16_RANGE',
    hint: 'cache them as float32 with --feature-precision fp32',
  });
}

function countInfinite(values: Float32Array): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (values[i] === Infinity || values[i] === -Infinity) n++;
  return n;
}

/** Takes the writer lock: true, or why not (another live process holds it). A dead holder's lock is taken over. */
function takeLock(dir: string): true | string {
  const path = join(dir, 'writer.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') return `the folder is not writable (${code})`;
      if (code !== 'EEXIST') return `cannot take the writer lock (${code ?? (err as Error).message})`;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(path, 'utf8').trim());
    } catch {
      // unreadable: treat as stale
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && pidAlive(holder)) return `process ${holder} is writing it`;
    rmSync(path, { force: true }); // left by a process that died (kill -9) or by this one
  }
  return 'cannot take the writer lock';
}

function metaMatches(dir: string, keySet: KeySet): boolean {
  try {
    return JSON.stringify(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).keySet) === JSON.stringify(keySet);
  } catch {
    return false;
  }
}

/** meta.json written or checked; temporary files of interrupted index commits removed. */
function prepareFolder(dir: string, keySet: KeySet, id: string): void {
  for (const name of readdirSync(dir)) if (/^\.index\.bin\..*\.tmp$/.test(name)) rmSync(join(dir, name), { force: true });
  if (!metaMatches(dir, keySet)) {
    // A folder named by this key-set's hash whose meta.json is missing or different was never finished (or was
    // damaged): start it afresh rather than trust records of unknown origin.
    rmSync(join(dir, 'data.bin'), { force: true });
    rmSync(join(dir, 'index.bin'), { force: true });
    writeJsonAtomic(join(dir, 'meta.json'), { format: FORMAT_VERSION, id, keySet });
  }
}

/** Opens data.bin for appending, creating it (header, fsync) when missing or when its header is not ours. */
function openDataFile(path: string, recordBytes: number, id: string, report: OpenReport): number {
  const header = Buffer.alloc(DATA_HEADER_BYTES);
  header.write(DATA_MAGIC, 0, 'latin1');
  header.writeUInt32LE(FORMAT_VERSION, 8);
  header.writeUInt32LE(recordBytes, 12);
  header.write(id, 16, 'latin1');
  const fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
  const got = Buffer.alloc(DATA_HEADER_BYTES);
  const n = readSync(fd, got, 0, DATA_HEADER_BYTES, 0);
  if (n === DATA_HEADER_BYTES && got.equals(header)) return fd;
  // New, or cut before its header was whole: start empty.
  ftruncateSync(fd, 0);
  writeSync(fd, header, 0, DATA_HEADER_BYTES, 0);
  fdatasyncSync(fd);
  report.created = true;
  return fd;
}
