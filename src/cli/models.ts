/**
 * `nextray models`: lists the model zoo — every architecture with its parameter count in torchvision's 1000-class
 * configuration (equal to torchvision's published `num_params`), with the MURA binary head, its layer count for
 * freezing, and the torchvision weight files it loads. Pure metadata: nothing is allocated or computed on tensors.
 */
import type { Command } from 'commander';
import { printJson } from './common.js';
import { listArchs } from '../models/registry.js';

export function registerModels(program: Command): void {
  program
    .command('models')
    .description('List the model architectures with parameter counts (torchvision 1000-class head and MURA binary head).')
    .option('--json', 'print a JSON array instead of a table')
    .addHelpText(
      'after',
      `
Examples:
  $ nextray models
  $ nextray models --json | jq '.[] | select(.arch == "resnet152")'

"layers" is what train --frozen counts: the stem conv, every main-path conv of the residual/dense blocks and the
classifier, in forward order (ResNet-152: 152). Inputs are RGB scaled to [0, 1] then normalised with ImageNet's
mean/std; any input size works (global average pooling).`,
    )
    .action((flags: { json?: boolean }) => {
      const infos = listArchs();
      if (flags.json) {
        printJson(
          infos.map((i) => ({
            arch: i.arch,
            family: i.family,
            params: i.params,
            params_binary_head: i.paramsBinaryHead,
            layers: i.layers,
            features: i.features,
            default_input_size: i.defaultInputSize,
            preprocessing: { mean: i.preprocessing.mean, std: i.preprocessing.std, scale: i.preprocessing.scale },
            torchvision_weights: i.torchvisionWeights,
          })),
        );
        return;
      }
      const rows = [
        ['arch', 'params (1000 classes)', 'params (binary head)', 'layers', 'features', 'torchvision weights'],
        ...infos.map((i) => [
          i.arch,
          i.params.toLocaleString('en-US'),
          i.paramsBinaryHead.toLocaleString('en-US'),
          String(i.layers),
          String(i.features),
          i.torchvisionWeights.join(', '),
        ]),
      ];
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      const numeric = new Set([1, 2, 3, 4]);
      for (const r of rows) {
        const line = r
          .map((cell, c) => (numeric.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
          .join('  ')
          .trimEnd();
        process.stdout.write(line + '\n');
      }
    });
}
