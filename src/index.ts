/**
 * neXt-Ray's library API, one namespace per stage (data flows one way: data -> models -> train -> calibrate ->
 * evaluate; inference runs what they made; docs/ARCHITECTURE.md):
 *
 *   import { data, models, engine, train, evaluate } from 'nextray';
 *   await engine.initEngine();
 *   const ds = await data.loadMuraDataset('~/datasets');
 *   const net = models.createModel('resnet152', { head: 'binary', dropout: 0.5 });
 *
 * The CLI (`nextray`) is a thin face over these. This is the Node entry ('nextray', 'nextray/node'); the
 * browser-safe subset (no node:, sharp, onnxruntime-node or native addon) is src/browser.ts ('nextray/browser').
 */
export * as data from './data/index.js';
export * as models from './models/index.js';
export * as engine from './engine/index.js';
export * as train from './train/index.js';
/** The run directory's layout (config, split, metrics, checkpoints), in one place. */
export * as runs from './runs/index.js';
/** Fitting on held-out data after training: OOD gate, temperature, operating point (stored in the checkpoint). */
export * as calibrate from './calibrate/index.js';
export * as evaluate from './evaluate/index.js';
/** Site adaptation: the browser-safe fitting (src/calibrate/adapt/) and the Node host of `nextray adapt`. */
export * as adaptation from './calibrate/adapt/index.js';
export { runAdapt, readLocalStudies, computeModelOutputs, type RunAdaptOptions, type RunAdaptResult } from './calibrate/adapt-host.js';
/** Pipelines over the stages (the demo). */
export * as workflows from './workflows/index.js';
/** Running trained models on files: openModel (.onnx / checkpoint / run dir), predictFiles, ensembles, studies, DICOM. */
export * as inference from './inference/node/index.js';
/** Weight files by path (safetensors, .pth, .npy, checkpoint folders); `models.weights` has the pure parsers. */
export * as weights from './models/weights/index.js';
export * as errors from './util/errors.js';

/**
 * The facade: `const model = await load('model.onnx' | 'runs/r1' | [a, b]); await model.predict(['scans/'], { heatmaps })`
 * (src/inference/README.md).
 */
export { load } from './inference/node/load.js';
export type { NodeLoadOptions, NodeModel, NodeModelSpec, NodePredictOptions } from './inference/node/load.js';
export type { PredictionResult, StudyPrediction, ViewPrediction } from './inference/core/load.js';
