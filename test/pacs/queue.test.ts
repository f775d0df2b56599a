/**
 * `nextray pacs enqueue / work / status` over BullMQ on a real redis-server that the test starts (random port,
 * temporary folder, no persistence).
 *
 * - Three workers on one queue; two are killed with SIGKILL, one just before it writes a study's result and one just
 *   after (before BullMQ is told), each holding that study's lock. With short lock durations the survivor's stalled-job
 *   check puts both studies back and does them: every study ends with exactly one result. A consumer that
 *   acknowledged before writing loses the first study (no result); one whose result UIDs were not derived from the
 *   study leaves two for the second.
 * - Failing studies are retried with backoff and end in the dead-letter queue, which `pacs status` lists.
 * - Orthanc as producer and archive: studies enqueued from its REST API, results stored back (one SR each).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/index.js';
import { makePreprocessing } from '../../src/data/preprocess.js';
import { createModel } from '../../src/models/index.js';
import { exportOnnx } from '../../src/models/onnx/export.js';
import { saveOnnx } from '../../src/models/onnx/files.js';
import { parseDicom } from '../../src/data/dicom/reader.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { orthancReports, pacsSkip, runNextray, startOrthanc, startRedis, storescu, waitStable, writeStudy, type RedisServer, type Run } from '../helpers/pacs.js';

const skip = pacsSkip(['redis']);
const tmp = tempDir('nextray-pacs-queue-');
const d = (...p: string[]) => join(tmp.dir, ...p);
let redis: RedisServer;

before(async () => {
  if (skip) return;
  await initEngine('cpu');
  const model = createModel('resnet-slim', { head: 'binary', seed: 6 });
  saveOnnx(d('m.onnx'), exportOnnx(model, { inputSize: 32, preprocessing: makePreprocessing({ size: 32 }), decisionThreshold: 0.5 }));
  model.dispose();
  redis = await startRedis(tmp.dir);
});
after(async () => {
  await redis?.stop();
  tmp.cleanup();
});

const nextray = (args: string[], opts: { env?: NodeJS.ProcessEnv; killWhen?: RegExp } = {}): Promise<Run> => runNextray(REPO_ROOT, args, { timeoutMs: 300_000, ...opts });
const workArgs = (queue: string, extra: string[]) => ['pacs', 'work', '--redis', redis.url, '--queue', queue, '--model', d('m.onnx'), '--threads', '1', '--lock-seconds', '4', '--stalled-seconds', '1', '--max-stalled', '5', ...extra];

/** Study Instance UID of each result file in a folder. */
function resultsByStudy(dir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.dcm'))) {
    const study = parseDicom(new Uint8Array(readFileSync(join(dir, f)))).dataSet.string('x0020000d')!;
    out.set(study, [...(out.get(study) ?? []), f]);
  }
  return out;
}

test('two of three workers killed with -9 (before and after writing a result): every study ends with exactly one result', { skip, timeout: 420_000 }, async () => {
  const studies = Array.from({ length: 12 }, (_, i) => writeStudy(d('in'), 100 + i, { views: 1, size: 40, prefix: '1' }));
  const en = await nextray(['pacs', 'enqueue', '--redis', redis.url, '--queue', 'q1', '--folder', d('in'), '--attempts', '3', '--backoff-seconds', '0.2']);
  assert.equal(en.code, 0, en.stderr);
  assert.match(en.stderr, /12 studies enqueued on q1, 0 already there/);
  // Enqueueing again adds nothing: one job per study.
  assert.match((await nextray(['pacs', 'enqueue', '--redis', redis.url, '--queue', 'q1', '--folder', d('in')])).stderr, /0 studies enqueued on q1, 12 already there/);

  const out = d('out1');
  const heldBefore = nextray(workArgs('q1', ['--folder', d('in'), '--out', out]), { env: { NEXTRAY_PACS_FAULT_HOLD: 'storing:2' }, killWhen: /fault hold at/ });
  const heldAfter = nextray(workArgs('q1', ['--folder', d('in'), '--out', out]), { env: { NEXTRAY_PACS_FAULT_HOLD: 'stored:2' }, killWhen: /fault hold at/ });
  const [a, c] = await Promise.all([heldBefore, heldAfter]);
  assert.ok(a.killed && c.killed, `both held workers were killed at their second study:\n${a.stderr}\n${c.stderr}`);
  const studyOf = (r: Run) => /fault hold at \w+ of study (\S+)/.exec(r.stderr)![1]!;
  const lostBefore = studyOf(a);
  const lostAfter = studyOf(c);
  assert.ok(!resultsByStudy(out).has(lostBefore), 'killed before writing: no result yet');
  assert.ok(resultsByStudy(out).has(lostAfter), 'killed after writing, before the acknowledgement');
  const b = await nextray(workArgs('q1', ['--folder', d('in'), '--out', out, '--until-empty']));
  assert.equal(b.code, 0, b.stderr);
  // The survivor did the studies of the killed workers (their locks expired, the stalled check put them back).
  assert.match(b.stderr, new RegExp(`study ${lostBefore.replace(/\./g, '\\.')}: stored SR`));
  const results = resultsByStudy(out);
  for (const s of studies) assert.deepEqual(results.get(s.studyUid)?.length, 1, `study ${s.studyUid}: exactly one result`);
  assert.equal(results.size, studies.length);
  const st = await nextray(['pacs', 'status', '--redis', redis.url, '--queue', 'q1', '--json']);
  const status = JSON.parse(st.stdout) as { counts: Record<string, number>; dead: unknown[]; throughput: { studies: number; perSecond: number } };
  assert.equal(status.counts.completed, 12);
  assert.equal(status.counts.failed, 0);
  assert.deepEqual(status.dead, []);
  assert.equal(status.throughput.studies, 12);
  assert.ok(status.throughput.perSecond > 0);
});

test('a study that keeps failing is retried with backoff and ends in the dead-letter queue; status lists it', { skip, timeout: 300_000 }, async () => {
  writeStudy(d('in2'), 200, { views: 1, size: 32, prefix: '2' });
  writeStudy(d('in2'), 201, { views: 1, size: 32, prefix: '2' });
  assert.equal((await nextray(['pacs', 'enqueue', '--redis', redis.url, '--queue', 'q2', '--folder', d('in2'), '--attempts', '3', '--backoff-seconds', '0.2'])).code, 0);
  // The results folder cannot be made (a file is in the way): every store fails.
  writeFileSync(d('blocker'), 'not a folder');
  const w = await nextray(workArgs('q2', ['--folder', d('in2'), '--out', d('blocker', 'out'), '--until-empty']));
  assert.equal(w.code, 1, w.stderr);
  for (const k of [1, 2, 3]) assert.match(w.stderr, new RegExp(`attempt ${k}/3`));
  assert.match(w.stderr, /failed its last attempt \(3\): .*added to q2-dead/);
  const st = await nextray(['pacs', 'status', '--redis', redis.url, '--queue', 'q2']);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /0 done, 2 failed/);
  assert.match(st.stdout, /dead letters: 2/);
  assert.match(st.stdout, /study 1\.2\.826\.0\.1\.3680043\.9\.7\.72\.200: .*(ENOTDIR|EEXIST|not a directory)/i);
});

test('Orthanc as producer and archive: studies enqueued from its REST API, one SR each stored back', { skip: skip || pacsSkip(['orthanc', 'storescu']), timeout: 300_000 }, async () => {
  const orthanc = await startOrthanc(tmp.dir);
  try {
    const env = { NEXTRAY_PACS_USER: orthanc.user, NEXTRAY_PACS_PASSWORD: orthanc.password };
    const studies = [300, 301, 302].map((n) => writeStudy(d('in3'), n, { views: 2, size: 40, prefix: '3' }));
    storescu(orthanc, studies.flatMap((s) => s.files));
    await waitStable(orthanc, studies.map((s) => s.studyUid));
    const en = await nextray(['pacs', 'enqueue', '--redis', redis.url, '--queue', 'q3', '--orthanc', orthanc.url], { env });
    assert.match(en.stderr, /3 studies enqueued on q3/);
    const [w1, w2] = await Promise.all([0, 1].map(() => nextray(workArgs('q3', ['--orthanc', orthanc.url, '--until-empty']), { env })));
    assert.equal(w1!.code, 0, w1!.stderr);
    assert.equal(w2!.code, 0, w2!.stderr);
    for (const s of studies) assert.equal((await orthancReports(orthanc, s.studyUid)).length, 1);
  } finally {
    await orthanc.stop();
  }
});
