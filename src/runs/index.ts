/** The run directory: its layout (the one place that knows it), metrics file, log and checkpoint resolution. */
export * from './run-dir.js';
