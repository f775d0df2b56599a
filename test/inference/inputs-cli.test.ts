/**
 * `nextray predict` over folders a user really has: a symlink loop gives each image once (not 82 rows), an
 * unreadable subfolder is named while the rest is predicted (exit 1, not 2), and files whose names are not UTF-8
 * are predicted — in a folder and given on the command line — to the same probability as the same bytes under a
 * plain name (the reference).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { openForAll, unprivileged } from '../helpers/faults.js';
import { greyPng, writeTinyModel } from '../serve/fixture.js';

const tmp = tempDir('nextray-inputs-cli-');
let model: string;
let data: string;
const BIN = join(REPO_ROOT, 'bin', 'nextray.js');

function rows(csv: string): Map<string, number> {
  const [head, ...lines] = csv.trim().split('\n');
  const cols = head!.split(',');
  const ii = cols.indexOf('image');
  const pi = cols.indexOf('probability');
  return new Map(lines.map((l) => [l.split(',')[ii]!, Number(l.split(',')[pi])]));
}

before(async () => {
  model = await writeTinyModel(tmp.dir);
  data = join(tmp.dir, 'data');
  mkdirSync(join(data, 'study1'), { recursive: true });
  mkdirSync(join(data, 'locked'), { recursive: true });
  writeFileSync(join(data, 'study1', 'a.png'), await greyPng(70, 90, 0));
  writeFileSync(join(data, 'study1', 'b.png'), await greyPng(80, 60, 2));
  writeFileSync(join(data, 'locked', 'c.png'), await greyPng(64, 64, 1));
  symlinkSync('..', join(data, 'study1', 'up'));
});
after(() => {
  chmodSync(join(data, 'locked'), 0o755);
  tmp.cleanup();
});

test('a symlink loop: each image once, the loop named, exit 1', () => {
  const r = runCli(['predict', '--model', model, data, '--workers', '0', '--no-onnx-cache']);
  assert.equal(r.code, 1, r.stderr);
  assert.deepEqual([...rows(r.stdout).keys()], [join(data, 'locked', 'c.png'), join(data, 'study1', 'a.png'), join(data, 'study1', 'b.png')]);
  assert.match(r.stderr, /study1\/up: symlink loop: \.\. leads back to the enclosing folder/);
  assert.match(r.stderr, /3 image\(s\), 2 studies/);
});

test('an unreadable subfolder is named and the rest predicted (exit 1, not 2)', (t) => {
  const run = unprivileged([process.execPath, BIN, 'predict', '--model', model, data, '--workers', '0', '--no-onnx-cache']);
  if ('skip' in run) return t.skip(run.skip);
  openForAll(tmp.dir);
  chmodSync(join(data, 'locked'), 0o000);
  const r = spawnSync(run.argv[0]!, run.argv.slice(1), { encoding: 'utf8', env: { ...process.env, HOME: tmp.dir } });
  chmodSync(join(data, 'locked'), 0o755);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /locked: folder cannot be read \(permission denied\)/);
  assert.match(r.stderr, /study1\/up: symlink loop/);
  assert.deepEqual([...rows(r.stdout).keys()].sort(), [join(data, 'study1', 'a.png'), join(data, 'study1', 'b.png')]);
});

test('file names that are not UTF-8: found in a folder and given as arguments, predicted like the plain name', () => {
  const dir = join(tmp.dir, 'latin1');
  mkdirSync(dir);
  const odd = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x72, 0xe9, 0x73, 0x75, 0x6c, 0x74, 0x2e, 0x70, 0x6e, 0x67])]); // "résult.png" in Latin-1
  copyFileSync(join(data, 'study1', 'a.png'), odd);
  copyFileSync(join(data, 'study1', 'a.png'), join(dir, 'plain.png'));
  const shown = `${dir}/r\\xE9sult.png`;
  const folder = runCli(['predict', '--model', model, dir, '--workers', '1', '--no-onnx-cache']);
  assert.equal(folder.code, 0, folder.stderr);
  const got = rows(folder.stdout);
  assert.deepEqual([...got.keys()], [`${dir}/plain.png`, shown]);
  assert.equal(got.get(shown), got.get(`${dir}/plain.png`), 'the same bytes under either name');
  // As an argument: the shell passes the raw bytes (printf), as a user's terminal would.
  const sh = spawnSync('sh', ['-c', `exec "$0" "$1" predict --model "$2" "$(printf '%s/r\\351sult.png' "$3")" --workers 0 --no-onnx-cache`, process.execPath, BIN, model, dir], { encoding: 'utf8' });
  assert.equal(sh.status, 0, sh.stderr);
  assert.deepEqual([...rows(sh.stdout).entries()], [[shown, got.get(`${dir}/plain.png`)]]);
});
