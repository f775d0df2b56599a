#!/usr/bin/env node
// The `nextray` command: a thin launcher for the compiled CLI (built by `npm ci` / `npm run build`).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const packageVersion = () => JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

/**
 * The help text for `args` from the file the build renders (src/cli/help-text.ts: `--help`, `help`, `<command>
 * --help` / `-h`, `help <command>`), without loading the CLI; undefined for anything else, for a missing file or one
 * of another version, and where the CLI would wrap the text differently (a terminal narrower than the file's width).
 */
function prerenderedHelp() {
  if (args.length < 1 || args.length > 2) return undefined;
  try {
    const file = JSON.parse(readFileSync(new URL('../dist/src/cli/help.json', import.meta.url), 'utf8'));
    if (file.format !== 'nextray-help' || file.format_version !== 1 || file.version !== packageVersion()) return undefined;
    if (process.stdout.isTTY && !(process.stdout.columns >= file.width)) return undefined;
    const text = file.texts[args.join(' ')];
    return typeof text === 'string' ? text : undefined;
  } catch {
    return undefined;
  }
}

// `nextray --version` alone: the version from package.json, without loading the CLI (commander and the registry).
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${packageVersion()}\n`);
} else {
  const help = prerenderedHelp();
  if (help !== undefined) {
    process.stdout.write(help);
  } else if (!(await import('./relaunch.js')).relaunchWithLargePages(fileURLToPath(import.meta.url), args)) {
    // `predict` starts from its own entry, which loads only what a prediction needs (cold start).
    const entry = new URL(args[0] === 'predict' ? '../dist/src/cli/predict-main.js' : '../dist/src/cli/index.js', import.meta.url);
    if (!existsSync(fileURLToPath(entry))) {
      console.error('nextray: the compiled CLI is missing (dist/). Run `npm run build` (or `npm ci`) in the package folder first.');
      process.exit(2);
    }
    const { main } = await import(entry.href);
    await main(process.argv);
  }
}
