/**
 * The CLI's command registry (src/cli/commands.ts): it lists exactly the commands their modules register, with the
 * terms commander prints for them; `nextray --help` loads no package but commander and `--version` none (start-up), and
 * running a command registers that command for real.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Help } from 'commander';
import { COMMANDS } from '../../src/cli/commands.js';
import { buildProgram, programFor } from '../../src/cli/index.js';
import { REPO_ROOT } from '../helpers/paths.js';

const BIN = join(REPO_ROOT, 'bin', 'nextray.js');

test('the registry names every command its modules register, with the term commander prints', async () => {
  const program = await buildProgram();
  const help = new Help();
  const real = program.commands.map((c) => ({ name: c.name(), term: help.subcommandTerm(c) }));
  assert.deepEqual(COMMANDS.map((c) => ({ name: c.name, term: c.term })), real);
  for (const c of COMMANDS) assert.ok(c.summary.length > 0 && c.summary.length <= 80, `${c.name}: one-line summary`);
});

test('running a command registers it for real; the others stay help-only entries', async () => {
  const program = await programFor(['node', 'nextray', 'forward', '--help']);
  const forward = program.commands.find((c) => c.name() === 'forward')!;
  assert.ok(forward.options.some((o) => o.long === '--arch'), 'forward has its options');
  const synth = program.commands.find((c) => c.name() === 'synth')!;
  assert.equal(synth.options.length, 0, 'synth is not loaded');
  const viaHelp = await programFor(['node', 'nextray', 'help', 'forward']);
  assert.ok(viaHelp.commands.find((c) => c.name() === 'forward')!.options.length > 0, '`nextray help forward` loads forward');
});

// A module hook that reports every package (bare specifier) the ESM loader resolves, and the CommonJS cache at exit.
const HOOK = `data:text/javascript,${encodeURIComponent(
  'export async function resolve(s, c, n) { if (!/^(\\.|\\/|node:|file:|data:)/.test(s)) process.stderr.write("PKG " + s + "\\n"); return n(s, c); }',
)}`;
const REGISTER = `data:text/javascript,${encodeURIComponent(
  `import { register, createRequire } from 'node:module';
register(${JSON.stringify(HOOK)});
const require = createRequire(${JSON.stringify(BIN)});
process.on('exit', () => { for (const k of Object.keys(require.cache)) { const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(k); if (m) process.stderr.write('PKG ' + m[1] + '\\n'); } });`,
)}`;

// The full CLI without the bin's shortcuts (the --version answer, the prerendered help): what runs where they do not.
const FULL_CLI = `data:text/javascript,${encodeURIComponent(
  `const { main } = await import(${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'cli', 'index.js')).href)}); await main(['node', 'nextray', ...process.argv.slice(1)]);`,
)}`;

function packagesLoaded(args: string[], entry: 'bin' | 'full' = 'bin'): { packages: Set<string>; stdout: string; status: number | null } {
  const r = spawnSync(process.execPath, ['--import', REGISTER, ...(entry === 'bin' ? [BIN] : ['--import', FULL_CLI, '-e', '0', '--']), ...args], { encoding: 'utf8' });
  const packages = new Set([...r.stderr.matchAll(/^PKG (\S+)$/gm)].map((m) => m[1]!));
  return { packages, stdout: r.stdout, status: r.status };
}

test('--help and --version load no package (the bin answers them), the full CLI\'s help commander only; a command loads what it runs', () => {
  for (const [args, want] of [[['--help'], []], [['forward', '--help'], []], [['--version'], []], [['-V'], []]] as const) {
    const r = packagesLoaded([...args]);
    assert.equal(r.status, 0, args.join(' '));
    assert.deepEqual([...r.packages].sort(), want, `${args.join(' ')} loads ${want.join(', ') || 'nothing'}`);
  }
  // Without the prerendered texts (no file, a narrow terminal), help comes from commander and the registry: the
  // command's own module is registered, but what it runs (TF.js, ONNX Runtime) is not loaded for its help.
  for (const args of [['--help'], ['forward', '--help']]) {
    const r = packagesLoaded(args, 'full');
    assert.equal(r.status, 0, `full CLI ${args.join(' ')}`);
    assert.match(r.stdout, /^Usage: nextray/, `full CLI ${args.join(' ')} prints help`);
    const loaded = [...r.packages];
    assert.ok(loaded.includes('commander'), `full CLI ${args.join(' ')} loads commander`);
    assert.deepEqual(loaded.filter((p) => /^@tensorflow\/|^onnxruntime|^sharp$/.test(p)), [], `full CLI ${args.join(' ')} loads ${loaded.join(', ')}`);
  }
  assert.equal(packagesLoaded(['--version']).stdout, `${(JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`);
  assert.match(packagesLoaded(['--help']).stdout, /forward \[options\]\s+Run a network/);
  // The hook sees packages at all: a command that needs TF.js loads it (else the test above proves nothing).
  const models = packagesLoaded(['models', '--json']);
  assert.equal(models.status, 0);
  assert.ok(models.packages.has('@tensorflow/tfjs-core'), `models loads TF.js: ${[...models.packages].join(' ')}`);
});
