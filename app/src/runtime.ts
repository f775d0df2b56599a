/**
 * onnxruntime-web in the page: which build, which execution provider, how many threads.
 *
 * - Threads: every core the browser reports (navigator.hardwareConcurrency) when the page is cross-origin isolated
 *   (SharedArrayBuffer; `nextray serve`, `nextray app serve`, the `_headers` of `app build` and the service worker all
 *   give COOP/COEP). onnxruntime-web's own default is half the cores, at most 4; on the slow devices this page is for,
 *   the other half is the difference between a usable and an unusable wait. Not isolated: one thread.
 * - WebGPU: used when the deployment ships the WebGPU build (model.json `runtimes`) and the browser offers a hardware
 *   adapter (a software adapter such as SwiftShader is slower than wasm, so it is only used when asked for with
 *   `#backend=webgpu`). If the WebGPU session cannot be created, the same build runs the model on its wasm CPU provider,
 *   and the status line says why. `#backend=wasm` forces the plain build.
 * - Only one build is ever downloaded: the plain SIMD + threads build (14 MB) or the WebGPU build (27 MB).
 * - Start-up: most of the time to a first session is onnxruntime-web's own, whatever the model: V8 compiles wasm
 *   functions lazily, on their first call, and creating the first session calls ~3,600 of them (one of 0.9 MB of
 *   wasm); a second session of the same model takes 20-60 ms. startRuntime() pays that with a one-node model while
 *   the page is still reading its model (docs/app.md, "Speed").
 */
import type * as OrtWeb from 'onnxruntime-web';
import { runtimeCacheName } from './runtime-cache.js';

/** onnxruntime-web's version, put in at build time (app/vite.config.ts): the service worker's cache is named after it. */
declare const __RUNTIME_VERSION__: string;

export type Backend = 'auto' | 'wasm' | 'webgpu';

/**
 * A performance mark `nextray:<what>` on the page's timeline (Performance panel, User Timing, bench/trace-warm.mjs):
 * where a visit's time goes, phase by phase. Never throws.
 */
export function mark(what: string): void {
  try {
    performance.mark(`nextray:${what}`);
  } catch {
    /* no User Timing */
  }
}

export interface Runtime {
  ort: typeof OrtWeb;
  /** The build loaded: 'wasm' (plain) or 'webgpu'. */
  build: 'wasm' | 'webgpu';
  /** The execution providers to ask for. */
  providers: string[];
  threads: number;
  /** URLs of the build's files, for the offline cache. */
  files: string[];
  /** Why WebGPU is not used, when it was considered. */
  note: string | null;
}

type Adapter = { info?: { architecture?: string; vendor?: string }; isFallbackAdapter?: boolean; requestDevice(): Promise<{ destroy(): void }> };

/** A WebGPU adapter the browser offers, and whether it is a software one. */
async function gpuAdapter(): Promise<{ adapter: Adapter; software: boolean } | null> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<Adapter | null> } }).gpu;
  if (!gpu) return null;
  try {
    const a = await gpu.requestAdapter();
    if (!a) return null;
    const arch = `${a.info?.architecture ?? ''} ${a.info?.vendor ?? ''}`.toLowerCase();
    return { adapter: a, software: a.isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe|software/.test(arch) };
  } catch {
    return null;
  }
}

/** Null when the adapter gives a device, else why not (a blocklisted driver, a lost device). */
async function deviceProblem(a: Adapter): Promise<string | null> {
  try {
    (await a.requestDevice()).destroy();
    return null;
  } catch (err) {
    return (err as Error).message || String(err);
  }
}

/** Threads for wasm: every core the browser reports when isolated, else one. */
export function wasmThreads(): number {
  return self.crossOriginIsolated ? Math.max(1, navigator.hardwareConcurrency || 1) : 1;
}

export function ortFiles(build: 'wasm' | 'webgpu'): { mjs: string; wasm: string } {
  const base = new URL('ort/', document.baseURI).href;
  const stem = build === 'webgpu' ? 'ort-wasm-simd-threaded.asyncify' : 'ort-wasm-simd-threaded';
  return { mjs: `${base}${stem}.mjs`, wasm: `${base}${stem}.wasm` };
}

/**
 * The runtime build's wasm as the service worker stored it (Cache Storage, this onnxruntime-web version's cache), read
 * whole by the page; null when it is not there yet (a first visit), when Cache Storage is not offered (file://, an
 * insecure origin) or on any error — onnxruntime-web then fetches it as usual.
 *
 * Why: a later visit spent ~0.3 s (idle, 2 cores) receiving the 14 MB through `fetch` (a static route or the worker)
 * and streaming it into the compiler, and ~0.7 s after a browser restart; read with `Cache.match` → `Blob` →
 * `ArrayBuffer` it takes ~0.07 s, and the whole compile ~0.15 s and ~0.3 s (docs/app.md, "Reading the runtime from
 * Cache Storage"). V8's module cache (the compiled module kept by a running renderer) is looked up by the bytes either way.
 */
export async function storedWasm(url: string): Promise<ArrayBuffer | null> {
  try {
    if (typeof caches === 'undefined') return null;
    const hit = await (await caches.open(runtimeCacheName(__RUNTIME_VERSION__))).match(url, { ignoreSearch: true });
    if (!hit?.ok) return null;
    const bytes = await (await hit.blob()).arrayBuffer();
    // A wasm module starts with "\0asm"; anything else is left to the network.
    const head = new Uint8Array(bytes, 0, Math.min(4, bytes.byteLength));
    return head.length === 4 && head[0] === 0 && head[1] === 0x61 && head[2] === 0x73 && head[3] === 0x6d ? bytes : null;
  } catch {
    return null;
  }
}

/** Picks and loads the build (see the module comment). */
export async function loadRuntime(want: Backend, shipped: readonly string[], why: string | null = null): Promise<Runtime> {
  let build: 'wasm' | 'webgpu' = 'wasm';
  let note: string | null = why;
  if (want !== 'wasm') {
    const found = shipped.includes('webgpu') ? await gpuAdapter() : null;
    if (!shipped.includes('webgpu')) note = want === 'webgpu' ? 'WebGPU asked for, but this deployment ships only the wasm runtime' : null;
    else if (!found) note = want === 'webgpu' ? 'WebGPU asked for, but this browser offers no WebGPU adapter' : null;
    else if (found.software && want !== 'webgpu') note = 'the WebGPU adapter is a software one (slower than wasm)';
    else {
      // A device is tried before onnxruntime-web is: a failure inside its WebGPU start-up can leave that build unusable.
      const problem = await deviceProblem(found.adapter);
      if (problem) note = `WebGPU has no device here (${problem}); using wasm instead`;
      else build = 'webgpu';
    }
  }
  const f = ortFiles(build);
  // The build's glue script is imported by onnxruntime-web only once its own module has loaded and the first session
  // is being created, and the 14 MB wasm is fetched only after the glue: importing the glue here, alongside
  // onnxruntime-web, takes that round trip off the way to the wasm (the module map hands onnxruntime-web the same
  // module). A failure is left to onnxruntime-web's own import to report.
  import(/* @vite-ignore */ f.mjs).catch(() => undefined);
  // Read from the worker's cache alongside the imports (see storedWasm).
  const stored = storedWasm(f.wasm);
  const ort = (build === 'webgpu' ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm')) as typeof OrtWeb;
  mark('runtime-imported');
  ort.env.wasm.wasmPaths = f;
  const bytes = await stored;
  if (bytes) {
    mark('runtime-stored');
    ort.env.wasm.wasmBinary = bytes;
  }
  const threads = wasmThreads();
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  return { ort, build, providers: build === 'webgpu' ? ['webgpu'] : ['wasm'], threads, files: [f.mjs, f.wasm], note };
}

/**
 * The smallest ONNX model there is: y = Identity(x), x a float[1] (IR version 8, opset 13), encoded here so that
 * nothing has to be fetched. Creating a session for it runs onnxruntime-web's one-time start-up.
 */
export function identityModel(): Uint8Array {
  const utf8 = new TextEncoder();
  const varint = (n: number): number[] => {
    const out: number[] = [];
    for (; n > 127; n >>>= 7) out.push((n & 127) | 128);
    out.push(n);
    return out;
  };
  const bytes = (field: number, b: number[]): number[] => [...varint((field << 3) | 2), ...varint(b.length), ...b];
  const int = (field: number, v: number): number[] => [...varint(field << 3), ...varint(v)];
  const text = (field: number, t: string): number[] => bytes(field, [...utf8.encode(t)]);
  // ValueInfoProto { name, type: TypeProto { tensor_type { elem_type: FLOAT, shape { dim { dim_value: 1 } } } } }
  const value = (name: string): number[] => [...text(1, name), ...bytes(2, bytes(1, [...int(1, 1), ...bytes(2, bytes(1, int(1, 1)))]))];
  const node = [...text(1, 'x'), ...text(2, 'y'), ...text(4, 'Identity')];
  const graph = [...bytes(1, node), ...text(2, 'start'), ...bytes(11, value('x')), ...bytes(12, value('y'))];
  return new Uint8Array([...int(1, 8), ...bytes(7, graph), ...bytes(8, int(2, 13))]);
}

/**
 * loadRuntime, and on the plain wasm build also onnxruntime-web's one-time start-up (the wasm module instantiated,
 * its threads started, the functions every session needs compiled), done by opening and closing the identity model.
 * A failure there is left to the model's own session to report.
 */
export async function startRuntime(want: Backend, shipped: readonly string[], why: string | null = null): Promise<Runtime> {
  const rt = await loadRuntime(want, shipped, why);
  if (rt.build === 'wasm') {
    try {
      const s = await rt.ort.InferenceSession.create(identityModel(), { executionProviders: rt.providers });
      mark('runtime-started');
      await s.release();
    } catch {
      /* the model's session says what is wrong */
    }
  }
  return rt;
}

/** The backend asked for in the page's address (`#backend=wasm` or `#backend=webgpu`), else 'auto'. */
export function backendFromHash(hash: string): Backend {
  const m = /(?:^#|&)backend=(auto|wasm|webgpu)\b/.exec(hash);
  return (m?.[1] as Backend | undefined) ?? 'auto';
}
