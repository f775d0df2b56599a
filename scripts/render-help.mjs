#!/usr/bin/env node
// Renders every help text `bin/nextray.js` can answer without loading the CLI (src/cli/help-text.ts) into
// dist/src/cli/help.json. Run by `npm run build` / `prepare` after tsc; it imports the compiled program, so it needs
// dist/ first. A failure leaves no file (the bin then runs the full CLI for help, only slower) and fails the build.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = new URL('../dist/src/cli/', import.meta.url);
const { HELP_FILE, renderHelpFile } = await import(new URL('help-text.js', dir).href);
const { writeJsonAtomic } = await import(new URL('../util/atomic.js', dir).href);
const path = fileURLToPath(new URL(HELP_FILE, dir));
rmSync(path, { force: true });
const file = await renderHelpFile();
writeJsonAtomic(path, file);
console.log(`render-help: ${Object.keys(file.texts).length} help texts -> ${path}`);
// Registering every command starts what some of them hold open (thread pools, handles): the job is done.
process.exit(0);
