/**
 * Node face of ONNX inference: `OnnxClassifier.create(path | bytes, { threads })` over onnxruntime-node (CPU
 * binaries shipped in the package; nothing is downloaded), plus writing an export to disk atomically.
 *
 * With node-session.ts (the OnnxClassifier class, re-exported here), the only modules under src/models/onnx that import onnxruntime-node or node:fs; browser code uses
 * `OnnxClassifierCore.createWith(ort, bytes)` from classifier.ts with onnxruntime-web and the same .onnx file.
 *
 * Typical use (evaluation / prediction):
 *   const clf = await OnnxClassifier.create('model.onnx', { threads: 2 });
 *   const { probabilities } = await clf.run(nhwcBatch, n);   // Float32Array [n] for the binary head
 *   await clf.release();
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { currentVersions } from '../weights/checkpoint.js';
import type { Model } from '../registry.js';
import type { NetworkModel } from '../head.js';
import { OnnxModelError } from './classifier.js';
import { exportOnnx, type OnnxExport, type OnnxExportOptions } from './export.js';

export { OnnxClassifier, type OnnxClassifierOptions } from './node-session.js';

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
