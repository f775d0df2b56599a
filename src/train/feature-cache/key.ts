/**
 * What a cached frozen-prefix output depends on, and therefore what its key holds. An entry is valid only for
 *
 *   - the frozen prefix's tensors: SHA-256 over every parameter and buffer of the layer units forwardFrozen runs
 *     (state_dict name, dtype, shape and bytes, in state_dict order);
 *   - the architecture and its layer count, and the prefix boundary (frozenPrefixLayers);
 *   - the preprocessing: input size, resize mode, interpolation, value scaling, mean, std, background;
 *   - the engine that computes it (the native engine's ISA included), the compute precision (fp32 / bf16) and the
 *     prefix batch size (prefix.ts): other kernels round differently, and the cache promises the very numbers an
 *     uncached run on this engine computes;
 *   - the storage precision (fp16 / fp32) and the output shape;
 *   - the variant (as stored / horizontally flipped) and the image's content (SHA-256 of the file's bytes).
 *
 * All but the last line form the key-set (KeySet, hashed to the store's folder name, store.ts); the variant and the
 * image hash address an entry inside it. Change any one and the lookup misses. Things that do not change the
 * prefix's output are left out on purpose, so runs differing only in them share one cache: the trainable layers
 * and head, L2, dropout, learning rate, batch size, epochs, seed (when the weights come from a file), the dataset
 * folder's name or location.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { Dropout, type Model } from '../../models/index.js';
import type { Preprocessing } from '../../data/preprocess.js';
import type { EngineInfo, Precision } from '../../engine/index.js';
import type { TrainConfig } from '../config.js';
import { PREFIX_BATCH } from './prefix.js';
import { sha256File, sha256Hex } from '../../util/hash.js';

/** Bumped whenever the record layout or the meaning of a key field changes (old folders then simply miss). */
export const FEATURE_CACHE_FORMAT = 1;

export type StoragePrecision = 'fp16' | 'fp32';
export const STORAGE_PRECISIONS: readonly StoragePrecision[] = ['fp16', 'fp32'];

/** Everything an entry's value depends on except the image and the variant (see the module comment). */
export interface KeySet {
  format: number;
  arch: string;
  layers: number;
  prefixLayers: number;
  /** SHA-256 (hex) of the prefix's tensors. */
  prefixTensors: string;
  preprocessing: Preprocessing;
  /** 'cpu', 'tfjs-node', or 'native/<ISA>'. */
  engine: string;
  computePrecision: Precision;
  /** Images per prefix call (prefix.ts): the batch size its kernels were chosen for. */
  prefixBatch: number;
  storage: StoragePrecision;
  /** One entry's shape, H x W x C. */
  shape: [number, number, number];
}

/** JSON with object keys sorted, so equal key-sets always serialise (and hash) the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The store folder's name: the first 32 hex digits of SHA-256 over the canonical key-set. */
export function keySetId(k: KeySet): string {
  return sha256Hex(canonicalJson(k)).slice(0, 32);
}

/** The engine part of the key: its name, and for the native engine the instruction set oneDNN dispatches to. */
export function engineKey(engine: Pick<EngineInfo, 'engine' | 'native'>): string {
  return engine.engine === 'native' && engine.native ? `native/${engine.native.isa}` : engine.engine;
}

/** The tensors forwardFrozen reads, as [state_dict name, variable], in state_dict order. */
export function prefixTensors(model: Model): Array<[string, tf.Variable]> {
  const inPrefix = new Set<tf.Variable>();
  for (const u of model.frozenPrefixUnits()) for (const m of u.modules) for (const [, p] of m.namedParams()) inPrefix.add(p.v);
  return [...model.stateDict()].filter(([, v]) => inPrefix.has(v));
}

/** SHA-256 (hex) over the prefix's tensors: for each, its name, dtype, shape and bytes, length-framed. */
export function prefixTensorHash(model: Model): string {
  const h = createHash('sha256');
  for (const [name, v] of prefixTensors(model)) {
    const data = v.dataSync() as Float32Array | Int32Array;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    h.update(`${name}\0${v.dtype}\0${v.shape.join('x')}\0${bytes.byteLength}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}

/**
 * Why the model's frozen prefix cannot be cached exactly, or null when it can: its output must be a fixed function
 * of the input image (no trainable tensor, no dropout, every batchnorm on its running statistics).
 */
export function prefixBlocker(model: Model): string | null {
  if (model.frozenPrefixLayers() === 0) {
    return model.frozenLayers() === 0
      ? 'no layer is frozen (--frozen 0), so there is no frozen prefix to cache'
      : `the ${model.frozenLayers()} frozen layer(s) do not cover a whole first block of ${model.arch}, so there is no frozen prefix to cache`;
  }
  for (const u of model.frozenPrefixUnits()) {
    for (const m of u.modules) {
      for (const [name, sub] of m.namedModules()) {
        if (sub instanceof Dropout && sub.p > 0) return `dropout inside the frozen prefix (${u.name}${name ? '.' + name : ''}) draws a new mask every step`;
      }
      for (const [name, p] of m.namedParams()) {
        if (p.trainable) return `${u.name} (${name}) inside the frozen prefix is trainable, so its output changes every step`;
      }
    }
    for (const bn of u.batchNorms) if (!bn.frozen) return `a batchnorm of ${u.name} inside the frozen prefix uses batch statistics`;
  }
  return null;
}

/**
 * Why the configuration's augmentation makes cached prefix outputs inexact, or null. Only the horizontal flip has
 * a fixed, small set of inputs (the image as stored and mirrored); a random rotation makes a new input every epoch.
 */
export function configBlocker(config: Pick<TrainConfig, 'rotation' | 'frozenLayers'>): string | null {
  if (config.rotation > 0) {
    return `random rotation (--rotation ${config.rotation}) changes every image before the frozen prefix in every epoch; only the horizontal flip has a fixed set of inputs`;
  }
  if (config.frozenLayers === 0) return 'no layer is frozen (--frozen 0), so there is no frozen prefix to cache';
  return null;
}

export interface KeySetInputs {
  model: Model;
  preprocessing: Preprocessing;
  engine: Pick<EngineInfo, 'engine' | 'native'>;
  computePrecision: Precision;
  storage: StoragePrecision;
  /** Output shape of one entry (from a forwardFrozen probe). */
  shape: [number, number, number];
  /** prefixTensorHash(model), when already computed. */
  prefixHash?: string;
}

export function makeKeySet(k: KeySetInputs): KeySet {
  return {
    format: FEATURE_CACHE_FORMAT,
    arch: k.model.arch,
    layers: k.model.layerCount(),
    prefixLayers: k.model.frozenPrefixLayers(),
    prefixTensors: k.prefixHash ?? prefixTensorHash(k.model),
    preprocessing: { ...k.preprocessing, mean: [...k.preprocessing.mean], std: [...k.preprocessing.std] },
    engine: engineKey(k.engine),
    computePrecision: k.computePrecision,
    prefixBatch: PREFIX_BATCH,
    storage: k.storage,
    shape: k.shape,
  };
}

/** forwardFrozen's output shape for one image at the preprocessing's size: H x W x C. */
export function prefixOutputShape(model: Model, size: number): [number, number, number] {
  return tf.tidy(() => {
    const out = model.forwardFrozen(tf.zeros([1, size, size, 3]) as tf.Tensor4D);
    return [out.shape[1], out.shape[2], out.shape[3]] as [number, number, number];
  });
}

/** Content hashes already computed in this process, by path, valid while the file's identity and times match. */
const hashMemo = new Map<string, { stamp: string; hash: string }>();

function stampOf(s: import('node:fs').BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/**
 * The content hash of every file (SHA-256 of its bytes), or the reason it could not be read. A file is read once
 * per process (a sweep's runs share the work): later calls reuse the hash while the file's device, inode, size
 * and nanosecond modification and change times are unchanged.
 */
export async function hashImageFiles(
  paths: readonly string[],
  opts: { concurrency?: number; onProgress?: (done: number) => void } = {},
): Promise<Array<{ hash: string } | { problem: string }>> {
  const out: Array<{ hash: string } | { problem: string }> = new Array(paths.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      const path = paths[i]!;
      try {
        const s = await stat(path, { bigint: true });
        const stamp = stampOf(s);
        const memo = hashMemo.get(path);
        let hash: string;
        if (memo && memo.stamp === stamp) hash = memo.hash;
        else {
          hash = await sha256File(path);
          const after = stampOf(await stat(path, { bigint: true }));
          if (after === stamp) hashMemo.set(path, { stamp, hash });
        }
        out[i] = { hash };
      } catch (err) {
        out[i] = { problem: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
      }
      opts.onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 8) }, worker));
  return out;
}
