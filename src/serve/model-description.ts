/**
 * `model.json`: what a deployment of the web page serves — the model file, its SHA-256 and size, its name, and the
 * onnxruntime-web builds beside the page. The page reads it on every online visit (a few hundred bytes) to know
 * whether the model it stored for offline use is still the current one (app/src/store.ts). `nextray serve` answers it
 * at /model.json; `nextray app build` writes it into the folder.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { sha256File, sha256Hex } from '../util/hash.js';

export interface ModelDescription {
  file: 'model.onnx';
  sha256: string;
  bytes: number;
  name: string;
  /** 'wasm' (plain SIMD + threads build) and/or 'webgpu', as found in the app folder's ort/. */
  runtimes: string[];
}

/** The runtime builds the page can load, by the files each needs (app/vite.config.ts copies them). */
export const ORT_BUILDS: Record<'wasm' | 'webgpu', string[]> = {
  wasm: ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'],
  webgpu: ['ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'],
};

/** The builds present in an app folder's ort/. */
export function runtimesIn(appDir: string): string[] {
  return (Object.keys(ORT_BUILDS) as (keyof typeof ORT_BUILDS)[]).filter((b) => ORT_BUILDS[b].every((f) => existsSync(join(appDir, 'ort', f))));
}

const cache = new Map<string, { key: string; sha256: string }>();

/** The description of a model given as a path (hashed once per size + mtime) or as bytes. */
export async function describeModel(model: { path: string } | { bytes: Uint8Array }, appDir: string, name?: string): Promise<ModelDescription> {
  let sha256: string;
  let bytes: number;
  if ('bytes' in model) {
    bytes = model.bytes.byteLength;
    sha256 = sha256Hex(model.bytes);
  } else {
    const st = statSync(model.path);
    bytes = st.size;
    const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
    const hit = cache.get(model.path);
    if (hit && hit.key === key) sha256 = hit.sha256;
    else {
      sha256 = await sha256File(model.path);
      cache.set(model.path, { key, sha256 });
    }
  }
  const fallback = 'path' in model ? basename(model.path).replace(/\.onnx$/i, '') : 'model';
  return { file: 'model.onnx', sha256, bytes, name: name ?? fallback, runtimes: runtimesIn(appDir) };
}
