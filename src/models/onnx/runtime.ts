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
import { resolve } from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import { currentVersions } from '../weights/checkpoint.js';
import type { Model } from '../registry.js';
import type { NetworkModel } from '../head.js';
import { OnnxModelError } from './classifier.js';
import { exportOnnx, type OnnxExport, type OnnxExportOptions } from './export.js';

export { OnnxClassifier, type OnnxClassifierOptions } from './node-session.js';

/** Write an export to `path` atomically (util/atomic.ts: temporary file, fsync, rename), chunk by chunk. */
export function saveOnnx(path: string, exported: OnnxExport): void {
  writeFileAtomic(resolve(path), exported.chunks);
}

/** exportOnnx + saveOnnx, recording the running nextray version. */
export function exportOnnxFile(model: Model | NetworkModel, path: string, opts: OnnxExportOptions): OnnxExport {
  const exported = exportOnnx(model, { nextrayVersion: currentVersions().package, ...opts });
  saveOnnx(path, exported);
  return exported;
}

export { OnnxModelError };
