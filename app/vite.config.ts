/**
 * Builds the offline web app into dist/app (shipped in the npm package; `nextray serve` serves it and `nextray app
 * build` copies it). Besides Vite's bundle it writes:
 *  - ort/: onnxruntime-web's two runtime builds, loaded from there — never from a CDN: the plain SIMD + threads
 *    build and the WebGPU build. The page downloads only the one it uses; `nextray app build` ships the WebGPU one only
 *    when asked (--webgpu). ORT is used in its non-bundled form (ort.*.min.mjs), which imports its wasm glue from
 *    `ort.env.wasm.wasmPaths`, so threads' workers start from a plain local file.
 *  - icons/: the web app manifest's PNG icons, drawn here from an SVG (no binary file in the repository).
 *  - sw.js: the service worker (src/sw.ts) with the shell's file list and a hash of their contents put in.
 */
import { defineConfig, type Plugin } from 'vite';
import { build as esbuild } from 'esbuild';
import sharp from 'sharp';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ORT_BUILDS } from '../src/serve/model-description.js';

const here = dirname(fileURLToPath(import.meta.url));
const ortDir = resolve(here, '..', 'node_modules', 'onnxruntime-web');
const ortDist = join(ortDir, 'dist');
const ortVersion = (JSON.parse(readFileSync(join(ortDir, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * The icon: a bone across a dark square. `pad` shrinks the drawing towards the centre (maskable icons must keep their
 * content inside the middle 80% circle).
 */
function iconSvg(size: number, pad: number): string {
  const s = size;
  const k = (1 - 2 * pad) * s;
  const o = pad * s;
  const p = (x: number): number => o + x * k;
  const r = 0.11 * k;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}" viewBox="0 0 ${s} ${s}">
  <rect width="${s}" height="${s}" rx="${pad ? 0 : 0.18 * s}" fill="#12324f"/>
  <g fill="#f4f1e8" transform="rotate(-40 ${s / 2} ${s / 2})">
    <rect x="${p(0.22)}" y="${p(0.455)}" width="${p(0.78) - p(0.22)}" height="${0.09 * k}" rx="${0.03 * k}"/>
    <circle cx="${p(0.2)}" cy="${p(0.43)}" r="${r}"/><circle cx="${p(0.2)}" cy="${p(0.57)}" r="${r}"/>
    <circle cx="${p(0.8)}" cy="${p(0.43)}" r="${r}"/><circle cx="${p(0.8)}" cy="${p(0.57)}" r="${r}"/>
  </g>
  <circle cx="${p(0.56)}" cy="${p(0.44)}" r="${0.075 * k}" fill="#fde725" fill-opacity="0.9"/>
</svg>`;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

/** Not in the service worker's precache: the runtimes (kept on first use, one build only), the worker itself, and what app build adds. */
const NOT_PRECACHED = /^(ort\/|sw\.js$|model\.|_headers$|README\.txt$)|\.map$/;

/** TF.js itself and the library's TF.js engine (src/engine/), wherever they are imported from. */
const TFJS = /[\\/](src[\\/]engine|node_modules[\\/]@tensorflow)[\\/]/;

/**
 * The page runs models with onnxruntime-web, never with TF.js. The browser entry also carries the model zoo and the
 * ONNX writer, which import TF.js, and TF.js registers its optimisers, gradients and kernels when imported: side
 * effects the page does not need. Declaring those modules free of side effects (as resolveId must: it takes
 * precedence over the packages' own `sideEffects`) leaves TF.js out of the page's bundle unless the page used it.
 */
function noTfjsSideEffects(): Plugin {
  return {
    name: 'nextray-no-tfjs-side-effects',
    enforce: 'pre',
    apply: 'build',
    async resolveId(source, importer, options) {
      if (!source.startsWith('@tensorflow/') && !/(^|\/)engine\//.test(source) && !(importer && TFJS.test(importer) && source.startsWith('.'))) return null;
      const r = await this.resolve(source, importer, { ...options, skipSelf: true });
      return r && !r.external && TFJS.test(r.id) ? { ...r, moduleSideEffects: false } : r;
    },
  };
}

function offlineApp(): Plugin {
  let outDir = '';
  return {
    name: 'nextray-offline-app',
    apply: 'build',
    configResolved(c) {
      outDir = resolve(c.root, c.build.outDir);
    },
    async closeBundle() {
      mkdirSync(join(outDir, 'ort'), { recursive: true });
      for (const f of [...ORT_BUILDS.wasm, ...ORT_BUILDS.webgpu]) copyFileSync(join(ortDist, f), join(outDir, 'ort', f));
      mkdirSync(join(outDir, 'icons'), { recursive: true });
      for (const [name, size, pad] of [['icon-192.png', 192, 0], ['icon-512.png', 512, 0], ['icon-180.png', 180, 0], ['icon-maskable-512.png', 512, 0.12]] as const) {
        await sharp(Buffer.from(iconSvg(size, pad))).png({ compressionLevel: 9 }).toFile(join(outDir, 'icons', name));
      }
      const files = walk(outDir)
        .map((f) => relative(outDir, f).split(sep).join('/'))
        .filter((f) => !NOT_PRECACHED.test(f));
      const hash = createHash('sha256');
      for (const f of files) hash.update(f).update('\0').update(readFileSync(join(outDir, f))).update('\0');
      hash.update(ortVersion);
      const r = await esbuild({
        entryPoints: [join(here, 'src', 'sw.ts')],
        bundle: true,
        format: 'iife',
        target: 'es2022',
        minify: true,
        write: false,
        define: {
          __PRECACHE__: JSON.stringify(files),
          __VERSION__: JSON.stringify(hash.digest('hex').slice(0, 16)),
          __RUNTIME_VERSION__: JSON.stringify(ortVersion),
        },
      });
      writeFileSync(join(outDir, 'sw.js'), r.outputFiles[0]!.text);
    },
  };
}

export default defineConfig({
  root: here,
  base: './',
  logLevel: 'warn',
  resolve: {
    alias: [
      // The page imports the package's browser entry as any user of the package would ('nextray/browser', the
      // `exports` map's browser build); here it is built from the entry's source (app/tsconfig.json maps it too).
      { find: /^nextray\/browser$/, replacement: resolve(here, '..', 'src', 'browser.ts') },
      { find: 'onnxruntime-web/wasm', replacement: join(ortDist, 'ort.wasm.min.mjs') },
      { find: 'onnxruntime-web/webgpu', replacement: join(ortDist, 'ort.webgpu.min.mjs') },
      // The DICOM codecs' Emscripten glue requires fs/path on its Node branch only (app/src/node-stub.ts).
      { find: /^(fs|path)$/, replacement: join(here, 'src', 'node-stub.ts') },
    ],
  },
  // The page reads its runtime build from the service worker's cache for this onnxruntime-web version (runtime.ts).
  define: { __RUNTIME_VERSION__: JSON.stringify(ortVersion) },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: {
    outDir: resolve(here, '..', 'dist', 'app'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  plugins: [noTfjsSideEffects(), offlineApp()],
});
