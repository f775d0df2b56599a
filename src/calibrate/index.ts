/**
 * The calibration stage: what makes a trained model's outputs trustworthy, fitted on held-out data after training —
 * the OOD gate (ood.ts; measured on generated non-radiographs, ood-eval.ts / ood-sets.ts), temperature scaling
 * (temperature.ts), the operating point and their storage in the checkpoint (trust.ts), and the report's trust
 * sections (trust-report.ts). Inference applies the fitted numbers (src/inference/core/ood.ts, trust.ts) and knows
 * nothing of fitting.
 */
export * from './ood.js';
export * from './ood-eval.js';
export * from './ood-sets.js';
export * from './temperature.js';
export * from './trust.js';
export * from './trust-report.js';
