/**
 * `nextray forward`: runs a network on a NumPy batch and writes the logits, so a user can check a weight
 * conversion against PyTorch: same weights, same NCHW float32 input, compare the two logit arrays.
 *
 * The classifier comes from the weights: torchvision's 1000-class `fc`/`classifier`, any other class count, or the
 * MURA binary head (one output) — from a .pth/.safetensors file or a project checkpoint folder (its
 * model.safetensors). Inputs/outputs are PyTorch's layout (NCHW in, [N, C] out); the NHWC transpose is internal.
 */
import { CommanderError, Option, type Command } from 'commander';
import { CliError, parseIntOption, printJson } from './common.js';
import { classifierFromWeights } from './classifier-head.js';
import { initEngine, tf, type EngineName } from '../engine/index.js';
import { ARCHS, createModel, isArch } from '../models/registry.js';
import { StateDictMismatchError } from '../models/import.js';
import { readNpyFile, readStateDict, writeNpyFile } from '../models/weights/files.js';
import { WeightFormatError, type StateDict } from '../models/weights/types.js';

interface ForwardFlags {
  arch: string;
  weights: string;
  input: string;
  output: string;
  batch: number;
  engine?: EngineName;
  json?: boolean;
}

async function run(flags: ForwardFlags): Promise<void> {
  if (!isArch(flags.arch)) throw new CliError(`unknown --arch "${flags.arch}"; use one of ${ARCHS.join(', ')}`);
  const arch = flags.arch;

  let input;
  try {
    input = await readNpyFile(flags.input);
  } catch (err) {
    if (err instanceof WeightFormatError) throw new CliError(`--input ${err.message}`);
    throw err;
  }
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

  let sd: StateDict;
  try {
    sd = await readStateDict(flags.weights);
  } catch (err) {
    if (err instanceof WeightFormatError) throw new CliError(`--weights ${err.message}`);
    throw err;
  }
  const { numClasses, layout } = classifierFromWeights(arch, sd, flags.weights, 'forward needs the full network');
  const head = numClasses === 1 ? 'binary' : 'imagenet';

  const engine = await initEngine(flags.engine);
  const model = createModel(arch, { head, ...(head === 'imagenet' ? { numClasses } : {}), init: 'none' });
  try {
    try {
      model.loadStateDict(sd, { strict: true, layout, source: flags.weights });
    } catch (err) {
      if (err instanceof StateDictMismatchError) throw new CliError(err.message);
      throw err;
    }
    const out = new Float32Array(n * numClasses);
    const per = 3 * h * w;
    const t0 = performance.now();
    for (let start = 0; start < n; start += flags.batch) {
      const count = Math.min(flags.batch, n - start);
      const logits = tf.tidy(() => {
        const nchw = tf.tensor4d(data.subarray(start * per, (start + count) * per), [count, 3, h, w]);
        return model.forward(tf.transpose(nchw, [0, 2, 3, 1]), false);
      });
      out.set(logits.dataSync() as Float32Array, start * numClasses);
      logits.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    try {
      writeNpyFile(flags.output, [n, numClasses], out, 'F32');
    } catch (err) {
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
      engine: engine.description,
      seconds: Number(seconds.toFixed(3)),
    };
    if (flags.json) printJson(summary);
    else {
      process.stdout.write(
        `${arch} (${head} head, ${numClasses} output${numClasses === 1 ? '' : 's'}): ${n} image(s) ${h}x${w} -> ` +
          `${flags.output} [${n}, ${numClasses}] in ${seconds.toFixed(2)} s on ${engine.description}\n`,
      );
    }
  } finally {
    model.dispose();
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
    .addOption(new Option('--engine <name>', 'TF.js engine (default: NEXTRAY_ENGINE or auto)').choices(['auto', 'cpu', 'native', 'tfjs-node']))
    .option('--json', 'print a JSON summary')
    .addHelpText(
      'after',
      `
Example (check a conversion against PyTorch):
  python3 -c "import numpy as np; np.save('x.npy', np.random.randn(2, 3, 224, 224).astype(np.float32))"
  nextray forward --arch resnet152 --weights resnet152-394f9c45.pth --input x.npy --output y.npy
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
