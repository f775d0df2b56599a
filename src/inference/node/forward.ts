/**
 * `forwardNchw`: logits of a network on an NCHW float32 batch, PyTorch's layout, as `nextray forward` reads it from a
 * .npy: in ONNX Runtime (exported in memory with an NCHW input and symbolic height/width, so the batch goes in as it
 * is) or in TF.js (transposed to NHWC), falling back as `engine` says.
 *
 * Start-up is most of such a command's time, so this module loads neither TF.js nor the exporter itself: the network
 * builds its export and its TF.js model on demand, and with `cache` the optimised graph ONNX Runtime makes from the
 * export is kept (ort-cache.ts, GraphSource) and used next time without exporting, reading the weights or optimising.
 */
import { closeSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { packageVersion } from '../../util/package.js';
import type { Model } from '../../models/registry.js';
import type { OnnxExport, OnnxExportOptions } from '../../models/onnx/export.js';
import { InferenceError } from '../core/model.js';
import { loadRuntimeOrSayWhy, type OnnxRuntimeFace, type InferenceRuntime } from './models.js';
import type { OrtCacheOptions, OrtCacheReport } from './ort-cache.js';

/** What ran a forward pass, and how long it took. */
export interface ForwardEngineInfo {
  name: 'onnx' | 'tfjs';
  /** 'onnxruntime-node 1.30.0 (CPU, 2 threads)' or 'TF.js: <backend>'. */
  description: string;
  /** With 'auto': why ONNX Runtime was not used (absent when it was). */
  fallbackReason?: string;
  /** ONNX export + session creation (0 for TF.js). */
  setupSeconds: number;
  /** Forward passes only. */
  seconds: number;
  /** ONNX Runtime with a cache: what the optimised-graph cache did (hit, written, off), and the network's facts. */
  cache?: OrtCacheReport;
}

export interface ForwardNchwOptions {
  /** 'auto' (default): ONNX Runtime, else TF.js with a line to onLog; 'onnx': ONNX Runtime or an error; 'tfjs'. */
  engine?: InferenceRuntime;
  /** Images per forward pass (default 8). */
  batch?: number;
  threads?: number;
  /** Describes the TF.js backend in the engine description (default 'TF.js'); a function is asked after model(). */
  tfjsDescription?: string | (() => string);
  onLog?: (line: string) => void;
  loadRuntime?: () => Promise<OnnxRuntimeFace>;
}

/**
 * A network for `forwardNchw`: its ONNX export (built on demand) and its TF.js model (built on demand, for the TF.js
 * engine or the fallback; the caller disposes it). `forwardNetworkOf` wraps a live model.
 */
export interface ForwardNetwork {
  arch: string;
  exportOnnx(opts: OnnxExportOptions): OnnxExport | Promise<OnnxExport>;
  model(): Promise<Model>;
  /**
   * Keep ONNX Runtime's optimised graph of the export (ort-cache.ts): `path` the weights file it is made from,
   * `identity` everything the export depends on (see GraphSource), `facts` what the caller wants back on a hit (it is
   * asked after exportOnnx, on a miss). Export options are added to the identity here. The first write is deferred to
   * the second run on the weights (OrtCacheOptions.deferFirstWrite) unless `options` says otherwise.
   */
  cache?: { path: string; identity: string; facts?: () => unknown; options?: OrtCacheOptions };
}

/** Blocks of SAMPLE_BYTES read from a weights file for its identity, spread evenly from its first to its last byte. */
export const SAMPLE_BLOCKS = 16;
export const SAMPLE_BYTES = 1 << 16;

/**
 * A cheap identity of a weights file (or a checkpoint folder's model.safetensors) and of the code that exports it, for
 * keying a cached graph without reading the whole file: its absolute path, device, inode, size, modification and
 * status-change times (nanoseconds; any write to the file changes the latter, and no tool sets it back), a SHA-256 of
 * SAMPLE_BLOCKS blocks spread over it, the package version and the size and time of every compiled module of the
 * model zoo and the exporter (a rebuild that changes how a graph is made makes older graphs stale). Hashing the whole
 * 240 MB ResNet-152 file instead cost about as much as reading it (1.1-1.5 s under load on the 2-core machine, against
 * 1.4-22 ms for the samples). Throws when the file cannot be read (the caller runs uncached, and the read that
 * follows reports it).
 */
export async function weightsIdentity(path: string): Promise<string> {
  let file = resolve(path);
  if (statSync(file).isDirectory()) file = join(file, 'model.safetensors');
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const st = fstatSync(fd, { bigint: true });
    h.update(JSON.stringify({ file, dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtime: String(st.mtimeNs), ctime: String(st.ctimeNs) }));
    const size = Number(st.size);
    const buf = Buffer.alloc(Math.min(SAMPLE_BYTES, size));
    for (let i = 0; i < SAMPLE_BLOCKS && buf.length > 0; i++) {
      const at = Math.floor(((size - buf.length) * i) / (SAMPLE_BLOCKS - 1));
      const got = readSync(fd, buf, 0, buf.length, at);
      h.update(buf.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  h.update(`nextray ${packageVersion()}\n`);
  const models = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models');
  for (const dir of [models, join(models, 'onnx')]) {
    for (const name of readdirSync(dir).sort()) {
      if (!name.endsWith('.js')) continue;
      const st = statSync(join(dir, name));
      h.update(`${name} ${st.size} ${st.mtimeMs}\n`);
    }
  }
  return h.digest('hex');
}

/** A live model as a ForwardNetwork (exported from its TF.js variables). */
export function forwardNetworkOf(model: Model): ForwardNetwork {
  return {
    arch: model.arch,
    exportOnnx: async (o) => (await import('../../models/onnx/export.js')).exportOnnx(model, o),
    model: async () => model,
  };
}

/** Logits [n, K] of a network (any head) on an NCHW float32 batch [n, 3, h, w]; see the module comment. */
export async function forwardNchw(
  network: ForwardNetwork | Model,
  data: Float32Array,
  shape: readonly [number, number, number, number],
  opts: ForwardNchwOptions = {},
): Promise<{ logits: Float32Array; engine: ForwardEngineInfo }> {
  const net = 'exportOnnx' in network ? network : forwardNetworkOf(network);
  const [n, , h, w] = shape;
  const batch = opts.batch ?? 8;
  const requested = opts.engine ?? 'auto';
  let fallbackReason: string | undefined;
  // ONNX Runtime missing or refusing the graph: TF.js with 'auto', an error with 'onnx'. The network's own errors
  // (weights that do not match it) are the user's and propagate as they are.
  const fallBack = (err: unknown): void => {
    const why = `ONNX Runtime unavailable: ${(err as Error).message}`;
    if (requested === 'onnx') throw new InferenceError(`${net.arch}: ${why} (use --runtime tfjs or --runtime auto)`);
    fallbackReason = why;
    (opts.onLog ?? ((l: string) => process.stderr.write(l + '\n')))(`nextray: running TF.js instead of ONNX Runtime (${why})`);
  };
  if (requested !== 'tfjs') {
    let rt: OnnxRuntimeFace | undefined;
    try {
      rt = await loadRuntimeOrSayWhy(opts.loadRuntime);
    } catch (err) {
      fallBack(err);
    }
    if (rt) {
      const t0 = performance.now();
      const threads = opts.threads ?? availableParallelism();
      const exportOptions: OnnxExportOptions = { inputSize: Math.max(32, Math.min(h, w, 4096)), inputLayout: 'nchw', dynamicSize: true };
      // The network's errors while exporting are the user's (weights that do not fit): they propagate, not fall back.
      let exportError: unknown;
      const build = async (): Promise<{ bytes: Uint8Array; facts?: unknown }> => {
        try {
          const bytes = (await net.exportOnnx(exportOptions)).toBytes();
          const facts = net.cache?.facts?.();
          return { bytes, ...(facts !== undefined ? { facts } : {}) };
        } catch (err) {
          exportError = err;
          throw err;
        }
      };
      const c = net.cache;
      const { sha256Hex } = c ? await import('../../util/hash.js') : { sha256Hex: undefined };
      const source = c && sha256Hex ? { path: c.path, identity: sha256Hex(JSON.stringify({ network: c.identity, arch: net.arch, exportOptions })), build } : undefined;
      let clf: Awaited<ReturnType<OnnxRuntimeFace['OnnxClassifier']['create']>> | undefined;
      try {
        clf = source
          ? // A forward is mostly a one-shot check of a weights file: its graph is kept from the second run on.
            await rt.OnnxClassifier.create(source, { maxBatch: batch, threads, optimizedCache: { deferFirstWrite: true, ...c!.options } })
          : await rt.OnnxClassifier.create((await build()).bytes, { maxBatch: batch, threads });
      } catch (err) {
        if (exportError !== undefined) throw exportError;
        fallBack(err);
      }
      if (clf) {
        const setupSeconds = (performance.now() - t0) / 1000;
        try {
          const t1 = performance.now();
          const r = await clf.run(data, n, { size: [h, w] });
          const description = `onnxruntime-node ${rt.version} (CPU, ${threads} thread${threads === 1 ? '' : 's'})`;
          return {
            logits: r.logits,
            engine: { name: 'onnx', description, setupSeconds, seconds: (performance.now() - t1) / 1000, ...(source ? { cache: clf.cache } : {}) },
          };
        } finally {
          await clf.release();
        }
      }
    }
  }
  const tf = await import('@tensorflow/tfjs-core');
  const model = await net.model();
  const k = model.numOutputs;
  const out = new Float32Array(n * k);
  const per = 3 * h * w;
  const t0 = performance.now();
  for (let start = 0; start < n; start += batch) {
    const count = Math.min(batch, n - start);
    const logits = tf.tidy(() => {
      const nchw = tf.tensor4d(data.subarray(start * per, (start + count) * per), [count, 3, h, w]);
      return model.forward(tf.transpose(nchw, [0, 2, 3, 1]), false);
    });
    out.set(logits.dataSync() as Float32Array, start * k);
    logits.dispose();
  }
  const described = typeof opts.tfjsDescription === 'function' ? opts.tfjsDescription() : opts.tfjsDescription;
  const engine: ForwardEngineInfo = { name: 'tfjs', description: described ?? 'TF.js', setupSeconds: 0, seconds: (performance.now() - t0) / 1000 };
  if (fallbackReason) engine.fallbackReason = fallbackReason;
  return { logits: out, engine };
}
