/**
 * The fuzz campaign's parent: sends each case to a worker process (child.ts), with a time limit per case. A worker
 * that dies on a case (a native crash) or does not answer in time (a hang) is counted against that case and
 * replaced, and the campaign goes on. The result counts each outcome per target and lists every failure with what
 * reproduces it (`npm run fuzz -- --target T --seed S --index I`).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaseRequest, CaseResult } from './child.js';
import { TARGETS, type Target } from './cases.js';

export type Outcome = CaseResult['outcome'];
export const OUTCOMES: readonly Outcome[] = ['ok', 'clean', 'crash', 'hang', 'bypass'];

export interface Failure extends CaseRequest {
  outcome: Outcome;
  detail: string;
}

export interface CampaignResult {
  seed: number;
  counts: Record<Target, Record<Outcome, number>>;
  totals: Record<Outcome, number>;
  cases: number;
  failures: Failure[];
  seconds: number;
}

export interface CampaignOptions {
  seed: number;
  /** Cases per target. */
  counts: Partial<Record<Target, number>>;
  /** Longest a case may take before it counts as a hang (default 20 s). */
  caseTimeoutMs?: number;
  /** Only these case indices (reproducing one case). */
  indices?: number[];
  onCase?: (req: CaseRequest, result: CaseResult) => void;
}

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url));

class Worker {
  private child: ChildProcess | undefined;
  /** Workers keep their files here; removed by stop(), also what a killed worker left. */
  private readonly tmp = mkdtempSync(join(tmpdir(), 'nextray-fuzz-'));
  private pending: ((r: CaseResult | { died: string }) => void) | undefined;

  private async start(): Promise<ChildProcess> {
    const child = fork(CHILD, ['--fuzz-child'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, NEXTRAY_FUZZ_TMP: this.tmp } });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    await new Promise<void>((res, rej) => {
      child.once('message', () => res());
      child.once('exit', (code) => rej(new Error(`fuzz worker exited at start (${code}): ${stderr}`)));
    });
    child.on('message', (r: CaseResult) => {
      const p = this.pending;
      this.pending = undefined;
      p?.(r);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const p = this.pending;
      this.pending = undefined;
      p?.({ died: `worker died (${signal ?? `exit ${code}`})${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
    });
    return child;
  }

  async run(req: CaseRequest, timeoutMs: number): Promise<CaseResult> {
    this.child ??= await this.start();
    const child = this.child;
    return new Promise<CaseResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        this.child = undefined;
        child.kill('SIGKILL');
        resolve({ outcome: 'hang', detail: `no answer within ${timeoutMs} ms` });
      }, timeoutMs);
      this.pending = (r) => {
        clearTimeout(timer);
        resolve('died' in r ? { outcome: 'crash', detail: r.died } : r);
      };
      child.send(req);
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      // Ask it to exit (it removes its files), then make sure.
      const gone = new Promise<void>((res) => child.once('exit', () => res()));
      child.disconnect();
      await Promise.race([gone, new Promise((res) => setTimeout(res, 5000))]);
      child.kill('SIGKILL');
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** Runs `reqs` one by one in a worker process (replaced after a crash or hang); the outcome of each. */
export async function runCases(reqs: readonly CaseRequest[], caseTimeoutMs = 20_000): Promise<CaseResult[]> {
  const worker = new Worker();
  try {
    const out: CaseResult[] = [];
    for (const r of reqs) out.push(await worker.run(r, caseTimeoutMs));
    return out;
  } finally {
    await worker.stop();
  }
}

export async function runCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  const t0 = performance.now();
  const zero = (): Record<Outcome, number> => ({ ok: 0, clean: 0, crash: 0, hang: 0, bypass: 0 });
  const counts = Object.fromEntries(TARGETS.map((t) => [t, zero()])) as Record<Target, Record<Outcome, number>>;
  const totals = zero();
  const failures: Failure[] = [];
  const worker = new Worker();
  let cases = 0;
  try {
    for (const target of TARGETS) {
      const n = opts.counts[target] ?? 0;
      const indices = opts.indices ?? Array.from({ length: n }, (_, i) => i);
      if (!n) continue;
      for (const index of indices) {
        const req = { target, seed: opts.seed, index };
        const r = await worker.run(req, opts.caseTimeoutMs ?? 20_000);
        counts[target][r.outcome]++;
        totals[r.outcome]++;
        cases++;
        if (r.outcome !== 'ok' && r.outcome !== 'clean') failures.push({ ...req, outcome: r.outcome, detail: r.detail ?? '' });
        opts.onCase?.(req, r);
      }
    }
  } finally {
    await worker.stop();
  }
  return { seed: opts.seed, counts, totals, cases, failures, seconds: (performance.now() - t0) / 1000 };
}

/** The counts as a table, one line per target. */
export function formatCounts(r: CampaignResult): string {
  const head = ['target', ...OUTCOMES].map((s) => s.padStart(9)).join('');
  const rows = (Object.keys(r.counts) as Target[]).filter((t) => OUTCOMES.some((o) => r.counts[t][o] > 0)).map((t) => [t, ...OUTCOMES.map((o) => String(r.counts[t][o]))].map((s) => s.padStart(9)).join(''));
  const total = ['total', ...OUTCOMES.map((o) => String(r.totals[o]))].map((s) => s.padStart(9)).join('');
  return [head, ...rows, total].join('\n');
}
