/** The training stage's public API: config, losses, Adam, trainer (with exact resume), prediction, sweeps, demo, the frozen-feature cache. */
export * from './config.js';
export * from './losses.js';
export * from './adam.js';
export * from './archs.js';
export * from './trainer.js';
export * from './predict.js';
export * from './run-dir.js';
export * from './sweep.js';
export * from './demo.js';
export * as featureCache from './feature-cache/index.js';
