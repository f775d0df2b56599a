#!/usr/bin/env node
// The `nextray` command: a thin launcher for the compiled CLI (built by `npm ci` / `npm run build`).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// `nextray --version` alone: the version from package.json, without loading the CLI (commander and the registry).
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
  process.exit(0);
}

// `predict` starts from its own entry, which loads only what a prediction needs (cold start).
const entry = new URL(process.argv[2] === 'predict' ? '../dist/src/cli/predict-main.js' : '../dist/src/cli/index.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('nextray: the compiled CLI is missing (dist/). Run `npm run build` (or `npm ci`) in the package folder first.');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv);
