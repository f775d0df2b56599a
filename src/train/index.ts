/** The training stage's public API: config, losses, Adam, the trainer (with exact resume) and its validation pass, sweeps. */
export * from './config.js';
export * from './losses.js';
export * from './adam.js';
export * from './archs.js';
export * from './trainer.js';
export * from './validate.js';
export * from './sweep.js';
