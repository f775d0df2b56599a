/** The training stage's public API: config, losses, Adam, the trainer (with exact resume) and its validation pass, sweeps, the frozen-feature cache. */
export * from './config.js';
export * from './losses.js';
export * from './adam.js';
export * from './archs.js';
export * from './trainer.js';
export * from './validate.js';
export * from './sweep.js';
export * as featureCache from './feature-cache/index.js';
