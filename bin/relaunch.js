// Large-page relaunch for the commands that load a whole network in one shot (plain JS: the launcher runs it before
// anything is compiled or loaded).
//
// Why: creating an ONNX Runtime session for ResNet-152 copies its 240 MB of weights about three times (protobuf,
// initialisers, prepacked kernels), and a one-shot `forward` or `predict` spends most of its set-up in the kernel
// handing out fresh 4 KiB pages: 257,000 minor faults for one session on a 2-core VM, against 50,000 with glibc's
// `glibc.malloc.hugetlb=1` tunable (malloc asks for transparent huge pages with madvise). Outputs are bit-identical;
// the timings are in docs/performance.md. glibc reads tunables once, at process start, so the only way to turn it
// on is to start the process with it: the launcher starts the command again in a child process with the tunable
// added to GLIBC_TUNABLES, through util-linux's `setpriv --pdeathsig KILL`, so that the child dies with the launcher
// (kill -9 of the launcher ends the job exactly as it did before; nothing is left running).
//
// Only where it helps and is safe: Linux with glibc >= 2.35 (older glibc and musl ignore the tunable), transparent
// huge pages in `madvise` mode (with `always` every large mapping is huge already; with `never` nothing can be),
// `setpriv` present, a network of at least 64 MiB, the tunable not already set, and not already relaunched.
// NEXTRAY_HUGEPAGES=0 turns it off; NEXTRAY_HUGEPAGES=1 relaunches whatever the transparent huge page mode and the
// network's size say. Anything unexpected: no relaunch. The cost: a second Node start, and a larger peak RSS (about
// 1.2 GB instead of 0.9 GB for ResNet-152's first forward), as huge pages are filled whole.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The commands that read a network and run it once (set-up dominates their time), and the flag naming the network. */
export const RELAUNCH_COMMANDS = new Map([
  ['forward', '--weights'],
  ['predict', '--model'],
]);
/**
 * Below this many bytes of network the relaunch (a second Node start, about 0.05-0.1 s) costs more than the large
 * pages save: a 1.3 MB demo model gains nothing, ResNet-50 (98 MB) and up gain seconds on a machine with slow faults.
 */
export const RELAUNCH_MIN_BYTES = 64 * 1024 * 1024;
const TUNABLE = 'glibc.malloc.hugetlb=1';
const MARK = 'NEXTRAY_RELAUNCHED';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'];

/**
 * The GLIBC_TUNABLES value to relaunch with, or undefined for no relaunch. Pure: every fact is an argument
 * (`networkBytes`: the size of the files the command's network flag names, undefined when one cannot be read).
 * @param {{ command: string | undefined, platform: string, env: Record<string, string | undefined>,
 *   glibc: string | undefined, thp: string | undefined, setpriv: boolean, networkBytes: number | undefined }} facts
 */
export function relaunchTunables({ command, platform, env, glibc, thp, setpriv, networkBytes }) {
  const mode = env.NEXTRAY_HUGEPAGES;
  if (mode === '0' || env[MARK] === '1') return undefined;
  if (command === undefined || !RELAUNCH_COMMANDS.has(command)) return undefined;
  if (mode !== '1' && !(networkBytes !== undefined && networkBytes >= RELAUNCH_MIN_BYTES)) return undefined;
  if (platform !== 'linux' || !setpriv) return undefined;
  const m = /^(\d+)\.(\d+)/.exec(glibc ?? '');
  if (!m || Number(m[1]) < 2 || (Number(m[1]) === 2 && Number(m[2]) < 35)) return undefined;
  if (mode !== '1' && !/\[madvise\]/.test(thp ?? '')) return undefined;
  const current = env.GLIBC_TUNABLES ?? '';
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(current)) return undefined;
  // First, then the user's own: glibc 2.36 rewrites the variable a process inherits to its first tunable only.
  return current === '' ? TUNABLE : `${TUNABLE}:${current}`;
}

/**
 * The bytes of the files `flag` names in `args` (`--flag v` or `--flag=v`, any number of times; a folder counts its
 * model.safetensors, as a checkpoint folder's network); undefined when there are none or one cannot be read (the
 * command, run here, reports that itself).
 */
export function networkBytes(args, flag) {
  const paths = [];
  for (let i = 1; i < args.length; i++) {
    if (args[i] === flag && i + 1 < args.length) paths.push(args[++i]);
    else if (args[i].startsWith(`${flag}=`)) paths.push(args[i].slice(flag.length + 1));
  }
  if (paths.length === 0) return undefined;
  let total = 0;
  for (const p of paths) {
    try {
      const st = statSync(p);
      total += st.isDirectory() ? statSync(join(p, 'model.safetensors')).size : st.size;
    } catch {
      return undefined;
    }
  }
  return total;
}

function facts(args, setpriv) {
  let thp;
  try {
    thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
  } catch {
    thp = undefined;
  }
  const env = process.env;
  // The report's header names the C library Node runs on (only asked where the cheaper checks pass).
  const glibc = () => process.report?.getReport?.().header?.glibcVersionRuntime;
  const flag = RELAUNCH_COMMANDS.get(args[0]);
  const bytes = flag === undefined ? undefined : networkBytes(args, flag);
  const base = { command: args[0], platform: process.platform, env, thp, setpriv: setpriv !== undefined, networkBytes: bytes };
  if (relaunchTunables({ ...base, glibc: '2.99' }) === undefined) return { ...base, glibc: undefined };
  return { ...base, glibc: glibc() };
}

/**
 * Relaunches `args` in a child process with the large-page tunable when that helps (see above): true once the child
 * has been started (the launcher then only waits and passes its exit status on), false to run the command here.
 */
export function relaunchWithLargePages(script, args) {
  // Every other command goes on at once, without reading /sys or stat-ing files.
  if (!RELAUNCH_COMMANDS.has(args[0])) return false;
  const setpriv = SETPRIV.find((p) => existsSync(p));
  let tunables;
  try {
    tunables = relaunchTunables(facts(args, setpriv));
  } catch {
    return false;
  }
  if (tunables === undefined) return false;
  const child = spawn(setpriv, ['--pdeathsig', 'KILL', '--', process.execPath, ...process.execArgv, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, GLIBC_TUNABLES: tunables, [MARK]: '1' },
  });
  // Signals sent to the launcher alone (kill PID, a supervisor) reach the job; one from the terminal reaches both.
  const forward = (signal) => () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) process.on(signal, forward(signal));
  child.on('error', (err) => {
    process.stderr.write(`nextray: could not start the command (${err.message}); set NEXTRAY_HUGEPAGES=0 to run it without the large-page relaunch\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
  return true;
}
