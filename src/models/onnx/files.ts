/**
 * Writing an export to disk (Node): atomically (util/atomic.ts: temporary file, fsync, rename), chunk by chunk,
 * recording the running nextray version. Running an exported model is src/inference's job (the ONNX Runtime seam:
 * src/inference/node/onnx-session.ts in Node, src/inference/core/onnx-session.ts with onnxruntime-web).
 */
import { resolve } from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import { currentVersions } from '../weights/checkpoint.js';
import type { Model } from '../registry.js';
import type { NetworkModel } from '../head.js';
import { exportOnnx, type OnnxExport, type OnnxExportOptions } from './export.js';

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
