/**
 * The torchvision parity fixtures as test cases: which network each one is, where its files are, how to build the
 * matching model. The small in-repo cases always run; the large shared ones only when ../shared is present.
 */
import { join } from 'node:path';
import { buildDenseNet, buildResNet, createCustomModel, createModel, type NetworkModel } from '../../src/models/index.js';
import { SHARED_FIXTURES_SKIP, SMALL_FIXTURES, TORCHVISION_FIXTURES } from './paths.js';

export interface TorchvisionFixture {
  /** File stem: NAME.safetensors, NAME.input.npy, NAME.logits.npy, NAME.json. */
  name: string;
  dir: string;
  /** Weight files holding the same state_dict (a torch.save .pth beside the .safetensors where there is one). */
  weights: string[];
  /** 'small' (in the repository) or 'large' (../shared, torchvision widths). */
  size: 'small' | 'large';
  /** Why this fixture's tests are skipped, or false. */
  skip: string | false;
  /** The matching model, uninitialised (weights are loaded right after). */
  build(): NetworkModel<string>;
  /** Logit count (10 for the small fixtures, 1000 for the large). */
  numClasses: number;
}

export const fixturePath = (f: TorchvisionFixture, file: string): string => join(f.dir, file);

const small = (name: string, weights: string[], build: () => NetworkModel<string>): TorchvisionFixture => ({
  name,
  dir: SMALL_FIXTURES,
  weights,
  size: 'small',
  skip: false,
  build,
  numClasses: 10,
});
const large = (name: string, weights: string[], build: () => NetworkModel<string>): TorchvisionFixture => ({
  name,
  dir: TORCHVISION_FIXTURES,
  weights,
  size: 'large',
  skip: SHARED_FIXTURES_SKIP,
  build,
  numClasses: 1000,
});

/** BasicBlock ResNet, layers [2, 1, 1, 1], widths 8/16/32/64, 10 classes (make.py: basic_narrow). */
export const BASIC_NARROW = small('basic_narrow', ['basic_narrow.safetensors', 'basic_narrow.pth'], () =>
  createCustomModel('basic_narrow', (h) => buildResNet({ block: 'basic', layers: [2, 1, 1, 1], widths: [8, 16, 32, 64] }, h), {
    init: 'none',
    numClasses: 10,
  }),
);
/** Bottleneck ResNet, layers [1, 1, 1, 1], widths 4/8/16/32, 10 classes (make.py: bottleneck_narrow). */
export const BOTTLENECK_NARROW = small('bottleneck_narrow', ['bottleneck_narrow.safetensors'], () =>
  createCustomModel('bottleneck_narrow', (h) => buildResNet({ block: 'bottleneck', layers: [1, 1, 1, 1], widths: [4, 8, 16, 32] }, h), {
    init: 'none',
    numClasses: 10,
  }),
);
/** torchvision DenseNet(growth 8, blocks (2, 2, 2, 2), 16 initial features, bn_size 2), 10 classes. */
export const DENSENET_NARROW = small('densenet_narrow', ['densenet_narrow.safetensors'], () =>
  createCustomModel(
    'densenet_narrow',
    (h) => buildDenseNet({ growthRate: 8, blockConfig: [2, 2, 2, 2], numInitFeatures: 16, bnSize: 2 }, h),
    { init: 'none', numClasses: 10, zeroBias: true },
  ),
);

export const RESNET18 = large('resnet18', ['resnet18.safetensors', 'resnet18.pth'], () =>
  createModel('resnet18', { init: 'none' }) as NetworkModel<string>,
);
export const BOTTLENECK_MINI = large('bottleneck_mini', ['bottleneck_mini.safetensors'], () =>
  createCustomModel('bottleneck_mini', (h) => buildResNet({ block: 'bottleneck', layers: [1, 1, 1, 1] }, h), { init: 'none' }),
);
export const DENSENET121 = large('densenet121', ['densenet121.safetensors'], () =>
  createModel('densenet121', { init: 'none' }) as NetworkModel<string>,
);

export const SMALL_FIXTURE_SET = [BASIC_NARROW, BOTTLENECK_NARROW, DENSENET_NARROW];
export const LARGE_FIXTURE_SET = [RESNET18, BOTTLENECK_MINI, DENSENET121];
export const ALL_FIXTURES = [...SMALL_FIXTURE_SET, ...LARGE_FIXTURE_SET];

/**
 * A seeded ResNet-18 written to `path` as .safetensors, and its logits (TF.js, inference mode) on the small
 * fixtures' basic_narrow input: the reference the CLI tests compare `forward` / `export` against.
 */
export async function writeSeededResnet18(path: string, seed: number): Promise<Float32Array> {
  const { tf } = await import('../../src/engine/index.js');
  const { readNpyFile, writeSafetensorsFile } = await import('../../src/models/weights/files.js');
  const m = createModel('resnet18', { seed });
  writeSafetensorsFile(path, m.exportStateDict());
  const x = await readNpyFile(join(SMALL_FIXTURES, 'basic_narrow.input.npy'));
  const logits = tf.tidy(() => {
    const nchw = tf.tensor4d(x.data as Float32Array, x.shape as [number, number, number, number]);
    return m.forward(tf.transpose(nchw, [0, 2, 3, 1]), false).dataSync() as Float32Array;
  });
  m.dispose();
  return logits;
}
