/**
 * Evaluation library: predictions `{ image, label, probability }[]` in (from a CSV, or from a model run over a
 * dataset split), metrics per region and overall at image and study level with study-bootstrap intervals, the seed
 * report's tables, figures and an HTML/Markdown report out.
 *
 *   const input = readPredictionsCsv('preds.csv');            // or resolvePredictions(fromModel)
 *   const result = evaluatePredictions(input.predictions, { threshold: 0.5, replicates: 1000, seed: 1 });
 *   await writeEvaluationOutputs(result, 'out/', { split: 'valid' });
 */
export * from './metrics.js';
export * from './bootstrap.js';
export * from './predictions.js';
export * from './threshold.js';
export * from './evaluate.js';
export * from './tables.js';
export * from './plots.js';
export * from './report.js';
export * from './io.js';
