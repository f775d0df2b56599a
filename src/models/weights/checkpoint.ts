/**
 * The project's checkpoint: a folder holding
 *   model.safetensors      the model's variables, torchvision-style names, TF.js layout, bit-exact
 *   optimizer.safetensors  optimiser state (optional; e.g. Adam moments and step), kept apart so inference never reads it
 *   model.json             what the tensors mean: arch, input shape, preprocessing, head, decision threshold,
 *                          training config, dataset fingerprint, versions, creation time, plus a manifest of every
 *                          tensor (dtype, shape) and each file's size and SHA-256
 *
 * Saving is atomic at the folder level: everything is written and fsynced into a sibling temporary folder, then
 * swapped in with renames. A crash at any point leaves either the previous checkpoint or the new one, never a mix;
 * the one unavoidable window (between the two renames, as POSIX cannot rename over a non-empty folder) is
 * covered by loads reading the moved-aside copy, and repaired by the next save. Loads never modify anything, so
 * `predict` can read a checkpoint while training saves it.
 *
 * Node-only (node:fs, node:crypto); the formats themselves are in the pure modules.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { validatePreprocessing, type Preprocessing } from '../../data/preprocess.js';
import { parseSafetensors, serializeSafetensorsChunks } from './safetensors.js';
import { CHECKPOINT_TENSORS_FILE } from './files.js';
import { pidAlive, writeChunksSynced } from '../../util/atomic.js';
import { FileWriteError } from '../../util/errors.js';
import { sha256Hex } from '../../util/hash.js';
import { dependencyVersion, packageVersion } from '../../util/package.js';
import { isDType, WeightFormatError, type DType, type StateDict } from './types.js';

export const CHECKPOINT_FORMAT = 'nextray-checkpoint';
/** Bumped when model.json changes incompatibly; loaders refuse newer versions with a clear message. */
export const CHECKPOINT_FORMAT_VERSION = 1;
export const CHECKPOINT_METADATA_FILE = 'model.json';
export const CHECKPOINT_OPTIMIZER_FILE = 'optimizer.safetensors';

/** Versions of the software that wrote a checkpoint. */
export interface CheckpointVersions {
  /** nextray package version. */
  package: string;
  /** @tensorflow/tfjs-core version. */
  tfjs: string;
  [other: string]: string;
}

/** What the caller describes; the typed core plus `extra` for anything else. */
export interface CheckpointInfo {
  /** Architecture id as the model registry knows it, e.g. 'resnet152'. */
  arch: string;
  /** One input image's shape, [height, width, channels] (batches are NHWC). */
  inputShape: number[];
  /** How images become model input (from src/data/preprocess.ts); validated on load. */
  preprocessing: Preprocessing;
  /** The classifier head, e.g. { kind: 'dropout-dense-sigmoid', dropout: 0.5, units: 1 }. */
  head: { kind: string; [k: string]: unknown };
  /** Probability at or above which an image/study is called abnormal. */
  decisionThreshold: number;
  /** Training configuration (optimiser, lr, epochs, frozen layers, seed, ...), free-form. */
  training?: Record<string, unknown>;
  /** Which data the model saw. */
  dataset?: { fingerprint: string; [k: string]: unknown };
  /** Filled with the running versions when omitted. */
  versions?: CheckpointVersions;
  /** ISO 8601 time; now when omitted. */
  created?: string;
  /** Anything else worth keeping (metrics, notes, provenance); must be JSON-serialisable. */
  extra?: Record<string, unknown>;
}

/** Per-file record in model.json. */
export interface CheckpointFileRecord {
  file: string;
  bytes: number;
  sha256: string;
  tensors: Record<string, { dtype: DType; shape: number[] }>;
}

/** model.json as written: the info with every optional field filled, plus format, version and file records. */
export interface CheckpointMetadata extends Required<Omit<CheckpointInfo, 'training' | 'dataset'>> {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  training?: Record<string, unknown>;
  dataset?: { fingerprint: string; [k: string]: unknown };
  files: { model: CheckpointFileRecord; optimizer?: CheckpointFileRecord };
}

export interface Checkpoint {
  tensors: StateDict;
  optimizer?: StateDict;
  metadata: CheckpointMetadata;
}

export interface SaveCheckpointOptions {
  /** Optimiser state, written to optimizer.safetensors. */
  optimizer?: StateDict;
  /**
   * Called as saving proceeds: 'written' (all files are in the temporary folder, nothing visible changed yet),
   * 'swapping' (the old checkpoint has been moved aside), 'done'. For progress and for crash tests.
   */
  onStage?: (stage: 'written' | 'swapping' | 'done') => void;
}

export interface LoadCheckpointOptions {
  /** Check each file's SHA-256 against model.json (default true; costs ~1 s per GB). */
  verifyHashes?: boolean;
  /** Skip reading optimizer.safetensors (inference). Default: read it when present. */
  skipOptimizer?: boolean;
}

let saveCounter = 0;

function sidePaths(dir: string): { previous: string; tmpPrefix: string } {
  const parent = dirname(dir);
  const base = basename(dir);
  return { previous: join(parent, `.${base}.previous`), tmpPrefix: `.${base}.saving-` };
}

/**
 * Undo what an interrupted save left: if the checkpoint folder is gone but the previous one was moved aside,
 * move it back; if both exist the swap completed, so drop the old copy; remove temporary folders of dead savers.
 */
function recover(dir: string): void {
  const { previous, tmpPrefix } = sidePaths(dir);
  if (existsSync(previous)) {
    if (!existsSync(dir)) renameSync(previous, dir);
    else rmSync(previous, { recursive: true, force: true });
  }
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(tmpPrefix)) continue;
    const pid = Number(name.slice(tmpPrefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !pidAlive(pid)) rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function chunksDigest(chunks: Uint8Array[]): { bytes: number; sha256: string } {
  return { bytes: chunks.reduce((n, c) => n + c.byteLength, 0), sha256: sha256Hex(...chunks) };
}

function fsyncDir(path: string): void {
  // Makes the renames durable; not possible on every platform (Windows), where it is skipped.
  try {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

function manifest(tensors: StateDict): CheckpointFileRecord['tensors'] {
  const out: CheckpointFileRecord['tensors'] = {};
  for (const [k, t] of tensors) out[k] = { dtype: t.dtype, shape: [...t.shape] };
  return out;
}

let cachedVersions: CheckpointVersions | null = null;

/** The running nextray and tfjs-core versions (read from their package.json files; 'unknown' if not found). */
export function currentVersions(): CheckpointVersions {
  cachedVersions ??= { package: packageVersion(), tfjs: dependencyVersion('@tensorflow/tfjs-core') };
  return { ...cachedVersions };
}

/**
 * Write a checkpoint folder atomically, replacing any checkpoint already at `dir`. Returns the metadata written.
 * Tensors are stored bit-exactly in safetensors; `info` is validated first so a bad call writes nothing.
 */
export function saveCheckpoint(
  dir: string,
  checkpoint: { tensors: StateDict; metadata: CheckpointInfo },
  opts: SaveCheckpointOptions = {},
): CheckpointMetadata {
  const target = resolve(dir);
  const info = checkpoint.metadata;
  validateInfo(info, target);
  if (checkpoint.tensors.size === 0) throw new WeightFormatError(target, 'refusing to save a checkpoint without tensors');
  // Serialise (as chunks viewing the tensors' memory, no copy) before touching the disk: a bad tensor fails here.
  const modelChunks = serializeSafetensorsChunks(checkpoint.tensors, { format: CHECKPOINT_FORMAT, arch: info.arch });
  const optChunks = opts.optimizer ? serializeSafetensorsChunks(opts.optimizer, { format: CHECKPOINT_FORMAT, part: 'optimizer' }) : null;
  const model = chunksDigest(modelChunks);
  const optim = optChunks ? chunksDigest(optChunks) : null;
  const meta: CheckpointMetadata = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    arch: info.arch,
    inputShape: [...info.inputShape],
    preprocessing: info.preprocessing,
    head: info.head,
    decisionThreshold: info.decisionThreshold,
    ...(info.training !== undefined ? { training: info.training } : {}),
    ...(info.dataset !== undefined ? { dataset: info.dataset } : {}),
    versions: info.versions ?? currentVersions(),
    created: info.created ?? new Date().toISOString(),
    extra: info.extra ?? {},
    files: {
      model: { file: CHECKPOINT_TENSORS_FILE, ...model, tensors: manifest(checkpoint.tensors) },
      ...(opts.optimizer && optim
        ? { optimizer: { file: CHECKPOINT_OPTIMIZER_FILE, ...optim, tensors: manifest(opts.optimizer) } }
        : {}),
    },
  };
  const json = JSON.stringify(meta, null, 2) + '\n';

  const parent = dirname(target);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (err) {
    throw new FileWriteError(target, err);
  }
  recover(target);
  if (existsSync(target) && !statSync(target).isDirectory()) {
    throw new WeightFormatError(target, 'exists and is not a folder; refusing to replace it with a checkpoint');
  }
  const { previous, tmpPrefix } = sidePaths(target);
  const tmp = join(parent, `${tmpPrefix}${process.pid}-${saveCounter++}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp);
  } catch (err) {
    throw new FileWriteError(target, err);
  }
  try {
    writeChunksSynced(join(tmp, CHECKPOINT_TENSORS_FILE), modelChunks);
    if (optChunks) writeChunksSynced(join(tmp, CHECKPOINT_OPTIMIZER_FILE), optChunks);
    // model.json last: a folder with model.json is complete.
    writeChunksSynced(join(tmp, CHECKPOINT_METADATA_FILE), [new TextEncoder().encode(json)]);
    fsyncDir(tmp);
    opts.onStage?.('written');
    const hadOld = existsSync(target);
    if (hadOld) renameSync(target, previous);
    opts.onStage?.('swapping');
    renameSync(tmp, target);
    fsyncDir(parent);
    if (hadOld) rmSync(previous, { recursive: true, force: true });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    // If the old checkpoint was moved aside but the new one is not in place, put the old one back.
    if (existsSync(previous) && !existsSync(target)) renameSync(previous, target);
    // Name the checkpoint folder the user knows, not the temporary file inside the folder being written.
    if (err instanceof FileWriteError || typeof (err as { syscall?: unknown }).syscall === 'string') throw new FileWriteError(target, err instanceof FileWriteError ? err.cause : err);
    throw err;
  }
  opts.onStage?.('done');
  return meta;
}

function validateInfo(info: CheckpointInfo, where: string): void {
  const fail = (msg: string): never => {
    throw new WeightFormatError(where, `checkpoint metadata: ${msg}`);
  };
  if (typeof info.arch !== 'string' || !info.arch) fail(`arch must be a non-empty string, got ${JSON.stringify(info.arch)}`);
  if (!Array.isArray(info.inputShape) || !info.inputShape.length || !info.inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    fail(`inputShape must be positive integers like [320, 320, 3], got ${JSON.stringify(info.inputShape)}`);
  }
  try {
    validatePreprocessing(info.preprocessing);
  } catch (err) {
    fail((err as Error).message);
  }
  if (!info.head || typeof info.head !== 'object' || typeof info.head.kind !== 'string') {
    fail(`head must be an object with a string 'kind', got ${JSON.stringify(info.head)}`);
  }
  if (typeof info.decisionThreshold !== 'number' || !(info.decisionThreshold >= 0 && info.decisionThreshold <= 1)) {
    fail(`decisionThreshold must be a number in [0, 1], got ${JSON.stringify(info.decisionThreshold)}`);
  }
  if (info.dataset !== undefined && typeof info.dataset?.fingerprint !== 'string') fail('dataset.fingerprint must be a string');
  if (info.created !== undefined && Number.isNaN(Date.parse(info.created))) fail(`created is not an ISO date: ${info.created}`);
  for (const [k, v] of [
    ['training', info.training],
    ['extra', info.extra],
  ] as const) {
    if (v !== undefined && (v === null || typeof v !== 'object' || Array.isArray(v))) fail(`${k} must be an object`);
  }
}

/** Validate a parsed model.json, returning it typed. */
function validateMetadata(value: unknown, where: string): CheckpointMetadata {
  const fail = (msg: string): never => {
    throw new WeightFormatError(where, msg);
  };
  if (!value || typeof value !== 'object' || Array.isArray(value)) fail('is not a JSON object');
  const m = value as Record<string, unknown>;
  if (m.format !== CHECKPOINT_FORMAT) fail(`format is ${JSON.stringify(m.format)}, expected '${CHECKPOINT_FORMAT}': not a nextray checkpoint`);
  if (!Number.isInteger(m.formatVersion) || (m.formatVersion as number) < 1) fail(`formatVersion ${JSON.stringify(m.formatVersion)} is invalid`);
  if ((m.formatVersion as number) > CHECKPOINT_FORMAT_VERSION) {
    fail(
      `written in checkpoint format version ${m.formatVersion} by a newer nextray (${JSON.stringify((m.versions as Record<string, unknown> | undefined)?.package)}); ` +
        `this one reads up to version ${CHECKPOINT_FORMAT_VERSION}: upgrade nextray`,
    );
  }
  validateInfo(m as unknown as CheckpointInfo, where);
  const v = m.versions as Record<string, unknown> | undefined;
  if (!v || typeof v.package !== 'string' || typeof v.tfjs !== 'string') fail('versions.package and versions.tfjs must be strings');
  if (typeof m.created !== 'string') fail('created must be a string');
  if (!m.extra || typeof m.extra !== 'object') fail('extra must be an object');
  const files = m.files as Record<string, unknown> | undefined;
  if (!files || typeof files !== 'object') fail('files is missing');
  for (const part of ['model', 'optimizer'] as const) {
    const r = files![part] as Record<string, unknown> | undefined;
    if (r === undefined && part === 'optimizer') continue;
    if (!r || typeof r.file !== 'string' || !Number.isInteger(r.bytes) || typeof r.sha256 !== 'string' || !r.tensors || typeof r.tensors !== 'object') {
      fail(`files.${part} must be { file, bytes, sha256, tensors }`);
    }
    if (r!.file !== basename(r!.file as string) || (r!.file as string).startsWith('.')) fail(`files.${part}.file must be a plain file name`);
    for (const [name, t] of Object.entries(r!.tensors as Record<string, unknown>)) {
      const tt = t as Record<string, unknown> | null;
      if (!tt || !isDType(tt.dtype) || !Array.isArray(tt.shape)) fail(`files.${part}.tensors['${name}'] must be { dtype, shape }`);
    }
  }
  return m as unknown as CheckpointMetadata;
}

function checkAgainstManifest(tensors: StateDict, rec: CheckpointFileRecord, where: string): void {
  const problems: string[] = [];
  for (const [name, want] of Object.entries(rec.tensors)) {
    const t = tensors.get(name);
    if (!t) problems.push(`missing '${name}'`);
    else if (t.dtype !== want.dtype) problems.push(`'${name}' is ${t.dtype}, model.json says ${want.dtype}`);
    else if (t.shape.length !== want.shape.length || t.shape.some((d, i) => d !== want.shape[i])) {
      problems.push(`'${name}' has shape [${t.shape.join(', ')}], model.json says [${want.shape.join(', ')}]`);
    }
  }
  for (const name of tensors.keys()) if (!(name in rec.tensors)) problems.push(`unexpected '${name}'`);
  if (problems.length) {
    throw new WeightFormatError(
      where,
      `tensors do not match model.json (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${problems.slice(0, 8).join('; ')}${problems.length > 8 ? '; ...' : ''}`,
    );
  }
}

function readPart(dir: string, rec: CheckpointFileRecord, verify: boolean): StateDict {
  const path = join(dir, rec.file);
  if (!existsSync(path)) throw new WeightFormatError(path, `missing: model.json lists it but the checkpoint folder has no ${rec.file}`);
  const bytes = readFileSync(path);
  if (bytes.byteLength !== rec.bytes) {
    throw new WeightFormatError(path, `is ${bytes.byteLength} bytes but model.json records ${rec.bytes}: truncated or replaced`);
  }
  if (verify && sha256Hex(bytes) !== rec.sha256) {
    throw new WeightFormatError(path, 'SHA-256 does not match model.json: the file is corrupt or was replaced');
  }
  const { tensors } = parseSafetensors(bytes, { source: path });
  checkAgainstManifest(tensors, rec, path);
  return tensors;
}

/**
 * Where to read a checkpoint from without modifying anything: the folder itself, or, when a save was interrupted
 * between its two renames (or is in that instant right now, in another process), the copy moved aside. Readers
 * never rename: only a saver repairs, so a reader cannot race a training run that is saving.
 */
function readableDir(target: string): string {
  if (existsSync(target)) return target;
  const { previous } = sidePaths(target);
  return existsSync(previous) ? previous : target;
}

function readMetadataAt(target: string, shownAs: string): CheckpointMetadata {
  if (!existsSync(target)) throw new WeightFormatError(shownAs, 'no checkpoint here (folder does not exist)');
  if (!statSync(target).isDirectory()) throw new WeightFormatError(shownAs, 'is a file; a checkpoint is a folder with model.json and model.safetensors');
  const metaPath = join(target, CHECKPOINT_METADATA_FILE);
  if (!existsSync(metaPath)) {
    throw new WeightFormatError(shownAs, `not a checkpoint folder: ${CHECKPOINT_METADATA_FILE} is missing`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(metaPath, 'utf8'));
  } catch (err) {
    throw new WeightFormatError(metaPath, `is not valid JSON (${(err as Error).message})`);
  }
  return validateMetadata(parsed, metaPath);
}

/** Read the checkpoint's model.json only (cheap: no tensors). */
export function readCheckpointMetadata(dir: string): CheckpointMetadata {
  const target = resolve(dir);
  return readMetadataAt(readableDir(target), target);
}

/**
 * Load a checkpoint folder: metadata validated, tensors bit-exact and checked against the manifest in
 * model.json (names, dtypes, shapes, file sizes, SHA-256).
 */
export function loadCheckpoint(dir: string, opts: LoadCheckpointOptions = {}): Checkpoint {
  const target = resolve(dir);
  const verify = opts.verifyHashes ?? true;
  const attempt = (): Checkpoint => {
    const at = readableDir(target);
    const metadata = readMetadataAt(at, target);
    const tensors = readPart(at, metadata.files.model, verify);
    const out: Checkpoint = { tensors, metadata };
    if (metadata.files.optimizer && !opts.skipOptimizer) out.optimizer = readPart(at, metadata.files.optimizer, verify);
    return out;
  };
  try {
    return attempt();
  } catch (err) {
    // A save by another process can swap the folder between reading model.json and the tensors; the size/hash
    // check catches the mix, and one more read gets a consistent pair. A genuinely bad checkpoint fails again.
    if (!(err instanceof WeightFormatError)) throw err;
    return attempt();
  }
}
