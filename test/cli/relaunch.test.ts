/**
 * The launcher's large-page relaunch (bin/relaunch.js): when it relaunches, with what GLIBC_TUNABLES, and that the
 * relaunched job behaves as the command did before — its exit status and messages pass through, and kill -9 of the
 * launcher ends the job (nothing is left running).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';

interface Facts {
  command: string | undefined;
  platform: string;
  env: Record<string, string | undefined>;
  glibc: string | undefined;
  thp: string | undefined;
  setpriv: boolean;
  networkBytes: number | undefined;
}
const BIN = join(REPO_ROOT, 'bin', 'nextray.js');
const relaunch = (await import(pathToFileURL(join(REPO_ROOT, 'bin', 'relaunch.js')).href)) as {
  relaunchTunables: (f: Facts) => string | undefined;
  networkBytes: (args: string[], flag: string) => number | undefined;
};

const MADVISE = 'always [madvise] never\n';
const base: Facts = { command: 'forward', platform: 'linux', env: {}, glibc: '2.36', thp: MADVISE, setpriv: true, networkBytes: 241_000_000 };

test('relaunchTunables: which invocations get glibc.malloc.hugetlb=1, and what else GLIBC_TUNABLES keeps', () => {
  const t = relaunch.relaunchTunables;
  assert.equal(t(base), 'glibc.malloc.hugetlb=1');
  assert.equal(t({ ...base, command: 'predict' }), 'glibc.malloc.hugetlb=1');
  // A user's own tunables are kept, after the hugetlb one.
  assert.equal(t({ ...base, env: { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' } }), 'glibc.malloc.hugetlb=1:glibc.malloc.arena_max=2');
  // A user's own hugetlb choice wins (even 0), and a relaunched child never relaunches again.
  assert.equal(t({ ...base, env: { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' } }), undefined);
  assert.equal(t({ ...base, env: { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2' } }), undefined);
  assert.equal(t({ ...base, env: { NEXTRAY_RELAUNCHED: '1' } }), undefined);
  // Off by request; on by request whatever the huge-page mode says.
  assert.equal(t({ ...base, env: { NEXTRAY_HUGEPAGES: '0' } }), undefined);
  assert.equal(t({ ...base, thp: 'always madvise [never]\n' }), undefined);
  assert.equal(t({ ...base, thp: '[always] madvise never\n' }), undefined);
  assert.equal(t({ ...base, thp: undefined }), undefined);
  assert.equal(t({ ...base, thp: '[always] madvise never\n', env: { NEXTRAY_HUGEPAGES: '1' } }), 'glibc.malloc.hugetlb=1');
  // Commands that do not load a network in one shot, and none at all.
  for (const command of ['train', 'serve', 'pacs', 'app', 'synth', undefined]) assert.equal(t({ ...base, command }), undefined, String(command));
  // Where the tunable does nothing (glibc < 2.35 reads no hugetlb tunable; musl reports no glibc) or cannot be set.
  assert.equal(t({ ...base, glibc: '2.34' }), undefined);
  assert.equal(t({ ...base, glibc: '2.35' }), 'glibc.malloc.hugetlb=1');
  assert.equal(t({ ...base, glibc: '3.0' }), 'glibc.malloc.hugetlb=1');
  assert.equal(t({ ...base, glibc: undefined }), undefined);
  assert.equal(t({ ...base, platform: 'darwin' }), undefined);
  assert.equal(t({ ...base, setpriv: false }), undefined);
  // A small network (the demo's 1.3 MB) is not worth a second Node start; an unreadable one is reported in-process.
  assert.equal(t({ ...base, networkBytes: 64 * 1024 * 1024 }), 'glibc.malloc.hugetlb=1');
  assert.equal(t({ ...base, networkBytes: 64 * 1024 * 1024 - 1 }), undefined);
  assert.equal(t({ ...base, networkBytes: undefined }), undefined);
  assert.equal(t({ ...base, networkBytes: 1_300_000, env: { NEXTRAY_HUGEPAGES: '1' } }), 'glibc.malloc.hugetlb=1');
});

test('networkBytes: the sizes of the files a flag names, in both spellings and repeated; a folder counts its model.safetensors', () => {
  const t = tempDir();
  try {
    writeFileSync(join(t.dir, 'a.onnx'), Buffer.alloc(1000));
    writeFileSync(join(t.dir, 'b.onnx'), Buffer.alloc(234));
    mkdirSync(join(t.dir, 'ckpt'));
    writeFileSync(join(t.dir, 'ckpt', 'model.safetensors'), Buffer.alloc(77));
    const nb = relaunch.networkBytes;
    const a = join(t.dir, 'a.onnx');
    const b = join(t.dir, 'b.onnx');
    assert.equal(nb(['forward', '--arch', 'resnet18', '--weights', a, '--input', b], '--weights'), 1000);
    assert.equal(nb(['forward', `--weights=${a}`], '--weights'), 1000);
    assert.equal(nb(['predict', '--model', a, 'x.png', `--model=${b}`], '--model'), 1234);
    assert.equal(nb(['predict', '--model', join(t.dir, 'ckpt'), 'x.png'], '--model'), 77);
    assert.equal(nb(['predict', '--model', t.dir, 'x.png'], '--model'), undefined);
    assert.equal(nb(['predict', '--model', a, '--model', join(t.dir, 'missing.onnx')], '--model'), undefined);
    assert.equal(nb(['predict', 'x.png'], '--model'), undefined);
    assert.equal(nb(['predict', '--model'], '--model'), undefined);
    // The command's own name is not a flag value even when it looks like one.
    assert.equal(nb(['--weights', a], '--weights'), undefined);
  } finally {
    t.cleanup();
  }
});

const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
// Decided here, not by the function under test: a stub that never relaunches must fail below, not skip.
const glibcAtLeast235 = /^(\d+)\.(\d+)/.test(glibc ?? '') && (([maj, min]) => maj! > 2 || (maj === 2 && min! >= 35))(glibc!.split('.').map(Number));
const canRelaunch = process.platform === 'linux' && (existsSync('/usr/bin/setpriv') || existsSync('/bin/setpriv')) && glibcAtLeast235;
const skip = canRelaunch ? false : 'needs Linux, glibc >= 2.35 and util-linux setpriv';

test('a relaunched command passes its exit status, stdout and stderr through unchanged', { skip }, () => {
  const args = ['forward', '--arch', 'resnet18', '--weights', 'missing.pth', '--input', 'missing.npy', '--output', 'y.npy'];
  const on = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NEXTRAY_HUGEPAGES: '1' } });
  const off = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, NEXTRAY_HUGEPAGES: '0' } });
  assert.equal(off.status, 2, off.stderr);
  assert.match(off.stderr, /missing\.npy/);
  assert.equal(on.status, off.status);
  assert.equal(on.stdout, off.stdout);
  assert.equal(on.stderr, off.stderr);
});

/** The pids whose parent is `ppid` (from /proc/PID/stat; the command name may hold spaces, so split after ')'). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
/** 'gone', or the process state letter (Z: dead, not yet reaped). */
function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0]!;
  } catch {
    return 'gone';
  }
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('the job runs with the tunable in a child of the launcher, and kill -9 of the launcher ends it', { skip }, async () => {
  const t = tempDir();
  let launcher: ChildProcess | undefined;
  try {
    // The input is a FIFO nobody writes: forward blocks reading it, so the job stays alive until killed.
    const fifo = join(t.dir, 'x.npy');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const child = spawn(process.execPath, [BIN, 'forward', '--arch', 'resnet18', '--weights', join(t.dir, 'w.pth'), '--input', fifo, '--output', join(t.dir, 'y.npy')], {
      env: { ...process.env, NEXTRAY_HUGEPAGES: '1', GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' },
      stdio: 'ignore',
    });
    launcher = child;
    const exited = new Promise<string | null>((r) => child.on('exit', (_c, s) => r(s)));
    let job: number | undefined;
    for (let i = 0; i < 500 && job === undefined; i++) {
      await sleep(20);
      const kids = childrenOf(child.pid!).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('forward'));
      // setpriv execs node in place: wait until the child is node itself, past setpriv.
      if (kids.length === 1 && readFileSync(`/proc/${kids[0]}/cmdline`, 'utf8').split('\0')[0] === process.execPath) job = kids[0];
    }
    assert.ok(job !== undefined, 'the launcher started no child running the command');
    const environ = readFileSync(`/proc/${job}/environ`, 'utf8').split('\0');
    // glibc 2.36 cuts the variable in its own copy of the environment down to the first tunable, so look at that one.
    const tunables = environ.filter((e) => e.startsWith('GLIBC_TUNABLES='));
    assert.equal(tunables.length, 1, environ.join(' '));
    assert.match(tunables[0]!, /^GLIBC_TUNABLES=glibc\.malloc\.hugetlb=1(:glibc\.malloc\.arena_max=4)?$/);
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    let state = stateOf(job);
    for (let i = 0; i < 250 && state !== 'gone' && state !== 'Z'; i++) {
      await sleep(20);
      state = stateOf(job);
    }
    assert.ok(state === 'gone' || state === 'Z', `the job (pid ${job}) outlived its launcher: state ${state}`);
  } finally {
    // Whatever failed above, leave no launcher blocked on the FIFO behind.
    launcher?.kill('SIGKILL');
    t.cleanup();
  }
});
