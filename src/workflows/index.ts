/** Pipelines over the stages: the end-to-end demo (synthetic data -> training -> calibration -> evaluation -> report). */
export * from './demo.js';
