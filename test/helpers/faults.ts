/**
 * A shared harness for fault tests: the conditions a user's machine produces and a test has to make on purpose.
 *  - `unprivileged`: run a command as an ordinary user. Tests often run as root (CI does), and root reads through
 *    any chmod, so "an unreadable folder" needs a process without root's powers (setpriv to nobody).
 *  - `smallTmpfs`: a tiny tmpfs (full after a few KiB, or mounted read-only): the only honest "disk full" and
 *    "read-only filesystem" for root, who ignores permissions. Needs mount rights (root); else a skip reason.
 *  - `killNine`: start a command, SIGKILL it at a chosen moment (after N ms, or when its output matches), and return
 *    what it wrote — for "kill -9 at a random point, then resume" tests of any long job (train, export, calibrate,
 *    predict --out, and the stages that land later: give it the command line and a point to kill at).
 *  - `tempLitter`: the temporary files an interrupted atomic write can leave (`.NAME.PID.N.tmp`) under a folder.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

const NOBODY = 65534;

/** `[command, ...args]` to run `argv` without root's powers, or a skip reason. When not root, `argv` as it is. */
export function unprivileged(argv: string[]): { argv: string[] } | { skip: string } {
  if (process.getuid?.() !== 0) return { argv };
  const r = spawnSync('setpriv', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) return { skip: 'running as root and setpriv (util-linux) is missing: cannot make a folder unreadable for the test' };
  return { argv: ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv] };
}

/** Makes `dir` and the folders above it up to `top` traversable and readable by everyone (for `unprivileged`). */
export function openForAll(top: string, ...paths: string[]): void {
  spawnSync('chmod', ['-R', 'a+rX', top]);
  for (const p of paths) spawnSync('chmod', ['a+rwX', p]);
}

export interface Tmpfs {
  dir: string;
  /** Remount read-only (true) or read-write (false). */
  readOnly(on: boolean): void;
  unmount(): void;
}

/**
 * Mounts a tmpfs of `kib` KiB at a new folder under `parent`. Returns a skip reason where mounting is impossible
 * (not root, no mount command, a container without the right), so the test says why it did not run.
 */
export function smallTmpfs(parent: string, kib: number): Tmpfs | { skip: string } {
  if (process.platform !== 'linux') return { skip: 'tmpfs mounts need Linux' };
  if (process.getuid?.() !== 0) return { skip: 'mounting a small tmpfs (a real full or read-only filesystem) needs root' };
  const dir = join(parent, `tmpfs-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0777`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs here (${(r.stderr || r.error?.message || 'mount failed').trim()})` };
  }
  return {
    dir,
    readOnly(on: boolean) {
      const m = spawnSync('mount', ['-o', `remount,${on ? 'ro' : 'rw'}`, dir], { encoding: 'utf8' });
      if (m.status !== 0) throw new Error(`remount ${on ? 'ro' : 'rw'} ${dir}: ${m.stderr}`);
    },
    unmount() {
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Killed {
  /** Exit code if it ended by itself before the kill point, else null. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the SIGKILL was sent (the job was still running at the kill point). */
  killed: boolean;
}

/**
 * Runs `nextray ARGS` (the compiled CLI) and sends SIGKILL when `at` says: after `afterMs`, as soon as its stderr
 * or stdout matches `when`, or as soon as `poll()` is true (then after `delayMs` more). Resolves when it is gone.
 */
export function killNine(
  args: string[],
  at: { afterMs?: number; when?: RegExp; delayMs?: number; /** Polled every 2 ms: kill once it is true (e.g. a temporary file appeared). */ poll?: () => boolean },
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Killed> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'nextray.js'), ...args], { cwd: opts.cwd ?? REPO_ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const kill = (): void => {
      if (child.exitCode !== null || child.signalCode !== null || killed) return;
      killed = true;
      child.kill('SIGKILL');
    };
    const armed = (): void => {
      if (at.delayMs) setTimeout(kill, at.delayMs);
      else kill();
    };
    let matched = false;
    const check = (): void => {
      if (!matched && at.when && (at.when.test(stderr) || at.when.test(stdout))) {
        matched = true;
        armed();
      }
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      check();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      check();
    });
    if (at.afterMs !== undefined) setTimeout(kill, at.afterMs);
    const poller = at.poll
      ? setInterval(() => {
          if (!matched && at.poll!()) {
            matched = true;
            armed();
          }
        }, 2)
      : undefined;
    child.on('exit', (code, signal) => {
      if (poller) clearInterval(poller);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}

/** Temporary files of interrupted atomic writes (`.NAME.PID.N.tmp`, `.NAME.PID.N.tmp.ort`) anywhere under `dir`. */
export function tempLitter(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (/^\..+\.\d+\.\d+\.tmp(\.[a-z]+)?$/.test(name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}
