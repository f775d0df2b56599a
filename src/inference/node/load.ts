/**
 * The facade in Node: `load()` of the browser-safe core (../core/load.ts) that also takes paths — an .onnx file, a
 * checkpoint folder or a run directory (openModel: onnxruntime-node, TF.js fallback for checkpoints), several for an
 * ensemble — and predicts files and folders (walked for PNG, JPEG and DICOM) as well as bytes and decoded pixels:
 *
 *   const model = await load('model.onnx');                               // or a run dir, or [a, b] for an ensemble
 *   const { views, studies, unreadable } = await model.predict(['scans/'], { heatmaps: true });
 *   await model.release();
 *
 * Files are decoded on worker threads ahead of inference (predictFiles: a bounded window, so memory stays flat on
 * any folder); PNG/JPEG bytes by sharp, DICOM bytes by the core's reader with the Node codecs for compressed frames
 * (src/data/dicom/node-codecs.ts). Opening an .onnx file loads neither TF.js nor sharp in this thread.
 */
import { nodeFrameDecoders } from '../../data/dicom/node-codecs.js';
import { greyWarnings } from '../../data/preprocess.js';
import {
  groupStudies,
  load as loadCore,
  noHeatmaps,
  ViewCollector,
  type DecodedImage,
  type ImageDecoder,
  type LoadOptions,
  type ModelSpec,
  type NextrayModel,
  type OnnxModelSpec,
  type PredictionResult,
  type PredictOptions,
  type UnreadableInput,
  type ViewInput,
  type ViewPrediction,
} from '../core/load.js';
import type { InferenceModel } from '../core/model.js';
import { expandInputs } from './inputs.js';
import { openModel, type OpenModelOptions } from './models.js';
import { predictFiles } from './predict.js';

/** What Node's `load` opens: paths (an .onnx file, a checkpoint folder, a run directory; several: an ensemble) or what the core opens. */
export type NodeModelSpec = string | readonly string[] | ModelSpec;

export interface NodeLoadOptions extends Omit<LoadOptions, 'decodeImage' | 'dicomDecoders'>, OpenModelOptions {}

export interface NodePredictOptions extends PredictOptions {
  /** Decoding threads for files (default min(2, cores); 0 = this thread). */
  workers?: number;
  /** Each input that gave no view (a missing path, an empty folder, an unreadable image), when it is found. */
  onUnreadable?: (input: UnreadableInput) => void;
  /** Each warning of a view that decoded but looks wrong. */
  onWarning?: (view: string, warning: string) => void;
  /**
   * The bytes of path inputs whose names are not UTF-8, keyed by the name as shown (`\xHH` for the odd bytes): the
   * `openPaths` of expandInputs, for a caller that listed the files itself. Such files are opened by these bytes.
   */
  openPaths?: ReadonlyMap<string, Uint8Array>;
}

/** A view in Node: a path (file or folder) or what the core takes (bytes, decoded pixels). */
export type NodeViewInput = string | ViewInput;

export interface NodeModel extends Omit<NextrayModel, 'predict'> {
  predict(inputs: readonly NodeViewInput[], opts?: NodePredictOptions): Promise<PredictionResult>;
}

/** PNG/JPEG bytes through sharp (src/data/images.ts), loaded on first use. */
const sharpImageDecoder: ImageDecoder = async (bytes, name, opts): Promise<DecodedImage> => {
  const { decodeGrey, ImageError } = await import('../../data/images.js');
  try {
    const img = await decodeGrey(bytes, opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {});
    return { grey: img.data, width: img.width, height: img.height, format: bytes[0] === 0x89 ? 'png' : 'jpeg', warnings: greyWarnings(img.data, img.bitDepth) };
  } catch (err) {
    // The decoder names the input '<bytes>'; the view's name is more use to whoever reads the problem.
    if (err instanceof ImageError) throw new ImageError(name, err.problem);
    throw err;
  }
};

function isPathSpec(spec: NodeModelSpec): spec is string | readonly string[] {
  return typeof spec === 'string' || (Array.isArray(spec) && spec.every((s) => typeof s === 'string'));
}

/** Opens `spec` (see NodeModelSpec) for prediction; the options also say how paths are opened (engine, threads, cache). */
export async function load(spec: NodeModelSpec, opts: NodeLoadOptions = {}): Promise<NodeModel> {
  const members: (InferenceModel | OnnxModelSpec)[] = [];
  if (isPathSpec(spec)) {
    const paths = typeof spec === 'string' ? [spec] : [...spec];
    try {
      for (const p of paths) members.push(await openModel(p, opts));
    } catch (err) {
      for (const m of members) await (m as InferenceModel).release();
      throw err;
    }
  } else members.push(...((Array.isArray(spec) ? spec : [spec]) as (InferenceModel | OnnxModelSpec)[]));
  const core = await loadCore(members, {
    decodeImage: sharpImageDecoder,
    dicomDecoders: nodeFrameDecoders,
    ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
    ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}),
    ...(opts.warmup ? { warmup: true } : {}),
  });
  return new NodeLoadedModel(core, opts);
}

class NodeLoadedModel implements NodeModel {
  constructor(
    private readonly core: NextrayModel,
    private readonly opts: NodeLoadOptions,
  ) {}

  get name(): string {
    return this.core.name;
  }
  get sha256(): string {
    return this.core.sha256;
  }
  get threshold(): number {
    return this.core.threshold;
  }
  get thresholdSource(): 'option' | 'model' {
    return this.core.thresholdSource;
  }
  get cards(): NextrayModel['cards'] {
    return this.core.cards;
  }
  get ensemble(): NextrayModel['ensemble'] {
    return this.core.ensemble;
  }
  get hasHeatmaps(): boolean {
    return this.core.hasHeatmaps;
  }
  get hasOodGate(): boolean {
    return this.core.hasOodGate;
  }

  decode(input: Parameters<NextrayModel['decode']>[0], opts?: Parameters<NextrayModel['decode']>[1]): ReturnType<NextrayModel['decode']> {
    return this.core.decode(input, opts);
  }

  warmup(): Promise<void> {
    return this.core.warmup();
  }

  /**
   * Predicts paths (files as given, folders walked) and in-memory views, in input order; paths are decoded on
   * worker threads. Inputs that give no view are reported (onUnreadable, `unreadable`) and the rest go on.
   */
  async predict(inputs: readonly NodeViewInput[], opts: NodePredictOptions = {}): Promise<PredictionResult> {
    if (!Array.isArray(inputs)) throw new TypeError('predict: give an array of paths or views');
    if (opts.heatmaps && !this.core.hasHeatmaps) throw noHeatmaps(this.core.name);
    const views: ViewPrediction[] = [];
    const unreadable: UnreadableInput[] = [];
    let inferenceSeconds = 0;
    let engineSeconds = 0;
    const report = (u: UnreadableInput): void => {
      unreadable.push(u);
      opts.onUnreadable?.(u);
    };
    // Consecutive paths go through the file pipeline together, consecutive in-memory views through the core.
    for (let i = 0; i < inputs.length; ) {
      let j = i;
      const paths = typeof inputs[i] === 'string';
      while (j < inputs.length && (typeof inputs[j] === 'string') === paths) j++;
      const segment = inputs.slice(i, j);
      i = j;
      if (paths) {
        const { files, problems, openPaths } = expandInputs(segment as string[], opts.openPaths);
        for (const p of problems) report({ input: p.input, problem: p.problem });
        if (!files.length) continue;
        const collector = new ViewCollector(this.core.ensemble, { ...(opts.heatmaps ? { heatmaps: true } : {}), ...(opts.onView ? { onView: opts.onView } : {}) });
        const maxPixels = opts.maxPixels ?? this.opts.maxPixels;
        const res = await predictFiles(this.core.ensemble, files, {
          ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
          ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
          ...(maxPixels !== undefined ? { maxPixels } : {}),
          ...(openPaths.size ? { openPaths } : {}),
          ...(collector.outputs.length ? { outputs: collector.outputs } : {}),
          onBatch: collector.onBatch,
          onBadFile: (b) => report({ input: b.file, problem: b.problem }),
          ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        });
        views.push(...collector.views);
        inferenceSeconds += res.inferenceSeconds;
        engineSeconds += collector.engineSeconds;
      } else {
        const res = await this.core.predict(segment as ViewInput[], {
          ...opts,
          onView: async (v) => {
            for (const w of v.warnings) opts.onWarning?.(v.view.name, w);
            await opts.onView?.(v);
          },
        });
        for (const u of res.unreadable) report(u);
        views.push(...res.views); // grouped with the file views below
        inferenceSeconds += res.inferenceSeconds;
        engineSeconds += res.engineSeconds;
      }
    }
    return { views, studies: groupStudies(views, this.core.threshold), unreadable, inferenceSeconds, engineSeconds };
  }

  release(): Promise<void> {
    return this.core.release();
  }
}
