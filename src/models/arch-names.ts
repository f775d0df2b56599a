/**
 * The model zoo's architecture names, without the zoo: what `--arch` accepts, for commands that check it before
 * loading TF.js and the builders (registry.ts re-exports these and maps each name to its builder). No imports.
 */
/** torchvision's architectures (their weight files load as they are). */
export const ARCHS = [
  'resnet18',
  'resnet34',
  'resnet50',
  'resnet101',
  'resnet152',
  'densenet121',
  'densenet169',
  'densenet201',
] as const;
export type TorchvisionArch = (typeof ARCHS)[number];

/** The project's own small architectures (no torchvision weights): `resnet-slim` for the CPU demo and tests (slim.ts). */
export const PROJECT_ARCHS = ['resnet-slim'] as const;

/** Every architecture: one registry for training, export, evaluation and prediction. */
export const ALL_ARCHS = [...ARCHS, ...PROJECT_ARCHS] as const;
export type Arch = (typeof ALL_ARCHS)[number];

export function isArch(s: string): s is Arch {
  return (ALL_ARCHS as readonly string[]).includes(s);
}

export function isTorchvisionArch(s: string): s is TorchvisionArch {
  return (ARCHS as readonly string[]).includes(s);
}
