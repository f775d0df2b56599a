/**
 * The CLI's command registry: every `nextray` command with its one-line summary and the module that registers it.
 * Registering a command imports its module, and those import what the command runs (TF.js, ONNX Runtime, sharp,
 * the native addon, fastify, BullMQ): so the program registers only the command being run, and `--help` /
 * `--version` list these summaries without loading any of it. Light module: commander types only.
 */
import type { Command } from 'commander';

export interface CommandEntry {
  readonly name: string;
  /** How the command appears in `nextray --help`: name, `[options]`, arguments (what commander prints for it). */
  readonly term: string;
  /** One line for `nextray --help`; the command's own `--help` has the full description. */
  readonly summary: string;
  /** Registers the command (and all it imports) on the program. */
  readonly register: () => Promise<(program: Command) => unknown>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'synth', term: 'synth [options]', summary: 'Write a synthetic dataset in the MURA-v1.1 layout.',
    register: async () => (await import('./synth.js')).registerSynth },
  { name: 'data', term: 'data', summary: 'Inspect and split MURA-format datasets.',
    register: async () => (await import('./data.js')).registerData },
  { name: 'models', term: 'models [options]', summary: 'List the model architectures with parameter counts.',
    register: async () => (await import('./models.js')).registerModels },
  { name: 'forward', term: 'forward [options]', summary: 'Run a network on an NCHW .npy batch and write its logits as .npy.',
    register: async () => (await import('./forward.js')).registerForward },
  { name: 'train', term: 'train [options]', summary: 'Train a model (resumable with --resume RUN).',
    register: async () => (await import('./train.js')).registerTrain },
  { name: 'sweep', term: 'sweep [options]', summary: 'Run a grid of training configs and write the results table.',
    register: async () => (await import('./sweep.js')).registerSweep },
  { name: 'evaluate', term: 'evaluate [options]', summary: 'Evaluate a model or predictions per region, image and study; write a report.',
    register: async () => (await import('./evaluate.js')).registerEvaluate },
  { name: 'demo', term: 'demo [options]', summary: 'End to end on a synthetic dataset: train, evaluate, write the HTML report.',
    register: async () => (await import('./demo.js')).registerDemo },
  { name: 'export', term: 'export [options]', summary: 'Export a model to ONNX for onnxruntime-node / onnxruntime-web.',
    register: async () => (await import('./export.js')).registerExport },
  { name: 'predict', term: 'predict [options] [inputs...]', summary: 'Predict normal/abnormal for X-ray images, folders or a dataset.',
    register: async () => (await import('./predict.js')).registerPredict },
  { name: 'serve', term: 'serve [options]', summary: 'Serve the offline web app and a REST API for one model.',
    register: async () => (await import('./serve.js')).registerServe },
  { name: 'app', term: 'app', summary: 'Write the offline web app with a model as a static folder.',
    register: async () => (await import('./app.js')).registerApp },
  { name: 'calibrate', term: 'calibrate [options]', summary: 'Fit the OOD gate, the temperature and an operating point for a run.',
    register: async () => (await import('./calibrate.js')).registerCalibrate },
  { name: 'adapt', term: 'adapt [options]', summary: "Fit the model's last layer to a clinic's own labelled studies, on this machine.",
    register: async () => (await import('./adapt.js')).registerAdapt },
  { name: 'pacs', term: 'pacs', summary: 'Serve a PACS: predict each arriving study and store the results back.',
    register: async () => (await import('./pacs.js')).registerPacs },
];
