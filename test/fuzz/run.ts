/**
 * `npm run fuzz`: the fuzz campaign (see cases.ts for what is made and how it is mutated, child.ts for how each
 * outcome is judged). Prints the counts of accepted inputs, clean errors, crashes, hangs and token bypasses per
 * target and a JSON summary; exits 1 on any crash, hang or bypass, naming each case so it can be rerun alone.
 *
 *   npm run fuzz                                  # the full campaign, seed 1 (1,010 cases)
 *   npm run fuzz -- --seed 7 --scale 3            # another seed, three times the cases
 *   npm run fuzz -- --ci                          # the slice npm test runs
 *   npm run fuzz -- --target dicom --seed 1 --index 42 --save /tmp/case   # one case, its input written out
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CI_COUNTS, FULL_COUNTS, TARGETS, type Target } from './cases.js';
import { formatCounts, runCampaign } from './campaign.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const seed = Number(arg('seed') ?? 1);
  const scale = Number(arg('scale') ?? 1);
  const base = process.argv.includes('--ci') ? CI_COUNTS : FULL_COUNTS;
  const only = arg('target') as Target | undefined;
  if (only && !TARGETS.includes(only)) throw new Error(`--target: one of ${TARGETS.join(', ')}`);
  const counts = Object.fromEntries(TARGETS.filter((t) => !only || t === only).map((t) => [t, Math.max(1, Math.round(base[t] * scale))]));
  const index = arg('index');
  const save = arg('save');
  let done = 0;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const r = await runCampaign({
    seed,
    counts,
    ...(index !== undefined ? { indices: [Number(index)] } : {}),
    caseTimeoutMs: Number(arg('timeout') ?? 20_000),
    onCase: (req, res) => {
      done++;
      if (res.outcome !== 'ok' && res.outcome !== 'clean') process.stderr.write(`\n${res.outcome}: --target ${req.target} --seed ${req.seed} --index ${req.index}: ${res.detail ?? ''}\n`);
      else if (process.stderr.isTTY && done % 25 === 0) process.stderr.write(`\r${done}/${index !== undefined ? 1 : total} cases`);
    },
  });
  if (save) {
    const { caseInput } = await import('./child.js');
    mkdirSync(save, { recursive: true });
    for (const f of r.failures.length ? r.failures : index !== undefined && only ? [{ target: only, seed, index: Number(index) }] : []) {
      const c = await caseInput(f);
      if (c) writeFileSync(join(save, c.name), c.bytes);
    }
  }
  process.stderr.write('\n');
  process.stdout.write(formatCounts(r) + '\n');
  process.stdout.write(JSON.stringify({ seed: r.seed, cases: r.cases, seconds: Number(r.seconds.toFixed(1)), totals: r.totals, counts: r.counts, failures: r.failures.map((f) => ({ ...f, detail: f.detail.slice(0, 500) })) }) + '\n');
  process.exitCode = r.totals.crash + r.totals.hang + r.totals.bypass > 0 ? 1 : 0;
  // The child module's temporary folder is removed on exit.
  process.exit();
}

await main();
