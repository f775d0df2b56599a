/**
 * The fuzz campaign's CI slice (`npm run fuzz` runs the full one): 340 seeded cases — mutated PNG, JPEG and DICOM
 * encodings made here, malformed MURA CSVs and split files, broken multipart bodies, and oddly spelled request
 * targets against a server with a token — with no crash, no hang and no token bypass. The campaign's own detection
 * is checked first: a worker that dies, one that never answers and a plain exception are each caught.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CI_COUNTS, TARGETS } from './cases.js';
import { formatCounts, runCampaign, runCases } from './campaign.js';

test('the campaign counts a native crash, a hang and an unexpected exception as failures, and goes on', async () => {
  const r = await runCases(
    [0, 1, 2].map((index) => ({ target: 'selftest' as const, seed: 0, index })),
    3000,
  );
  assert.deepEqual(r.map((x) => x.outcome), ['crash', 'hang', 'crash']);
  assert.match(r[0]!.detail ?? '', /worker died \(SIGKILL\)/);
  assert.match(r[2]!.detail ?? '', /TypeError: a bug, on purpose/);
});

test('CI slice (seed 2): no crash, no hang, no token bypass', { timeout: 10 * 60_000 }, async () => {
  const r = await runCampaign({ seed: 2, counts: CI_COUNTS });
  process.stderr.write(formatCounts(r) + '\n');
  assert.deepEqual(r.failures, [], r.failures.map((f) => `${f.outcome}: --target ${f.target} --seed ${f.seed} --index ${f.index}: ${f.detail}`).join('\n'));
  for (const t of TARGETS) {
    const c = r.counts[t];
    assert.equal(c.ok + c.clean, CI_COUNTS[t], t);
  }
  // Not vacuous: the mutations are refused often, and accepted sometimes.
  for (const t of ['jpeg', 'dicom', 'split', 'multipart', 'paths'] as const) assert.ok(r.counts[t].clean > 0, `${t}: some inputs refused`);
  for (const t of ['jpeg', 'dicom', 'csv', 'multipart', 'paths'] as const) assert.ok(r.counts[t].ok > 0, `${t}: some inputs accepted`);
});
