/**
 * Progress reporting for long jobs: a cli-progress bar on an interactive terminal, nothing in quiet/JSON mode
 * or when stderr is not a TTY (CI logs stay readable). Always writes to stderr so stdout stays parseable.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Advance by `n` items, optionally updating the named payload fields shown after the bar. */
  tick(n?: number, payload?: Record<string, string | number>): void;
  /** Change the total (e.g. when it becomes known). */
  setTotal(total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  /** Suppress the bar entirely (--quiet / --json). */
  quiet?: boolean;
  /** Names of payload fields to show, e.g. ['loss', 'ips']. */
  fields?: string[];
}

const silent: Progress = { tick() {}, setTotal() {}, stop() {} };

export function createProgress(opts: ProgressOptions): Progress {
  if (opts.quiet || !process.stderr.isTTY) return silent;
  const fieldFmt = (opts.fields ?? []).map((f) => ` ${f} {${f}}`).join('');
  const bar = new cliProgress.SingleBar(
    {
      format: `${opts.label} [{bar}] {value}/{total} {percentage}% ETA {eta_formatted}${fieldFmt}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const initial: Record<string, string> = {};
  for (const f of opts.fields ?? []) initial[f] = '-';
  bar.start(opts.total, 0, initial);
  return {
    tick(n = 1, payload) {
      bar.increment(n, payload);
    },
    setTotal(total) {
      bar.setTotal(total);
    },
    stop() {
      bar.stop();
    },
  };
}
