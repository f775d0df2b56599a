/**
 * Node face of ONNX inference: `OnnxClassifier.create(path | bytes, { threads })` over onnxruntime-node (CPU
 * binaries shipped in the package; nothing is downloaded), plus writing an export to disk atomically.
 *
 * This is the only module under src/models/onnx that imports onnxruntime-node or node:fs; browser code uses
 * `OnnxClassifierCore.createWith(ort, bytes)` from classifier.ts with onnxruntime-web and the same .onnx file.
 *
 * Typical use (evaluation / prediction):
 *   const clf = await OnnxClassifier.create('model.onnx', { threads: 2 });
 *   const { probabilities } = await clf.run(nhwcBatch, n);   // Float32Array [n] for the binary head
 *   await clf.release();
 */
import * as ort from 'onnxruntime-node';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { currentVersions } from '../weights/checkpoint.js';
import type { Model } from '../registry.js';
import type { NetworkModel } from '../head.js';
import { OnnxClassifierCore, OnnxModelError, openSession, type OnnxClassifierCoreOptions } from './classifier.js';
import { exportOnnx, type OnnxExport, type OnnxExportOptions } from './export.js';
import { ProtoDecodeError } from './proto.js';
import { readModelSkeleton } from './skeleton.js';

export interface OnnxClassifierOptions extends Omit<OnnxClassifierCoreOptions, 'source'> {
  /**
   * Threads for one inference (ONNX Runtime's intra-op pool). Default: os.availableParallelism(). Inter-op
   * parallelism stays 1: these graphs are a single chain, and a second pool only competes for the same cores.
   */
  threads?: number;
  /**
   * Let idle intra-op threads spin-wait for work (ONNX Runtime's default) instead of sleeping. Default false here:
   * inference shares the CPU with the image-decoding workers of the batch loader (and, on a shared machine, with
   * other jobs), and spinning threads take their cores — measured on the loaded 2-core box, ResNet-152 @320 batch 1
   * went from 1.04 s/image (spinning) to 0.64 s/image (not). Set true on a dedicated machine.
   */
  spinning?: boolean;
}

/** An exported model in onnxruntime-node (CPU). */
export class OnnxClassifier extends OnnxClassifierCore {
  /** Open a .onnx file (path) or in-memory bytes written by `exportOnnx`. */
  static async create(source: string | Uint8Array, opts: OnnxClassifierOptions = {}): Promise<OnnxClassifier> {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new OnnxModelError(`threads must be a positive integer, got ${threads}`);
    let bytes: Uint8Array;
    let name: string;
    let modelPath: string | undefined;
    if (typeof source === 'string') {
      // Only the skeleton (metadata, graph signature) is read here; ONNX Runtime reads the weights from the file
      // itself. Reading the whole file first cost ~500 MB more peak RSS for ResNet-152 (the bytes + ORT's copy).
      name = source;
      modelPath = source;
      try {
        bytes = readModelSkeleton(source);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') throw new OnnxModelError(`${source}: file not found`);
        if (e.code === 'EISDIR') throw new OnnxModelError(`${source}: is a folder, expected a .onnx file`);
        if (err instanceof ProtoDecodeError) throw new OnnxModelError(`${source}: not a readable ONNX model: ${err.message}`);
        throw new OnnxModelError(`${source}: cannot read: ${e.message}`);
      }
    } else if (source instanceof Uint8Array) {
      name = '<bytes>';
      bytes = source;
    } else {
      throw new OnnxModelError(`OnnxClassifier.create needs a file path or a Uint8Array, got ${typeof source}`);
    }
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: opts.spinning ? '1' : '0' }, inter_op: { allow_spinning: opts.spinning ? '1' : '0' } } },
      ...opts.sessionOptions,
    };
    const { session, info, maxBatch } = await openSession(ort, bytes, { ...opts, source: name, sessionOptions, ...(modelPath !== undefined ? { modelPath } : {}) });
    return new OnnxClassifier(ort, session, info, name, maxBatch);
  }
}

/** Write an export to `path` atomically (temporary file in the same folder, fsync, rename), chunk by chunk. */
export function saveOnnx(path: string, exported: OnnxExport): void {
  const target = resolve(path);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = openSync(tmp, 'w');
    try {
      for (const c of exported.chunks) {
        let off = 0;
        while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** exportOnnx + saveOnnx, recording the running nextray version. */
export function exportOnnxFile(model: Model | NetworkModel, path: string, opts: OnnxExportOptions): OnnxExport {
  const exported = exportOnnx(model, { nextrayVersion: currentVersions().package, ...opts });
  saveOnnx(path, exported);
  return exported;
}

export { OnnxModelError };
