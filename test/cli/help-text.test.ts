/**
 * The help texts the bin prints without loading the CLI (src/cli/help-text.ts, rendered into dist/src/cli/help.json by
 * the build): the file holds every registry command's help in each spelling, each text is what commander renders for
 * it now (a stale or stub file fails), and the bin's output is the full CLI's, byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { COMMANDS } from '../../src/cli/commands.js';
import { HELP_FILE, helpForms, renderHelp, type HelpFile } from '../../src/cli/help-text.js';
import { REPO_ROOT } from '../helpers/paths.js';

const BIN = join(REPO_ROOT, 'bin', 'nextray.js');
const FILE = join(REPO_ROOT, 'dist', 'src', 'cli', HELP_FILE);
const FULL_CLI = `data:text/javascript,${encodeURIComponent(
  `const { main } = await import(${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'cli', 'index.js')).href)}); await main(['node', 'nextray', ...process.argv.slice(1)]);`,
)}`;

test('the prerendered file holds every command of the registry, and each text is what commander renders now', async () => {
  const file = JSON.parse(readFileSync(FILE, 'utf8')) as HelpFile;
  assert.equal(file.version, (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  // Named from the registry here, not from helpForms(), so a form list that forgets a command fails too.
  const want = ['--help', '-h', 'help', ...COMMANDS.flatMap((c) => [`${c.name} --help`, `${c.name} -h`, `help ${c.name}`])];
  assert.deepEqual(Object.keys(file.texts).sort(), want.sort());
  assert.deepEqual(helpForms().map((f) => f.join(' ')).sort(), want.sort());
  for (const args of helpForms()) {
    const r = await renderHelp(args);
    assert.equal(r.exitCode, 0, args.join(' '));
    assert.equal(file.texts[args.join(' ')], r.stdout, `nextray ${args.join(' ')}: the file's text is what the program prints`);
  }
  // Each command's text is its own (its usage line), not the top-level one.
  for (const c of COMMANDS) assert.match(file.texts[`${c.name} --help`]!, new RegExp(`^Usage: nextray ${c.name} `), c.name);
  assert.match(file.texts['--help']!, /^Usage: nextray \[options\] \[command\]/);
});

test('the bin prints the same help as the full CLI, byte for byte, with the same exit status', () => {
  for (const args of [['--help'], ['help'], ['forward', '--help'], ['predict', '-h'], ['help', 'serve'], ['data', 'split', '--help']]) {
    const fast = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
    const full = spawnSync(process.execPath, ['--import', FULL_CLI, '-e', '0', '--', ...args], { encoding: 'utf8' });
    assert.equal(full.status, 0, `full CLI ${args.join(' ')}: ${full.stderr}`);
    assert.equal(fast.status, full.status, args.join(' '));
    assert.ok(full.stdout.startsWith('Usage: nextray'), args.join(' '));
    assert.equal(fast.stdout, full.stdout, `nextray ${args.join(' ')}`);
    assert.equal(fast.stderr, '', args.join(' '));
  }
});
