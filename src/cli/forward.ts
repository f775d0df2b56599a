/**
 * `nextray forward`: runs a network on a NumPy batch and writes the logits, so a user can check a weight
 * conversion against PyTorch: same weights, same NCHW float32 input, compare the two logit arrays.
 *
 * The classifier comes from the weights: torchvision's 1000-class `fc`/`classifier`, any other class count, or the
 * MURA binary head (one output) — from a .pth/.safetensors file or a project checkpoint folder (its
 * model.safetensors). Inputs/outputs are PyTorch's layout (NCHW in, [N, C] out); the NHWC transpose is internal.
 *
 * Runtimes: by default (`--runtime auto`) the network runs in ONNX Runtime — exported in memory straight from the
 * weights, with an NCHW input and symbolic height/width, so the .npy goes in as it is — and falls back to TF.js (with
 * a notice) when onnxruntime-node does not load; `--runtime onnx` insists on ONNX Runtime; `--runtime tfjs` runs
 * TF.js, on the backend `--engine` names (cpu, native, tfjs-node; naming one implies TF.js). `--engine onnx|tfjs`,
 * the old spelling of the runtime, still works with a one-line notice. The summary says which runtime ran.
 */
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import { CliError, parseIntOption, printJson, resolveRuntime, RUNTIMES, type Runtime } from './common.js';
import type { EngineName } from '../engine/options.js';
import { forwardNchw, weightsIdentity, type ForwardNetwork } from '../inference/node/forward.js';
import { ALL_ARCHS as ARCHS, isArch } from '../models/arch-names.js';
import type { Model } from '../models/registry.js';
import { readNpyFile, readStateDict, writeNpyFile } from '../models/weights/files.js';
import type { StateDict } from '../models/weights/types.js';
import { FileWriteError, rethrowWithPrefix } from '../util/errors.js';

interface ForwardFlags {
  arch: string;
  weights: string;
  input: string;
  output: string;
  batch: number;
  runtime: Runtime;
  /** The TF.js backend (or, in its old meaning, the runtime: onnx, tfjs). */
  engine?: ForwardEngine;
  threads?: number;
  json?: boolean;
  /** Keep / use ONNX Runtime's optimised graph of these weights (default true; --no-onnx-cache). */
  onnxCache: boolean;
}

/** What the weights say about the network, kept with a cached graph so that a hit need not read them. */
interface WeightFacts {
  numClasses: number;
  layout: 'torch' | 'tfjs';
  head: 'binary' | 'imagenet';
}

function isWeightFacts(x: unknown): x is WeightFacts {
  const f = x as WeightFacts | null;
  return (
    typeof f === 'object' && f !== null && Number.isInteger(f.numClasses) && f.numClasses >= 1 &&
    (f.layout === 'torch' || f.layout === 'tfjs') && (f.head === 'binary' || f.head === 'imagenet')
  );
}

const TFJS_BACKENDS = ['auto', 'cpu', 'native', 'tfjs-node'] as const;
/** TF.js backends, and the two old runtime values --engine still takes. */
const FORWARD_ENGINES = [...TFJS_BACKENDS, 'onnx', 'tfjs'] as const;
type ForwardEngine = (typeof FORWARD_ENGINES)[number];

function parseEngine(value: string): ForwardEngine {
  if (!(FORWARD_ENGINES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`Allowed choices are ${TFJS_BACKENDS.join(', ')} (TF.js backends; the runtime is --runtime).`);
  }
  return value as ForwardEngine;
}

/** The runtime and TF.js backend the flags ask for (see the module comment). */
function runtimeAndBackend(flags: ForwardFlags): { runtime: Runtime; backend: EngineName | undefined } {
  const e = flags.engine;
  if (e === 'onnx' || e === 'tfjs') return { runtime: resolveRuntime({ runtime: flags.runtime, engine: e }).runtime, backend: undefined };
  if (e === undefined || e === 'auto') return { runtime: flags.runtime, backend: undefined };
  if (flags.runtime === 'onnx') throw new CliError(`--engine ${e} is a TF.js backend; --runtime onnx runs no TF.js (give one or the other)`);
  return { runtime: 'tfjs', backend: e };
}

async function run(flags: ForwardFlags): Promise<void> {
  if (!isArch(flags.arch)) throw new CliError(`unknown --arch "${flags.arch}"; use one of ${ARCHS.join(', ')}`);
  const arch = flags.arch;

  const input = await readNpyFile(flags.input).catch(rethrowWithPrefix('--input '));
  if (input.dtype !== 'F32') {
    throw new CliError(`--input ${flags.input}: dtype ${input.dtype}, expected float32 (numpy: x.astype(np.float32))`);
  }
  const shape = input.shape;
  if (shape.length !== 4 || shape[1] !== 3 || shape[0]! < 1 || shape[2]! < 32 || shape[3]! < 32) {
    throw new CliError(
      `--input ${flags.input}: shape [${shape.join(', ')}], expected NCHW [N, 3, H, W] with N >= 1 and H, W >= 32 ` +
        `(RGB normalised with ImageNet mean/std, as for torchvision)`,
    );
  }
  const [n, , h, w] = shape as [number, number, number, number];
  const data = input.data as Float32Array;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new CliError(`--input ${flags.input}: element ${i} is ${data[i]} (not finite)`);
  }

  const { runtime, backend: tfName } = runtimeAndBackend(flags);
  // The weights are read, and TF.js and the exporter loaded, only when something needs them: ONNX Runtime's export
  // (not at all when the optimised graph of these weights is cached), or TF.js (asked for, or the fallback).
  let sd: StateDict | undefined;
  let facts: WeightFacts | undefined;
  const readWeights = async (): Promise<{ sd: StateDict; facts: WeightFacts }> => {
    if (!sd || !facts) {
      sd = await readStateDict(flags.weights).catch(rethrowWithPrefix('--weights '));
      const { classifierFromWeights } = await import('./classifier-head.js');
      const { numClasses, layout } = classifierFromWeights(arch, sd, flags.weights, 'forward needs the full network');
      facts = { numClasses, layout, head: numClasses === 1 ? 'binary' : 'imagenet' };
    }
    return { sd, facts };
  };
  // The cache is optional: a weights file that cannot be identified cheaply runs uncached.
  const identity = runtime !== 'tfjs' && flags.onnxCache ? await weightsIdentity(flags.weights).catch(() => undefined) : undefined;
  let model: Model | undefined;
  let tfDescription = 'TF.js';
  let consumed = false;
  const network: ForwardNetwork = {
    arch,
    // The export scales the kernels in place (the weights were read for it alone); TF.js, as the fallback after an
    // export, reads the file again.
    exportOnnx: async (o) => {
      const w = await readWeights();
      const { exportOnnxFromStateDict } = await import('../models/onnx/export.js');
      consumed = true;
      return exportOnnxFromStateDict(arch, w.sd, { ...o, head: w.facts.head, numClasses: w.facts.numClasses, layout: w.facts.layout, source: flags.weights, consume: true });
    },
    model: async () => {
      if (consumed) sd = undefined;
      const w = await readWeights();
      const [{ initEngine }, { createModel }] = await Promise.all([import('../engine/index.js'), import('../models/registry.js')]);
      const tfEngine = await initEngine(tfName);
      tfDescription = `TF.js: ${tfEngine.description}`;
      model = createModel(arch, { head: w.facts.head, ...(w.facts.head === 'imagenet' ? { numClasses: w.facts.numClasses } : {}), init: 'none' });
      model.loadStateDict(w.sd, { strict: true, layout: w.facts.layout, source: flags.weights });
      return model;
    },
    ...(identity !== undefined ? { cache: { path: flags.weights, identity, facts: () => facts } } : {}),
  };
  try {
    // ONNX Runtime or TF.js, with the fallback rule of every command that runs a model (src/inference).
    const { logits: out, engine: ran } = await forwardNchw(network, data, [n, 3, h, w], {
      engine: runtime,
      batch: flags.batch,
      ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
      tfjsDescription: () => tfDescription,
    });
    // From the weights when they were read, else (a cache hit) as they were when the graph was cached.
    const known = facts ?? (isWeightFacts(ran.cache?.facts) ? ran.cache.facts : undefined);
    if (!known) throw new CliError(`--weights ${flags.weights}: the cached graph does not say what the weights hold; run again with --no-onnx-cache`);
    const { numClasses, layout, head } = known;
    if (out.length !== n * numClasses) throw new Error(`forward: ${out.length} logits for ${n} image(s) of ${numClasses} classes`);
    const engine = ran.description;
    const engineName = ran.name;
    const fallback = ran.fallbackReason;
    const setupSeconds = ran.setupSeconds;
    // Forward passes only; ONNX export + session creation are reported apart (setup_seconds).
    const seconds = ran.seconds;
    try {
      writeNpyFile(flags.output, [n, numClasses], out, 'F32');
    } catch (err) {
      if (err instanceof FileWriteError) throw err;
      throw new CliError(`--output ${flags.output}: cannot write: ${(err as Error).message}`);
    }
    const summary = {
      arch,
      weights: flags.weights,
      layout,
      head,
      num_classes: numClasses,
      input: flags.input,
      input_shape: shape,
      output: flags.output,
      output_shape: [n, numClasses],
      engine: engineName,
      engine_description: engine,
      ...(fallback ? { engine_fallback: fallback } : {}),
      ...(ran.cache ? { onnx_cache: ran.cache.status } : {}),
      setup_seconds: Number(setupSeconds.toFixed(3)),
      seconds: Number(seconds.toFixed(3)),
    };
    if (flags.json) printJson(summary);
    else {
      process.stdout.write(
        `${arch} (${head} head, ${numClasses} output${numClasses === 1 ? '' : 's'}): ${n} image(s) ${h}x${w} -> ` +
          `${flags.output} [${n}, ${numClasses}] in ${seconds.toFixed(2)} s on ${engine}\n`,
      );
    }
  } finally {
    model?.dispose();
  }
}

export function registerForward(program: Command): void {
  program
    .command('forward')
    .description('Run a network on an NCHW float32 .npy batch and write its logits as .npy (to compare with PyTorch).')
    .requiredOption('--arch <arch>', `architecture: ${ARCHS.join(', ')}`)
    .requiredOption('--weights <path>', 'torchvision .pth / .safetensors state_dict, or a project checkpoint folder')
    .requiredOption('--input <x.npy>', 'float32 array [N, 3, H, W], normalised like torchvision (ImageNet mean/std)')
    .requiredOption('--output <y.npy>', 'where to write the float32 logits [N, classes]')
    .option('--batch <n>', 'images per forward pass', parseIntOption('--batch', 1, 4096), 8)
    .addOption(
      new Option('--runtime <name>', 'auto = ONNX Runtime, else TF.js; onnx = ONNX Runtime only; tfjs = TF.js')
        .choices([...RUNTIMES])
        .default('auto'),
    )
    .option('--engine <name>', 'TF.js backend: auto (NEXTRAY_ENGINE or its auto), cpu, native, tfjs-node; naming one runs TF.js', parseEngine)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntOption('--threads', 1, 1024))
    .option('--json', 'print a JSON summary')
    .option(
      '--no-onnx-cache',
      "don't keep or use ONNX Runtime's optimised graph of these weights (default: kept in ~/.cache/nextray/onnx and used while the weights file is unchanged)",
    )
    .addHelpText(
      'after',
      `
Example (check a conversion against PyTorch):
  python3 -c "import numpy as np; np.save('x.npy', np.random.randn(2, 3, 224, 224).astype(np.float32))"
  nextray forward --arch resnet152 --weights resnet152-394f9c45.pth --input x.npy --output y.npy
  nextray forward --arch resnet152 --weights resnet152-394f9c45.pth --input x.npy --output y_tf.npy --runtime tfjs --json
  python3 -c "import torch, torchvision, numpy as np; m = torchvision.models.resnet152(); \\
    m.load_state_dict(torch.load('resnet152-394f9c45.pth')); m.eval(); \\
    print(np.abs(m(torch.from_numpy(np.load('x.npy'))).detach().numpy() - np.load('y.npy')).max())"

The head follows the weights: a 1000-class fc/classifier gives [N, 1000] logits; the binary MURA head gives [N, 1]
logits (sigmoid gives P(abnormal)). Exit codes: 0 done; 2 bad arguments or unusable input/weights.`,
    )
    // Usage errors exit 2 like every other "could not run" case (commander's default is 1).
    .exitOverride((err) => {
      if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
      throw err;
    })
    .action(async (flags: ForwardFlags) => run(flags));
}
