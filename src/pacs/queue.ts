/**
 * Archive-scale runs over BullMQ on Redis: a producer enqueues one job per study (from Orthanc, a DICOMweb server's
 * QIDO-RS, or a folder), worker processes on one or many machines consume them against the same Redis and archive.
 * Node.
 *
 * - Job id `study-<Study Instance UID>`: enqueueing a study that is already queued or done is a no-op.
 * - A worker acknowledges a job (BullMQ moves it to `completed`) only when the processor returns, which is after the
 *   study's results are stored (./study.ts). A worker killed before that holds a lock that is no longer renewed:
 *   after `lockDuration` the stalled-job check of any live worker (every `stalledInterval`) puts the job back in
 *   `wait`, and another worker does the study again. Its result UIDs are derived from (study, model), so the archive
 *   replaces the first write (if there was one) rather than holding two reports. The lock is renewed every
 *   lockDuration/2 from the event loop: lockDuration must exceed the longest time a study can block the loop
 *   (decoding a large compressed frame is synchronous), else a live job is taken for stalled and done twice (harmless
 *   for the result, wasted work).
 * - Failures (the archive answers an error, a bug) are retried `attempts` times with exponential backoff; a study that
 *   fails its last attempt is added to the dead-letter queue `<queue>-dead` with the error, and `pacs status` lists it.
 *   Bad input inside a study (refused or unreadable instances) is no failure: it is left out and named in the SR.
 */
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { RedisTarget } from './credentials.js';
import type { Predictor } from './predict.js';
import type { ResultSink, StudyRef, StudySource } from './store.js';
import { processStudy, type ProcessOptions, type StudyOutcome } from './study.js';

export interface StudyJob {
  ref: StudyRef;
  /** The archive it came from, for messages ('orthanc http://...'). */
  source: string;
}

export interface DeadLetter {
  study: string;
  error: string;
  attempts: number;
  at: string;
}

export function connectionOf(t: RedisTarget): ConnectionOptions {
  return {
    host: t.host,
    port: t.port,
    db: t.db,
    ...(t.username ? { username: t.username } : {}),
    ...(t.password ? { password: t.password } : {}),
    ...(t.tls ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

const jobIdOf = (ref: StudyRef): string => `study-${ref.studyInstanceUid ?? ref.id}`;
export const deadQueueName = (name: string): string => `${name}-dead`;

export interface EnqueueOptions {
  attempts: number;
  /** The first retry's delay; each next one doubles. */
  backoffMs: number;
  log: (line: string) => void;
}

export async function enqueueStudies(source: StudySource, redis: RedisTarget, queueName: string, opts: EnqueueOptions): Promise<{ added: number; already: number }> {
  const queue = new Queue<StudyJob>(queueName, { connection: connectionOf(redis) });
  let added = 0;
  let already = 0;
  try {
    for await (const ref of source.studies()) {
      const id = jobIdOf(ref);
      const before = await queue.getJob(id);
      if (before) {
        already++;
        continue;
      }
      await queue.add('study', { ref, source: source.name }, { jobId: id, attempts: opts.attempts, backoff: { type: 'exponential', delay: opts.backoffMs }, removeOnComplete: false, removeOnFail: false });
      added++;
      opts.log(`enqueued study ${ref.studyInstanceUid ?? ref.id}${ref.files ? ` (${ref.files.length} file(s))` : ''}`);
    }
  } finally {
    await queue.close();
  }
  return { added, already };
}

export interface WorkOptions extends ProcessOptions {
  concurrency: number;
  lockMs: number;
  stalledMs: number;
  maxStalled: number;
  /** Return when the queue has nothing left to do (waiting, delayed, active all 0), instead of waiting for more. */
  untilEmpty: boolean;
  signal?: AbortSignal;
}

export interface WorkSummary {
  done: number;
  failedAttempts: number;
  dead: number;
  seconds: number;
  outcomes: Record<string, number>;
}

export async function work(source: StudySource, sink: ResultSink, predictor: Predictor, redis: RedisTarget, queueName: string, opts: WorkOptions): Promise<WorkSummary> {
  const connection = connectionOf(redis);
  const queue = new Queue<StudyJob>(queueName, { connection });
  const dead = new Queue<DeadLetter>(deadQueueName(queueName), { connection });
  const summary: WorkSummary = { done: 0, failedAttempts: 0, dead: 0, seconds: 0, outcomes: {} };
  const t0 = performance.now();
  const processor = async (job: Job<StudyJob>): Promise<StudyOutcome> => {
    const attempts = job.opts.attempts ?? 1;
    const study = job.data.ref.studyInstanceUid ?? job.data.ref.id ?? '?';
    opts.log(`job ${job.id}: study ${study}, attempt ${job.attemptsMade + 1}/${attempts}`);
    try {
      return await processStudy(job.data.ref, source, sink, predictor, opts);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (job.attemptsMade + 1 >= attempts) {
        // The last attempt: into the dead-letter queue (same id: added once even if this runs twice).
        await dead.add('dead', { study, error, attempts, at: new Date().toISOString() }, { jobId: job.id!, removeOnComplete: false });
        opts.log(`job ${job.id}: study ${study} failed its last attempt (${attempts}): ${error}; added to ${deadQueueName(queueName)}`);
      }
      throw err;
    }
  };
  const worker = new Worker<StudyJob, StudyOutcome>(queueName, processor, {
    connection,
    concurrency: opts.concurrency,
    lockDuration: opts.lockMs,
    stalledInterval: opts.stalledMs,
    maxStalledCount: opts.maxStalled,
    autorun: false,
  });
  worker.on('completed', (job, outcome) => {
    summary.done++;
    summary.outcomes[outcome.status] = (summary.outcomes[outcome.status] ?? 0) + 1;
    const secs = (performance.now() - t0) / 1000;
    opts.log(`job ${job.id}: done (${outcome.status}); ${summary.done} done by this worker, ${(summary.done / secs).toFixed(3)} studies/s`);
  });
  worker.on('failed', (job, err) => {
    summary.failedAttempts++;
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) summary.dead++;
    opts.log(`job ${job?.id ?? '?'}: attempt failed: ${err.message}`);
  });
  worker.on('error', (err) => opts.log(`queue error: ${err.message}`));
  const running = worker.run();
  try {
    await new Promise<void>((resolve) => {
      if (opts.signal?.aborted) return resolve();
      opts.signal?.addEventListener('abort', () => resolve(), { once: true });
      if (!opts.untilEmpty) return;
      const poll = setInterval(() => {
        void queue
          .getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
          .then((c) => {
            if (Object.values(c).every((n) => n === 0)) {
              clearInterval(poll);
              resolve();
            }
          })
          .catch(() => {});
      }, 500);
      opts.signal?.addEventListener('abort', () => clearInterval(poll), { once: true });
    });
  } finally {
    await worker.close();
    await running.catch(() => {});
    await queue.close();
    await dead.close();
  }
  summary.seconds = (performance.now() - t0) / 1000;
  return summary;
}

export interface QueueStatus {
  counts: Record<string, number>;
  dead: DeadLetter[];
  /** Over the completed jobs: first start to last finish, and studies per second in that span. */
  throughput: { studies: number; seconds: number; perSecond: number } | null;
}

export async function queueStatus(redis: RedisTarget, queueName: string): Promise<QueueStatus> {
  const connection = connectionOf(redis);
  const queue = new Queue<StudyJob>(queueName, { connection });
  const dead = new Queue<DeadLetter>(deadQueueName(queueName), { connection });
  try {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
    const deadJobs = await dead.getJobs(['waiting', 'delayed', 'paused', 'completed', 'failed'], 0, 999);
    const done = await queue.getJobs(['completed'], 0, 9999);
    let throughput: QueueStatus['throughput'] = null;
    const spans = done.filter((j) => j.processedOn && j.finishedOn);
    if (spans.length) {
      const start = Math.min(...spans.map((j) => j.processedOn!));
      const end = Math.max(...spans.map((j) => j.finishedOn!));
      const seconds = Math.max(0.001, (end - start) / 1000);
      throughput = { studies: spans.length, seconds, perSecond: spans.length / seconds };
    }
    return { counts, dead: deadJobs.map((j) => j.data), throughput };
  } finally {
    await queue.close();
    await dead.close();
  }
}
