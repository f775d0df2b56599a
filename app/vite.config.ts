/**
 * Builds the offline web app into dist/app (shipped in the npm package; `nextray serve` and `nextray app build`
 * serve/copy it). onnxruntime-web's wasm runtime is copied beside the page (ort/) and loaded from there — never
 * from a CDN. ORT is used in its non-bundled form (ort.min.mjs), which imports its wasm glue from
 * `ort.env.wasm.wasmPaths`, so threads' workers start from a plain local file.
 */
import { defineConfig, type Plugin } from 'vite';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ortDist = resolve(here, '..', 'node_modules', 'onnxruntime-web', 'dist');
/** The plain wasm build (SIMD + threads) and the WebGPU build; the page loads one of them. */
export const ORT_FILES = [
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
  'ort-wasm-simd-threaded.asyncify.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
];

function copyOrtRuntime(): Plugin {
  let outDir = '';
  return {
    name: 'nextray-copy-ort-runtime',
    apply: 'build',
    configResolved(c) {
      outDir = resolve(c.root, c.build.outDir);
    },
    writeBundle() {
      mkdirSync(join(outDir, 'ort'), { recursive: true });
      for (const f of ORT_FILES) copyFileSync(join(ortDist, f), join(outDir, 'ort', f));
    },
  };
}

export default defineConfig({
  root: here,
  base: './',
  logLevel: 'warn',
  resolve: {
    alias: {
      'onnxruntime-web/wasm': join(ortDist, 'ort.wasm.min.mjs'),
      'onnxruntime-web/webgpu': join(ortDist, 'ort.webgpu.min.mjs'),
    },
  },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: {
    outDir: resolve(here, '..', 'dist', 'app'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  plugins: [copyOrtRuntime()],
});
