/**
 * The one folder walk (src/util/walk.ts) and predict's input expansion over it: symlink loops end (each folder once,
 * by device + inode) and are named, dangling and self-looping links are named, a folder linked twice is walked
 * once, names that are not UTF-8 are found, shown with \xHH and opened by their bytes. Expected file lists are
 * written out by hand from the trees built here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { displayPath, walkFolder } from '../../src/util/walk.js';
import { expandInputs } from '../../src/inference/node/inputs.js';
import { tempDir } from '../helpers/paths.js';

const tmp = tempDir('nextray-walk-');
after(() => tmp.cleanup());

function tree(name: string): string {
  const root = join(tmp.dir, name);
  mkdirSync(join(root, 's'), { recursive: true });
  writeFileSync(join(root, 'a.png'), 'a');
  writeFileSync(join(root, 's', 'b.png'), 'b');
  return root;
}

test('displayPath: UTF-8 as it is, every byte outside a valid sequence as \\xHH', () => {
  const cases: [number[], string][] = [
    [[...Buffer.from('plain/name.png')], 'plain/name.png'],
    [[...Buffer.from('caf\u00e9/\u65e5\u672c.png')], 'caf\u00e9/\u65e5\u672c.png'],
    [[0x66, 0xff, 0x2e, 0x70, 0x6e, 0x67], 'f\\xFF.png'],
    [[0x63, 0x61, 0x66, 0xe9], 'caf\\xE9'], // Latin-1 e-acute: a lone lead byte
    [[0xc0, 0x80], '\\xC0\\x80'], // overlong NUL
    [[0xed, 0xa0, 0x80], '\\xED\\xA0\\x80'], // a UTF-16 surrogate encoded in UTF-8
    [[0xe2, 0x82], '\\xE2\\x82'], // cut short
    [[0xf0, 0x9f, 0x98, 0x80, 0x80], '\u{1f600}\\x80'],
  ];
  for (const [bytes, want] of cases) assert.equal(displayPath(Uint8Array.from(bytes)), want, JSON.stringify(bytes));
  assert.notEqual(displayPath(Uint8Array.from([0x66, 0xff])), displayPath(Uint8Array.from([0x66, 0xfe])), 'distinct bytes, distinct names');
});

test('a symlink back to an enclosing folder is named and not followed; the walk ends with each file once', { timeout: 60_000 }, () => {
  const root = tree('loop1');
  symlinkSync('..', join(root, 's', 'up'));
  const e = expandInputs([root]);
  assert.deepEqual(e.files, [`${root}/a.png`, `${root}/s/b.png`]);
  assert.equal(e.problems.length, 1);
  assert.equal(e.problems[0]!.input, `${root}/s/up`);
  assert.match(e.problems[0]!.problem, /symlink loop: \.\. leads back to the enclosing folder .*loop1; not followed/);
  // The walker itself, as other callers use it: bytes to open beside the shown names.
  const w = walkFolder(root);
  assert.deepEqual(w.files.map((f) => f.path.toString()), [`${root}/a.png`, `${root}/s/b.png`]);
});

test('two loop links end too (no exponential walk)', { timeout: 60_000 }, () => {
  const root = tree('loop2');
  symlinkSync('..', join(root, 's', 'up'));
  symlinkSync('.', join(root, 's', 'here'));
  mkdirSync(join(root, 't'));
  symlinkSync('../s', join(root, 't', 'to-s'));
  // In a child process with a time limit: a walk that does not end blocks its thread, and a test's own timeout
  // cannot fire in a blocked thread.
  const script = `const { expandInputs } = await import(${JSON.stringify(new URL('../../src/inference/node/inputs.js', import.meta.url).href)});
process.stdout.write(JSON.stringify(expandInputs([${JSON.stringify(root)}])));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000, maxBuffer: 1 << 26 });
  assert.equal(child.signal, null, 'the walk ended (not killed at the 60 s limit)');
  const e = JSON.parse(child.stdout) as { files: string[]; problems: { input: string; problem: string }[] };
  assert.deepEqual(e.files, [`${root}/a.png`, `${root}/s/b.png`]);
  const named = e.problems.map((p) => `${p.input}: ${p.problem.split(':')[0]}`).sort();
  assert.deepEqual(named, [`${root}/s/here: symlink loop`, `${root}/s/up: symlink loop`, `${root}/t/to-s: the same folder as ${root}/s, already walked; not walked twice`].sort());
});

test('dangling and self-looping links are named; a link to a file or folder elsewhere is followed once', () => {
  const root = tree('links');
  const elsewhere = join(tmp.dir, 'elsewhere');
  mkdirSync(elsewhere);
  writeFileSync(join(elsewhere, 'c.png'), 'c');
  symlinkSync(join(tmp.dir, 'no-such-target'), join(root, 'dangling.png'));
  symlinkSync('self', join(root, 'self'));
  symlinkSync(elsewhere, join(root, 'far'));
  symlinkSync(join(root, 'a.png'), join(root, 'z-alias.png'));
  const e = expandInputs([root]);
  assert.deepEqual(e.files, [`${root}/a.png`, `${root}/far/c.png`, `${root}/s/b.png`, `${root}/z-alias.png`]);
  assert.deepEqual(
    e.problems.map((p) => [p.input, p.problem]),
    [
      [`${root}/dangling.png`, `dangling symlink: its target ${join(tmp.dir, 'no-such-target')} does not exist`],
      [`${root}/self`, 'symlink loop: self leads back to itself'],
    ],
  );
});

test('names that are not UTF-8 are found, shown with \\xHH and opened by their bytes', () => {
  const root = Buffer.from(join(tmp.dir, 'latin1'));
  mkdirSync(root);
  const name = (b: number[]) => Buffer.concat([root, Buffer.from('/'), Buffer.from(b)]);
  // "f\xff.png" and "f\xfe.png": the same text once decoded lossily (U+FFFD), two files on disk.
  writeFileSync(name([0x66, 0xff, 0x2e, 0x70, 0x6e, 0x67]), 'ff');
  writeFileSync(name([0x66, 0xfe, 0x2e, 0x70, 0x6e, 0x67]), 'fe');
  mkdirSync(name([0x64, 0xe9]));
  writeFileSync(Buffer.concat([name([0x64, 0xe9]), Buffer.from('/x.png')]), 'x');
  const e = expandInputs([root.toString()]);
  const r = root.toString();
  assert.deepEqual(e.files, [`${r}/d\\xE9/x.png`, `${r}/f\\xFE.png`, `${r}/f\\xFF.png`]);
  assert.deepEqual(e.problems, []);
  assert.equal(readFileSync(e.openPaths.get(`${r}/f\\xFF.png`)!, 'utf8'), 'ff');
  assert.equal(readFileSync(e.openPaths.get(`${r}/f\\xFE.png`)!, 'utf8'), 'fe');
  assert.equal(readFileSync(e.openPaths.get(`${r}/d\\xE9/x.png`)!, 'utf8'), 'x');
});
