/**
 * `OnnxClassifier`: an exported model in onnxruntime-node (CPU binaries shipped in the package; nothing is
 * downloaded), opened from a file path (ONNX Runtime reads the weights itself; JS reads only the skeleton) or bytes.
 * With ort-cache.ts (the optimised-graph cache) the Node half of the one ONNX Runtime seam: the only module that
 * imports onnxruntime-node (src/inference/core/onnx-session.ts is the runtime-agnostic half the browser uses).
 * It loads neither the exporter nor TF.js, so running an .onnx file starts fast: `nextray predict`'s cold start.
 */
import * as ort from 'onnxruntime-node';
import { availableParallelism } from 'node:os';
import { OnnxClassifierCore, openSession, type OnnxClassifierCoreOptions } from '../core/onnx-session.js';
import { OnnxModelError } from '../../models/onnx/info.js';
import { ProtoDecodeError } from '../../models/onnx/proto.js';
import { readModelSkeleton } from '../../models/onnx/skeleton.js';
import { createCachedSession, type GraphSource, type OrtCacheOptions, type OrtCacheReport } from './ort-cache.js';

/** The onnxruntime-node module itself, for callers that run graphs of their own (int8 calibration runs). */
export { ort };

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
  /**
   * Keep ONNX Runtime's optimised graph in a cache and load it next time (ort-cache.ts): `true` or options
   * (folder, log, the model's sha256 when the caller has it). File paths only, and only at the default level 'all'
   * (sessionOptions setting graphOptimizationLevel or optimizedModelFilePath turn it off). Default off here; the
   * CLI turns it on (`--no-onnx-cache` turns it off).
   */
  optimizedCache?: boolean | OrtCacheOptions;
}

/** An exported model in onnxruntime-node (CPU). */
export class OnnxClassifier extends OnnxClassifierCore {
  /**
   * Open a .onnx file (path), in-memory bytes written by `exportOnnx`, or a graph built on demand (GraphSource: with
   * `optimizedCache`, a cached graph is used without building it; see ort-cache.ts).
   */
  static async create(source: string | Uint8Array | GraphSource, opts: OnnxClassifierOptions = {}): Promise<OnnxClassifier> {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new OnnxModelError(`threads must be a positive integer, got ${threads}`);
    let bytes: Uint8Array;
    let name: string;
    let modelPath: string | undefined;
    let graph: GraphSource | undefined;
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
    } else if (source && typeof source === 'object' && typeof (source as GraphSource).build === 'function') {
      graph = source as GraphSource;
      name = graph.path;
      bytes = new Uint8Array(0);
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
    let cache: OrtCacheReport = { status: 'off', reason: 'not asked for' };
    let modelBytes: Uint8Array | undefined;
    const cacheOpts = opts.optimizedCache === true ? {} : opts.optimizedCache || undefined;
    const cacheable = (modelPath !== undefined || graph !== undefined) && sessionOptions.graphOptimizationLevel === 'all' && sessionOptions.optimizedModelFilePath === undefined;
    if (cacheOpts && !cacheable) cache = { status: 'off', reason: modelPath === undefined && graph === undefined ? 'model given as bytes' : 'session options set the optimisation level or file' };
    let createSession: (() => Promise<ort.InferenceSession>) | undefined;
    if (graph && cacheOpts && cacheable) {
      // The session first (it may need no model bytes at all), then the metadata from what it gives: the skeleton on
      // a hit, the built bytes otherwise.
      const r = await createCachedSession(ort, graph, sessionOptions, cacheOpts);
      cache = r.cache;
      modelBytes = r.bytes;
      bytes = r.model!;
      createSession = async () => r.session;
    } else if (graph) {
      const built = await graph.build();
      bytes = built.bytes;
      cache = { ...cache, ...(built.facts !== undefined ? { facts: built.facts } : {}) };
    } else if (cacheOpts && cacheable) {
      createSession = async () => {
        const r = await createCachedSession(ort, modelPath!, sessionOptions, cacheOpts);
        cache = r.cache;
        modelBytes = r.bytes;
        return r.session;
      };
    }
    const { session, info, maxBatch } = await openSession(ort, bytes, {
      ...opts,
      source: name,
      sessionOptions,
      ...(modelPath !== undefined ? { modelPath } : {}),
      ...(createSession ? { createSession } : {}),
    });
    const clf = new OnnxClassifier(ort, session, info, name, maxBatch);
    clf.cache = cache;
    clf.modelBytes = modelBytes;
    return clf;
  }

  /** A cached graph ONNX Runtime uses in place (its weights are these bytes): must live as long as the session. */
  private modelBytes: Uint8Array | undefined;

  /** What the optimised-model cache did for this session (status 'off' with a reason when not used). */
  cache: OrtCacheReport = { status: 'off', reason: 'not asked for' };
}

