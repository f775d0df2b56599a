/**
 * Which networks `nextray train` can build: every architecture of the model registry (src/models/registry.ts: the
 * torchvision zoo and the project's `resnet-slim`, src/models/slim.ts), with the binary head.
 */
import { ALL_ARCHS, createModel, isArch, type Model } from '../models/index.js';
import { ConfigError } from './config.js';

/** Every architecture name `nextray train` accepts. */
export function trainableArchs(): string[] {
  return [...ALL_ARCHS];
}

export interface BuildOptions {
  dropout: number;
  seed: number;
  /** 'none' when weights are loaded right after (faster). */
  init?: 'random' | 'none';
}

/** A model with the binary head (dropout -> dense(1)) for any architecture of the registry. */
export function buildModel(arch: string, opts: BuildOptions): Model {
  if (!isArch(arch)) throw new ConfigError(`unknown architecture '${arch}'; known: ${trainableArchs().join(', ')}`);
  return createModel(arch, { head: 'binary', dropout: opts.dropout, seed: opts.seed, init: opts.init ?? 'random' });
}
