#!/usr/bin/env node
// Builds the oneDNN addon (native/build/Release/nextray_native.node) with node-gyp against the Node headers
// already on the machine, so nothing is downloaded. Runs from `npm ci`/`npm install` (the package's install
// script) and from `npm run build:native`. It never fails the install: when oneDNN is missing and we are
// root it installs Debian's libdnnl-dev; otherwise, or when the build fails, it prints ONE line saying what
// to run and exits 0, and the engine falls back to the pure-JS backend.
// Usage: node native/build.mjs [--force] [--strict]   (--strict: exit 1 when the addon cannot be built)
import { existsSync, statSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'Release', 'nextray_native.node');
const force = process.argv.includes('--force');
const strict = process.argv.includes('--strict');
const DNNL_HEADER = '/usr/include/oneapi/dnnl/dnnl.hpp';

function giveUp(line) {
  console.error(`nextray: native engine not built: ${line}`);
  process.exit(strict ? 1 : 0);
}

if (process.env.NEXTRAY_SKIP_NATIVE === '1') {
  console.error('nextray: native engine build skipped (NEXTRAY_SKIP_NATIVE=1)');
  process.exit(0);
}

// Rebuilding takes a while on two cores and briefly removes the addon other processes may be using, so an
// ordinary `npm install` of some other package leaves an up-to-date build alone.
function newestSource() {
  const files = [join(here, 'binding.gyp'), ...readdirSync(join(here, 'src')).map((f) => join(here, 'src', f))];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}
if (!force && existsSync(out) && statSync(out).mtimeMs > newestSource()) {
  console.error('nextray: native engine up to date (npm run build:native rebuilds it)');
  process.exit(0);
}

if (!existsSync(DNNL_HEADER)) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    console.error('nextray: oneDNN missing; installing Debian libdnnl-dev (running as root)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const up = spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    const inst = up.status === 0 ? spawnSync('apt-get', ['install', '-y', 'libdnnl-dev'], { stdio: 'inherit', env }) : up;
    if (inst.status !== 0 || !existsSync(DNNL_HEADER)) giveUp('apt-get install libdnnl-dev failed; the pure-JS backend will be used');
  } else {
    giveUp('oneDNN is missing; run: sudo apt-get install -y libdnnl-dev && npm run build:native');
  }
}

// node-gyp: the one npm runs scripts with, else the copy bundled with npm next to this node binary.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) giveUp('node-gyp not found (it ships with npm); run: npm install -g node-gyp && npm run build:native');

// Node's headers: use the ones installed with this node (e.g. /usr/include/node) instead of downloading.
const args = [gyp, 'rebuild', `--directory=${here}`];
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);

console.error('nextray: building the native engine (oneDNN addon), about a minute on two cores ...');
const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
if (r.status !== 0 || !existsSync(out)) {
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => /error|Error/.test(l)).slice(0, 15);
  if (log.length) console.error(log.join('\n'));
  giveUp('node-gyp failed (errors above); fix and run: npm run build:native');
}
console.error(`nextray: native engine built: ${out}`);
