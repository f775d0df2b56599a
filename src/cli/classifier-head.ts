/** What a weight file says about its classifier, for the faces that run or export the network it describes. */
import { buildSpec, canonicalKey, detectLayout, type Arch } from '../models/index.js';
import type { StateDict } from '../models/weights/types.js';
import { CliError } from './common.js';

/**
 * Class count and tensor layout ('torch' OIHW / 'tfjs' HWIO), read from the classifier weight's shape.
 * `need` finishes the message when the classifier is missing, e.g. "forward needs the full network".
 */
export function classifierFromWeights(
  arch: Arch,
  sd: StateDict,
  source: string,
  need: string,
): { numClasses: number; layout: 'torch' | 'tfjs' } {
  const spec = buildSpec(arch, { head: 'imagenet' });
  const layout = detectLayout(spec, sd);
  if (!layout) {
    throw new CliError(`${source}: no ${arch} conv weights found (e.g. ${spec.layerUnits()[0]!.name}.weight); is this a ${arch} state_dict?`);
  }
  const key = `${spec.classifierName}.weight`;
  const entry = [...sd].find(([k]) => canonicalKey(k) === key);
  if (!entry) throw new CliError(`${source}: has no classifier weight '${key}'; ${need}`);
  const shape = entry[1].shape;
  if (shape.length !== 2) throw new CliError(`${source}: '${key}' has shape [${shape.join(', ')}], expected a 2-D matrix`);
  return { numClasses: layout === 'torch' ? shape[0]! : shape[1]!, layout };
}
