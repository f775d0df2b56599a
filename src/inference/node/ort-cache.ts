/**
 * An optimised-model cache for ONNX Runtime sessions. Building a session at
 * graphOptimizationLevel 'all' rewrites the graph (NCHWc layout transform, fusions) every time: for ResNet-152 @320
 * on 2 cores, optimising took about half of the session's creation. The lower levels start faster but run 1.2-2x
 * slower per image (no NCHWc layout), so the cache keeps level 'all': ONNX Runtime saves the optimised graph once in
 * its own ORT format (optimizedModelFilePath, save_model_format ORT), and later starts read that file into memory and
 * hand the bytes to ONNX Runtime, which uses them in place (use_ort_model_bytes_directly and
 * use_ort_model_bytes_for_initializers: no parsing into protobuf objects, no copy of the weights; the caller must keep
 * the bytes alive as long as the session). Same outputs and speed as the uncached session; numbers in the README,
 * measured with bench/onnx-session.mjs.
 *
 * A level-'all' graph is hardware-specific (ONNX Runtime says so when it writes one: the NCHWc block size follows
 * the CPU's vector width), so a cache file is keyed by the ONNX Runtime version, the level and the CPU (platform,
 * architecture, model name and, on Linux, its feature flags). Where it lives:
 *   <model>.onnx.ort-cache/<key>.ort + <key>.json   beside the model, else (folder not writable)
 *   $XDG_CACHE_HOME|~/.cache/nextray/onnx/<sha256 of the model's absolute path, 16 hex>/<key>.ort + .json.
 * The .json manifest records the source model's sha256 and the cache file's sha256 and size; all are checked before
 * ONNX Runtime sees the bytes. A missing, stale (other model), corrupt or unloadable cache is ignored and rewritten,
 * with one line saying why. The cache file is written under a temporary name and renamed, not fsynced (the manifest's
 * size and sha256 catch a file a power cut left short); the manifest goes last, with writeJsonAtomic. A caller may
 * defer the first write to the second run on a model (deferFirstWrite, `nextray forward`).
 *
 * The cache is optional and never makes a model unusable: where the optimised graph cannot be saved (a full or
 * read-only disk: ONNX Runtime's 'SaveToOrtFormat failed'), the session is made without saving, with one line.
 * After each write the cache is kept bounded (pruneCaches): temporaries of dead writers, environments beyond the
 * two most recently used, folders of models that are gone, and the least recently used beyond 16 in the user cache.
 */
import { readFile } from 'node:fs/promises';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, cpus, homedir, platform } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type * as ortTypes from 'onnxruntime-node';
import { makeFolder, pidAlive, writeJsonAtomic } from '../../util/atomic.js';
import { FileWriteError, NextrayError } from '../../util/errors.js';
import { sha256File, sha256Hex } from '../../util/hash.js';
import { modelSkeleton } from '../../models/onnx/skeleton.js';

export const ORT_CACHE_FORMAT = 'nextray-ort-optimized-model';
export const ORT_CACHE_FORMAT_VERSION = 1;

/** Cached graphs ONNX Runtime uses in place, kept alive by (and as long as) their session objects. */
const bytesInUse = new WeakMap<object, Uint8Array>();

/** What the optimised-model cache did when a session was opened. */
export interface OrtCacheReport {
  /**
   * hit: loaded the cached graph; written: built the session and saved its graph; deferred: the first sight of a
   * model with `deferFirstWrite`, run uncached and marked so that the next run saves its graph; off: not cached (see
   * reason).
   */
  status: 'hit' | 'written' | 'deferred' | 'off';
  /** The cache file used or written. */
  file?: string;
  /** Why a cache was not used (stale, corrupt, not writable...), when it was not. */
  reason?: string;
  /** SHA-256 of the source model, when it was computed (a graph source's identity). */
  sourceSha256?: string;
  /** A graph source's facts (GraphSource.build), from the manifest on a hit, as built otherwise. */
  facts?: unknown;
}

/**
 * A model that exists only as bytes built on demand (an export made in memory from a weights file, as `nextray
 * forward` does), cached like a file: under the user cache, in a folder named for `path`, and valid while `identity`
 * is the one the manifest records. On a hit nothing is built: the session comes from the cached graph, the model's
 * metadata from the skeleton kept in the manifest, and `facts` as they were when it was built.
 */
export interface GraphSource {
  /** The file the graph is made from (absolute or relative); names the cache folder, and its removal prunes it. */
  path: string;
  /** Everything the graph depends on, as one string (hex digest): what makes a cached graph stale when it changes. */
  identity: string;
  /** The encoded model and facts to keep beside it (JSON); its errors are the caller's and propagate. */
  build(): Promise<{ bytes: Uint8Array; facts?: unknown }>;
}

export interface OrtCacheOptions {
  /** Cache folder to use instead of beside the model / the user cache (tests pass a temporary folder). */
  dir?: string;
  /** Where the one-line notes go (stale or corrupt cache, nowhere to write); default process.stderr. */
  onLog?: (line: string) => void;
  /** The source model's SHA-256 when the caller computes it anyway (a pending hash is fine); else hashed here. */
  sourceSha256?: Promise<string> | string;
  /**
   * Save the optimised graph only from the second run on a model (a small marker records the first). Saving costs
   * a one-shot job more than the graph saves it (for ResNet-152: ONNX Runtime's serialisation and the hash of 240 MB
   * against a plain session), so a command usually run once per model (`forward`) defers it; a stale, corrupt or
   * unloadable cache counts as seen and is rewritten at once.
   */
  deferFirstWrite?: boolean;
}

interface Manifest {
  format: string;
  format_version: number;
  key: string;
  source_sha256: string;
  source_size: number;
  onnxruntime: string;
  level: string;
  cpu: string;
  cache_sha256: string;
  cache_size: number;
  /** The model this graph was made from (absolute), so the cache of a model that is gone can be pruned. */
  source_path?: string;
  /** A graph source's model without its weights (base64; skeleton.ts), for its metadata on a hit. */
  skeleton_base64?: string;
  /** A graph source's facts. */
  facts?: unknown;
}

/** Marks a cache entry as used now (for pruning the least recently used); a read-only cache stays as it is. */
function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // read-only: fine
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

/** Cache folders, and environments within one, kept at most (the least recently used go first). */
export const MAX_CACHED_ENVIRONMENTS = 2;
export const MAX_CACHED_MODELS = 16;

const ENTRY = /^(?:[0-9a-f]{16}\.(?:ort|json|seen)|\.[0-9a-f]{16}\.(\d+)\.\d+\.tmp\.ort)$/;
const SEEN_FORMAT = 'nextray-ort-seen';

/** True when `path` is a first-sight marker for the model `sourceSha256` (deferFirstWrite). */
function seenBefore(path: string, sourceSha256: string): boolean {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as { format?: unknown; source_sha256?: unknown };
    return m.format === SEEN_FORMAT && m.source_sha256 === sourceSha256;
  } catch {
    return false;
  }
}

/** Last use of a cache folder's environment `key` (its manifest's mtime; touched on every hit), 0 if unknown. */
function lastUse(dir: string, key: string): number {
  try {
    return statSync(join(dir, `${key}.json`)).mtimeMs;
  } catch {
    return 0;
  }
}

/** True when every entry of `dir` is one this cache writes (so removing the folder removes nothing else). */
function onlyCacheEntries(dir: string): boolean {
  try {
    return readdirSync(dir).every((n) => ENTRY.test(n));
  } catch {
    return false;
  }
}

/** The model a cache folder was made for (from a manifest in it), or undefined when no manifest says. */
function cachedModelPath(dir: string): string | undefined {
  try {
    for (const n of readdirSync(dir)) {
      if (!n.endsWith('.json')) continue;
      const m = readManifest(join(dir, n));
      if (typeof m !== 'string' && typeof m.source_path === 'string') return m.source_path;
    }
  } catch {
    // unreadable: left alone
  }
  return undefined;
}

/**
 * Keeps the cache bounded after a write into `dir` (best effort, never throws):
 *  - in `dir`: temporaries of writers that are gone, and environments (other ONNX Runtime versions or CPUs) beyond the
 *    MAX_CACHED_ENVIRONMENTS most recently used, the current one always kept;
 *  - beside it: cache folders of models that no longer exist (`X.onnx.ort-cache` without `X.onnx`; in the user
 *    cache, folders whose manifest names a model that is gone), and in the user cache the least recently used
 *    folders beyond MAX_CACHED_MODELS.
 * Only folders holding nothing but this cache's own files are removed.
 */
export function pruneCaches(dir: string, keepKey: string, modelPath: string): string[] {
  const removed: string[] = [];
  const rm = (p: string, recursive = false): void => {
    try {
      rmSync(p, { force: true, recursive });
      removed.push(p);
    } catch {
      // read-only or gone: fine
    }
  };
  try {
    const keys = new Set<string>();
    for (const n of readdirSync(dir)) {
      const m = ENTRY.exec(n);
      if (!m) continue;
      if (m[1] !== undefined) {
        if (Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) rm(join(dir, n));
      } else keys.add(n.slice(0, 16));
    }
    keys.delete(keepKey);
    const others = [...keys].sort((a, b) => lastUse(dir, b) - lastUse(dir, a));
    for (const k of others.slice(MAX_CACHED_ENVIRONMENTS - 1)) {
      rm(join(dir, `${k}.json`));
      rm(join(dir, `${k}.ort`));
      rm(join(dir, `${k}.seen`));
    }
    const parent = dirname(dir);
    const userRoot = userCacheRoot();
    if (resolve(parent) === resolve(userRoot)) {
      const folders = readdirSync(parent)
        .map((n) => join(parent, n))
        .filter((d) => d !== dir && onlyCacheEntries(d));
      const alive: string[] = [];
      for (const d of folders) {
        const src = cachedModelPath(d);
        if (src !== undefined && !existsSync(src)) rm(d, true);
        else alive.push(d);
      }
      const newest = (d: string): number => Math.max(0, ...readdirSync(d).filter((n) => n.endsWith('.json')).map((n) => lastUse(d, n.slice(0, -5))));
      alive.sort((a, b) => newest(b) - newest(a));
      for (const d of alive.slice(MAX_CACHED_MODELS - 1)) rm(d, true);
    } else if (basename(dir) === `${basename(resolve(modelPath))}.ort-cache`) {
      for (const n of readdirSync(parent)) {
        if (!n.endsWith('.ort-cache') || n === basename(dir)) continue;
        const d = join(parent, n);
        if (!existsSync(join(parent, n.slice(0, -'.ort-cache'.length))) && onlyCacheEntries(d)) rm(d, true);
      }
    }
  } catch {
    // A cache that cannot be tidied is still a cache.
  }
  return removed;
}

function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // Nothing there to remove (e.g. its folder is a file).
  }
}

/**
 * Read a whole file into one buffer and hash it, checking its size. Measured on the loaded 2-core machine for a
 * 232 MB file: readFile 0.23 s then hashing the buffer 0.18-0.21 s; reading in 8 MB chunks while hashing the previous
 * one took 0.51 s, and WebCrypto's digest (thread pool) 0.34 s.
 */
export async function readFileHashed(path: string, size: number): Promise<{ bytes: Buffer; sha256: string }> {
  const bytes = await readFile(path);
  if (bytes.byteLength !== size) throw new NextrayError(`${path}: ${bytes.byteLength} bytes, expected ${size} (changed while read)`, { code: 'ERR_FILE_CHANGED', hint: 'wait until the file is written completely, then run the command again' });
  return { bytes, sha256: sha256Hex(bytes) };
}

/** `opts` with session config entries (SessionOptions.extra.session) added, keeping the caller's. */
function withSessionConfig(opts: ortTypes.InferenceSession.SessionOptions, entries: Record<string, string>): ortTypes.InferenceSession.SessionOptions {
  const extra = (opts.extra ?? {}) as Record<string, unknown>;
  return { ...opts, extra: { ...extra, session: { ...((extra.session as Record<string, unknown> | undefined) ?? {}), ...entries } } };
}

let cpuKeyMemo: string | undefined;
/** The CPU as far as a saved level-'all' graph depends on it: platform, architecture, model name, feature flags (Linux). */
export function cpuKey(): string {
  if (cpuKeyMemo !== undefined) return cpuKeyMemo;
  let flags = '';
  if (platform() === 'linux') {
    try {
      const m = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
      if (m) flags = m[1]!.trim().split(/\s+/).sort().join(' ');
    } catch {
      // No /proc: the model name alone.
    }
  }
  cpuKeyMemo = `${platform()}-${arch()} ${cpus()[0]?.model ?? 'unknown'}${flags ? ` flags:${sha256Hex(flags).slice(0, 16)}` : ''}`;
  return cpuKeyMemo;
}

/** onnxruntime-node's version (package.json). */
export function onnxRuntimeVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('onnxruntime-node/package.json') as { version: string }).version;
}

/** The part of the cache key that does not depend on the model: runtime version, level, CPU. */
export function environmentKey(level: string, ortVersion = onnxRuntimeVersion(), cpu = cpuKey()): string {
  return sha256Hex(JSON.stringify({ format: ORT_CACHE_FORMAT, v: ORT_CACHE_FORMAT_VERSION, file: 'ort', ortVersion, level, cpu })).slice(0, 16);
}

/**
 * The whole key of a cached graph: the model's sha256 + runtime version + level + CPU. The file name carries the
 * environment part; the manifest carries the model's sha256 (one cache file per model path and environment, replaced
 * when the model changes).
 */
export function cacheKey(sourceSha256: string, level: string, ortVersion = onnxRuntimeVersion(), cpu = cpuKey()): string {
  return sha256Hex(`${sourceSha256}\n${environmentKey(level, ortVersion, cpu)}`);
}

/** The user-level cache folder for models whose own folder is not writable. */
export function userCacheRoot(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'nextray', 'onnx');
}

/**
 * Candidate cache folders for `modelPath`, in order of preference. A graph source's cache goes to the user cache
 * only (nothing is written beside the weights it was made from), in a folder of its own kind.
 */
export function cacheDirs(modelPath: string, opts: OrtCacheOptions = {}, kind: 'file' | 'graph' = 'file'): string[] {
  const abs = resolve(modelPath);
  if (opts.dir !== undefined) return [resolve(opts.dir)];
  if (kind === 'graph') return [join(userCacheRoot(), sha256Hex(`graph\n${abs}`).slice(0, 16))];
  const pathHash = sha256Hex(abs).slice(0, 16);
  return [join(dirname(abs), `${basename(abs)}.ort-cache`), join(userCacheRoot(), pathHash)];
}

function readManifest(path: string): Manifest | string {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'manifest unreadable';
  }
  if (!m || m.format !== ORT_CACHE_FORMAT || m.format_version !== ORT_CACHE_FORMAT_VERSION || typeof m.source_sha256 !== 'string' || typeof m.cache_sha256 !== 'string') {
    return 'manifest of another format';
  }
  return m;
}

/**
 * Open `modelPath` in ONNX Runtime at level 'all' through the cache. `sessionOptions` are the caller's (threads,
 * spinning...); the level and optimizedModelFilePath are set here. Never throws for a cache problem: the worst case
 * is the uncached session plus one line to onLog. Errors of the model itself (ONNX Runtime cannot load it) propagate.
 */
export async function createCachedSession(
  ort: typeof ortTypes,
  source: string | GraphSource,
  sessionOptions: ortTypes.InferenceSession.SessionOptions,
  opts: OrtCacheOptions = {},
): Promise<{ session: ortTypes.InferenceSession; cache: OrtCacheReport; bytes?: Uint8Array; model: Uint8Array | undefined }> {
  const log = opts.onLog ?? ((line: string) => void process.stderr.write(line + '\n'));
  const level = 'all';
  const envKey = environmentKey(level);
  const ortVersion = onnxRuntimeVersion();
  const cpu = cpuKey();
  const graph = typeof source === 'string' ? undefined : source;
  const modelPath = typeof source === 'string' ? source : source.path;
  const srcHash = graph
    ? Promise.resolve(graph.identity)
    : typeof opts.sourceSha256 === 'string'
      ? Promise.resolve(opts.sourceSha256)
      : (opts.sourceSha256 ?? sha256File(modelPath));
  srcHash.catch(() => undefined);
  const dirs = cacheDirs(modelPath, opts, graph ? 'graph' : 'file');
  const loadOpts = { ...sessionOptions, graphOptimizationLevel: 'disabled' as const };

  // 1. A cached graph, where one exists: read it, check its size and sha256 and the source model's sha256 against
  //    the manifest (the cache hashed as it is read, the source hashed meanwhile), and only then hand the bytes to ONNX
  //    Runtime, which uses them in place.
  let problem: string | undefined;
  for (const dir of dirs) {
    const file = join(dir, `${envKey}.ort`);
    const manifest = readManifest(join(dir, `${envKey}.json`));
    if (manifest === 'missing') continue;
    if (typeof manifest === 'string') {
      problem = `${file}: ${manifest}`;
      break;
    }
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      problem = `${file}: cache file missing`;
      break;
    }
    if (size !== manifest.cache_size) {
      problem = `${file}: size ${size} bytes, its manifest says ${manifest.cache_size} (corrupt)`;
      break;
    }
    // A cache that cannot be read is a cache problem; a source model that cannot be hashed is the caller's.
    const read = readFileHashed(file, size).catch((err: Error) => err);
    const src = await srcHash;
    const r = await read;
    if (r instanceof Error) {
      problem = `${file}: cannot read (${r.message})`;
      break;
    }
    const { bytes, sha256: got } = r;
    if (src !== manifest.source_sha256) {
      problem = `${file}: made from another version of the model (stale)`;
      break;
    }
    if (got !== manifest.cache_sha256) {
      problem = `${file}: content does not match its manifest's sha256 (corrupt)`;
      break;
    }
    // A graph source's metadata: the skeleton kept in the manifest (nothing else holds it on a hit).
    let skeleton: Uint8Array | undefined;
    if (graph) {
      if (typeof manifest.skeleton_base64 !== 'string' || manifest.skeleton_base64 === '') {
        problem = `${file}: its manifest lacks the model's skeleton (corrupt)`;
        break;
      }
      skeleton = Buffer.from(manifest.skeleton_base64, 'base64');
    }
    try {
      const session = await ort.InferenceSession.create(bytes, withSessionConfig(loadOpts, { use_ort_model_bytes_directly: '1', use_ort_model_bytes_for_initializers: '1' }));
      // The session's weights live in `bytes`: nothing else may hold them, and a garbage-collected buffer under a live
      // session crashes the process (measured: a segfault on the next batch). Tie them to the session object.
      bytesInUse.set(session, bytes);
      touch(join(dir, `${envKey}.json`));
      return { session, cache: { status: 'hit', file, sourceSha256: src, ...(graph ? { facts: manifest.facts } : {}) }, bytes, model: skeleton };
    } catch (err) {
      problem = `${file}: ONNX Runtime cannot load it (${(err as Error).message.split('\n')[0]})`;
      break;
    }
  }
  if (problem) log(`onnx cache: ${problem}; rebuilding it`);

  // A graph source is built now (once, whatever happens to the cache); its errors are the caller's.
  const built = graph ? await graph.build() : undefined;
  const model = built?.bytes;
  const factsOf = built && built.facts !== undefined ? { facts: built.facts } : {};
  const createPlain = (): Promise<ortTypes.InferenceSession> =>
    model
      ? ort.InferenceSession.create(model, { ...sessionOptions, graphOptimizationLevel: level })
      : ort.InferenceSession.create(modelPath, { ...sessionOptions, graphOptimizationLevel: level });

  // 2. With deferFirstWrite, the first sight of a model (no cache of any version of it, no marker): mark it in the
  //    first writable cache folder and run uncached. Where no marker can be written, on to 3 (which says why).
  if (opts.deferFirstWrite && problem === undefined) {
    const id = await srcHash.catch(() => undefined);
    if (id !== undefined && !dirs.some((dir) => seenBefore(join(dir, `${envKey}.seen`), id))) {
      const marked = dirs.some((dir) => {
        try {
          makeFolder(dir);
          writeJsonAtomic(join(dir, `${envKey}.seen`), { format: SEEN_FORMAT, source_sha256: id, source_path: resolve(modelPath) });
          return true;
        } catch {
          return false;
        }
      });
      if (marked) {
        const session = await createPlain();
        return { session, cache: { status: 'deferred', reason: 'first run on this model: its optimised graph is kept from the next run on', sourceSha256: id, ...factsOf }, model };
      }
    }
  }

  // 3. Build the session at level 'all', letting ONNX Runtime write its optimised graph under a temporary name in
  //    the first writable cache folder; then hash, rename, and write the manifest last. The cache file is not
  //    fsynced: its size and SHA-256 in the manifest are checked before every use, so a file a power cut left short
  //    or stale is found and rebuilt, and the fsync of 240 MB costs a one-shot job 0.1 s here and seconds on an SD
  //    card. (The manifest is written with writeJsonAtomic, fsync included.)
  for (const dir of dirs) {
    const file = join(dir, `${envKey}.ort`);
    const tmp = join(dir, `.${envKey}.${process.pid}.${Date.now()}.tmp.ort`);
    try {
      // makeFolder: the real reason (EROFS, EACCES) where a recursive mkdir would only say ENOENT.
      makeFolder(dir);
      closeSync(openSync(tmp, 'wx'));
    } catch (err) {
      removeQuietly(tmp);
      const code = err instanceof FileWriteError ? err.errno : (err as NodeJS.ErrnoException).code;
      problem = `${dir}: not writable (${code ?? (err as Error).message})`;
      continue;
    }
    let session: ortTypes.InferenceSession;
    try {
      // logSeverityLevel 3: ONNX Runtime warns, on every save at level 'all', that the graph is hardware-specific —
      // the reason the key holds the CPU.
      const options: ortTypes.InferenceSession.SessionOptions = {
        ...withSessionConfig(sessionOptions, { save_model_format: 'ORT' }),
        graphOptimizationLevel: level,
        optimizedModelFilePath: tmp,
        logSeverityLevel: 3,
      };
      session = model ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(modelPath, options);
    } catch (err) {
      removeQuietly(tmp);
      // Saving the optimised graph failed (a full or read-only disk: 'SaveToOrtFormat failed'), or the model itself
      // cannot be loaded. The cache is optional: try the plain session; only if that fails too is it the model's
      // error, which is then the one reported.
      let plain: ortTypes.InferenceSession;
      try {
        plain = await createPlain();
      } catch {
        throw err;
      }
      const reason = `${dir}: cannot save the optimised model (${firstLine(err)})`;
      log(`onnx cache: ${reason}; running uncached`);
      return { session: plain, cache: { status: 'off', reason, ...factsOf }, model };
    }
    try {
      const [src, cacheSha] = await Promise.all([srcHash, sha256File(tmp)]);
      const manifestPath = join(dir, `${envKey}.json`);
      rmSync(manifestPath, { force: true });
      renameSync(tmp, file);
      const m: Manifest = {
        format: ORT_CACHE_FORMAT,
        format_version: ORT_CACHE_FORMAT_VERSION,
        key: cacheKey(src, level, ortVersion, cpu),
        source_sha256: src,
        source_size: model ? model.byteLength : statSync(modelPath).size,
        onnxruntime: ortVersion,
        level,
        cpu,
        cache_sha256: cacheSha,
        cache_size: statSync(file).size,
        source_path: resolve(modelPath),
        ...(model ? { skeleton_base64: Buffer.from(modelSkeleton(model)).toString('base64') } : {}),
        ...factsOf,
      };
      writeJsonAtomic(manifestPath, m);
      removeQuietly(join(dir, `${envKey}.seen`));
      pruneCaches(dir, envKey, modelPath);
      return { session, cache: { status: 'written', file, sourceSha256: src, ...(problem ? { reason: problem } : {}), ...factsOf }, model };
    } catch (err) {
      removeQuietly(tmp);
      // The session is good; only the cache could not be kept.
      const reason = `${dir}: cannot keep the optimised model (${(err as Error).message})`;
      log(`onnx cache: ${reason}; running uncached`);
      return { session, cache: { status: 'off', reason, ...factsOf }, model };
    }
  }
  // Nowhere to write: the plain session.
  const reason = problem ?? 'no cache folder';
  log(`onnx cache: ${reason}; running uncached`);
  const session = await createPlain();
  return { session, cache: { status: 'off', reason, ...factsOf }, model };
}
