/**
 * `nextray pacs`: the worker that serves a PACS. `watch` follows Orthanc's change log (or polls a DICOMweb server)
 * and stores one SR per study (and heatmap images) back into it; `enqueue`, `work` and `status` run the same per-study
 * job over a BullMQ queue on Redis for archive-scale runs on several machines. A thin face over src/pacs.
 *
 * Exit codes: 0 every study handled; 1 a study failed after its retries (named; the rest done); 2 usage error,
 * unusable model, credentials or state file.
 */
import { CommanderError, Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { CliError, parseFloatOption, parseIntOption, printJson } from './common.js';
import { pacsAuth, redisTarget } from '../pacs/credentials.js';
import { DicomWeb } from '../pacs/dicomweb.js';
import { FolderSink, FolderSource } from '../pacs/folder.js';
import { baseUrl } from '../pacs/http.js';
import { Orthanc } from '../pacs/orthanc.js';
import { openPredictor } from '../pacs/predict.js';
import type { ResultSink, StudySource } from '../pacs/store.js';
import type { ProcessOptions } from '../pacs/study.js';
import { packageVersion } from '../util/package.js';

interface ArchiveFlags {
  orthanc?: string;
  dicomweb?: string;
  folder?: string[];
  out?: string;
  credentials?: string;
}

interface ModelFlags {
  model?: string[];
  threshold?: number;
  threads?: number;
  heatmaps?: boolean;
}

const log = (line: string): void => {
  process.stderr.write(`nextray pacs: ${line}\n`);
};

function archive(flags: ArchiveFlags, needSink: boolean): { source: StudySource; sink: ResultSink | null; orthanc: Orthanc | null } {
  const given = [flags.orthanc && '--orthanc', flags.dicomweb && '--dicomweb', flags.folder?.length && '--folder'].filter(Boolean);
  if (given.length !== 1) throw new CliError(`give one archive: --orthanc URL, --dicomweb URL or --folder DIR${given.length ? ` (got ${given.join(' and ')})` : ''}`);
  const http = { auth: pacsAuth(flags.credentials) };
  if (flags.orthanc) {
    const o = new Orthanc(baseUrl(flags.orthanc, '--orthanc'), http);
    return { source: o, sink: flags.out ? new FolderSink(flags.out) : o, orthanc: o };
  }
  if (flags.dicomweb) {
    const d = new DicomWeb(baseUrl(flags.dicomweb, '--dicomweb'), http);
    return { source: d, sink: flags.out ? new FolderSink(flags.out) : d, orthanc: null };
  }
  if (needSink && !flags.out) throw new CliError('--folder: give --out DIR for the results (a folder has no PACS to store them in)');
  for (const dir of flags.folder!) {
    if (!existsSync(dir)) throw new CliError(`--folder ${dir}: no such folder`, 2, 'give a folder of DICOM files');
  }
  return { source: new FolderSource(flags.folder!, { onProblem: (path, problem) => log(`${path}: ${problem}`) }), sink: flags.out ? new FolderSink(flags.out) : null, orthanc: null };
}

/**
 * Step hook for fault tests: NEXTRAY_PACS_FAULT_HOLD=STEP:N makes the process stop moving at the N-th time it
 * reaches STEP ('fetched', 'predicted', 'storing' = just before the write, 'stored' = written, not yet acknowledged),
 * so a test can kill -9 it at that exact point. Unset: no effect.
 */
function faultHold(): ProcessOptions['step'] {
  const spec = process.env.NEXTRAY_PACS_FAULT_HOLD;
  if (!spec) return undefined;
  const [step, nth] = spec.split(':');
  const n = Number(nth ?? 1);
  let seen = 0;
  return async (name, study) => {
    if (name !== step || ++seen !== n) return;
    log(`fault hold at ${name} of study ${study} (NEXTRAY_PACS_FAULT_HOLD)`);
    await new Promise(() => setInterval(() => {}, 1 << 30));
  };
}

function stopSignal(): AbortSignal {
  const ac = new AbortController();
  const stop = (sig: string): void => {
    if (ac.signal.aborted) process.exit(130);
    log(`${sig}: finishing the study in hand, then stopping (again to stop at once)`);
    ac.abort();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return ac.signal;
}

async function predictor(flags: ModelFlags) {
  if (!flags.model?.length) throw new CliError('give a model: --model M (an .onnx file from `nextray export`, a checkpoint folder or a run directory)');
  const p = await openPredictor(flags.model, { ...(flags.threshold !== undefined ? { threshold: flags.threshold } : {}), ...(flags.threads !== undefined ? { threads: flags.threads } : {}), onLog: log });
  if (flags.heatmaps && !p.hasHeatmaps) {
    await p.release();
    throw new CliError(`--heatmaps: the model has no 'cam' output; re-export it with this version (nextray export --checkpoint RUN) or give the checkpoint folder`);
  }
  return p;
}

const exitOverride = (err: CommanderError): never => {
  if (err.exitCode !== 0) throw new CommanderError(2, err.code, err.message);
  throw err;
};

function archiveOptions(cmd: Command, folder: boolean): Command {
  cmd
    .option('--orthanc <url>', "an Orthanc server's REST API, e.g. http://127.0.0.1:8042")
    .option('--dicomweb <url>', 'a DICOMweb service root (QIDO-RS, WADO-RS, STOW-RS), e.g. http://127.0.0.1:8042/dicom-web')
    .option('--credentials <file>', 'JSON {"user","password"} or {"token"}, mode 0600 (default: NEXTRAY_PACS_USER/NEXTRAY_PACS_PASSWORD or NEXTRAY_PACS_TOKEN)');
  if (folder) cmd.option('--folder <dir...>', 'a folder of DICOM files instead of a PACS (grouped into studies by their headers)');
  return cmd;
}

function modelOptions(cmd: Command): Command {
  return cmd
    .option('--model <m>', 'an .onnx file from `nextray export`, a checkpoint folder or a run directory; repeat for an ensemble', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--threshold <t>', 'decision threshold (default: the one stored with the model)', (v: string) => {
      const n = Number(v);
      if (!(n >= 0 && n <= 1)) throw new CommanderError(2, 'nextray.threshold', `--threshold must be a number in [0, 1], got "${v}"`);
      return n;
    })
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntOption('--threads', 1, 1024))
    .option('--heatmaps', 'also store each view\'s class activation map as a Secondary Capture image (same study, its own series)')
    .option('--out <dir>', 'write the results as DIR/<SOP Instance UID>.dcm instead of storing them in the archive');
}

export function registerPacs(program: Command): void {
  const pacs = program
    .command('pacs')
    .description('Serve a PACS: predict each study that arrives and store the results (a DICOM SR, heatmap images) back into it; run archives through a queue.')
    .addHelpText(
      'after',
      `
Examples:
  NEXTRAY_PACS_USER=nextray NEXTRAY_PACS_PASSWORD=... nextray pacs watch --orthanc http://127.0.0.1:8042 --model model.onnx
  nextray pacs enqueue --redis redis://10.0.0.5:6379 --queue archive --dicomweb http://pacs/dicom-web
  nextray pacs work --redis redis://10.0.0.5:6379 --queue archive --dicomweb http://pacs/dicom-web --model model.onnx
  nextray pacs status --redis redis://10.0.0.5:6379 --queue archive

See docs/pacs.md.`,
    )
    .exitOverride(exitOverride);

  const watch = pacs
    .command('watch')
    .description('Follow an archive and store one SR per complete study: Orthanc through its change log (StableStudy), a DICOMweb server by polling QIDO-RS.');
  archiveOptions(watch, false);
  modelOptions(watch)
    .option('--state <file>', 'where the last change done is kept (written atomically after each stored result)', 'nextray-pacs-state.json')
    .option('--once', 'process what is pending now and exit (for cron and tests)')
    .option('--poll-seconds <n>', 'pause between looks at the archive when there is nothing to do', parseIntOption('--poll-seconds', 1, 3600), 5)
    .addOption(new Option('--start <where>', 'a new state file (Orthanc): start at the first change Orthanc has, or after its newest').choices(['beginning', 'now']).default('beginning'))
    .option('--max-attempts <n>', 'tries per study before it is given up (listed in the state file); an unreachable archive is waited for', parseIntOption('--max-attempts', 1, 1000), 5)
    .addHelpText(
      'after',
      `
Examples:
  export NEXTRAY_PACS_USER=nextray NEXTRAY_PACS_PASSWORD=secret
  nextray pacs watch --orthanc http://127.0.0.1:8042 --model model.onnx --heatmaps
  nextray pacs watch --orthanc http://127.0.0.1:8042 --model model.onnx --once --state /var/lib/nextray/state.json
  nextray pacs watch --dicomweb http://127.0.0.1:8042/dicom-web --model model.onnx --once

One line per study on stderr (Study, Series and SOP Instance UIDs; instances left out and why). Credentials come
from the environment or --credentials FILE, never from the command line.
Exit codes: 0 every study handled; 1 a study failed after its retries (the rest done); 2 usage error, unusable
model, credentials or state file.`,
    )
    .exitOverride(exitOverride)
    .action(async (flags: ArchiveFlags & ModelFlags & { state: string; once?: boolean; pollSeconds: number; start: 'beginning' | 'now'; maxAttempts: number }) => {
      const { source, sink, orthanc } = archive(flags, true);
      const p = await predictor(flags);
      const { watchOrthanc, watchDicomWeb } = await import('../pacs/watch.js');
      const opts = {
        stateFile: flags.state,
        once: !!flags.once,
        pollSeconds: flags.pollSeconds,
        startAt: flags.start,
        maxAttempts: flags.maxAttempts,
        heatmaps: !!flags.heatmaps,
        softwareVersion: packageVersion(),
        log,
        signal: stopSignal(),
        ...(process.env.NEXTRAY_PACS_BACKOFF_MS ? { backoffMs: () => Number(process.env.NEXTRAY_PACS_BACKOFF_MS) } : {}),
      };
      const step = faultHold();
      log(`model ${p.name} sha256 ${p.sha256}; ${source.name}${flags.out ? `; results to ${flags.out}` : ''}`);
      try {
        const s = orthanc ? await watchOrthanc(orthanc, sink!, p, { ...opts, ...(step ? { step } : {}) }) : await watchDicomWeb(source, sink!, p, { ...opts, ...(step ? { step } : {}) });
        log(`${s.studies} stud${s.studies === 1 ? 'y' : 'ies'}: ${s.reported} reported, ${s.upToDate} up to date, ${s.noViews} without a view to predict, ${s.gone} gone, ${s.failed} failed; ${s.leftOut} instance(s)/series left out (named above)`);
        if (s.failed) process.exitCode = 1;
      } finally {
        await p.release();
      }
    });

  const enqueue = pacs.command('enqueue').description("Put every study of an archive (Orthanc, DICOMweb QIDO-RS, or a folder) on a BullMQ queue, one job per study.");
  archiveOptions(enqueue, true)
    .option('--redis <url>', 'the queue\'s Redis, redis://HOST:PORT[/DB] (no password here: NEXTRAY_REDIS_PASSWORD); default NEXTRAY_REDIS_URL')
    .option('--queue <name>', 'queue name', 'nextray')
    .option('--attempts <n>', 'tries per study before it goes to the dead-letter queue', parseIntOption('--attempts', 1, 100), 5)
    .option('--backoff-seconds <s>', 'pause before the first retry; doubles each time', parseFloatOption('--backoff-seconds', 0, 86_400), 5)
    .addHelpText(
      'after',
      `
Examples:
  nextray pacs enqueue --redis redis://10.0.0.5:6379 --queue archive --orthanc http://10.0.0.6:8042
  nextray pacs enqueue --redis redis://127.0.0.1:6379 --folder /data/export --queue export

Exit codes: 0 enqueued; 2 usage error or unreachable Redis/archive.`,
    )
    .exitOverride(exitOverride)
    .action(async (flags: ArchiveFlags & { redis?: string; queue: string; attempts: number; backoffSeconds: number }) => {
      const { source } = archive(flags, false);
      const { enqueueStudies } = await import('../pacs/queue.js');
      const r = await enqueueStudies(source, redisTarget(flags.redis), flags.queue, { attempts: flags.attempts, backoffMs: flags.backoffSeconds * 1000, log });
      log(`${r.added} stud${r.added === 1 ? 'y' : 'ies'} enqueued on ${flags.queue}, ${r.already} already there`);
    });

  const workCmd = pacs.command('work').description('Consume a queue filled by `pacs enqueue`: predict each study and store its results; run one per machine (or several).');
  archiveOptions(workCmd, true);
  modelOptions(workCmd)
    .option('--redis <url>', 'the queue\'s Redis (see enqueue)')
    .option('--queue <name>', 'queue name', 'nextray')
    .option('--concurrency <n>', 'studies at once in this process', parseIntOption('--concurrency', 1, 64), 1)
    .option('--lock-seconds <s>', 'job lock; a killed worker\'s study goes back to the queue after it (must exceed the longest study)', parseFloatOption('--lock-seconds', 1, 86_400), 60)
    .option('--stalled-seconds <s>', 'how often this worker looks for stalled jobs', parseFloatOption('--stalled-seconds', 1, 86_400), 30)
    .option('--max-stalled <n>', 'times a job may stall (its worker died) before it counts as failed', parseIntOption('--max-stalled', 0, 100), 3)
    .option('--until-empty', 'exit when the queue has nothing left (waiting, delayed or active)')
    .addHelpText(
      'after',
      `
Examples:
  nextray pacs work --redis redis://10.0.0.5:6379 --queue archive --orthanc http://10.0.0.6:8042 --model model.onnx
  nextray pacs work --redis redis://127.0.0.1:6379 --queue export --folder /data/export --out results/ --model model.onnx --until-empty

Exit codes: 0 stopped (SIGINT/SIGTERM, or --until-empty and the queue is empty); 1 some studies went to the
dead-letter queue; 2 usage error, unusable model or credentials.`,
    )
    .exitOverride(exitOverride)
    .action(async (flags: ArchiveFlags & ModelFlags & { redis?: string; queue: string; concurrency: number; lockSeconds: number; stalledSeconds: number; maxStalled: number; untilEmpty?: boolean }) => {
      const { source, sink } = archive(flags, true);
      const target = redisTarget(flags.redis);
      const p = await predictor(flags);
      const { work } = await import('../pacs/queue.js');
      const step = faultHold();
      log(`worker ${process.pid}: model ${p.name} sha256 ${p.sha256}; queue ${flags.queue} on ${target.shown}; ${source.name}`);
      try {
        const s = await work(source, sink!, p, target, flags.queue, {
          concurrency: flags.concurrency,
          lockMs: flags.lockSeconds * 1000,
          stalledMs: flags.stalledSeconds * 1000,
          maxStalled: flags.maxStalled,
          untilEmpty: !!flags.untilEmpty,
          heatmaps: !!flags.heatmaps,
          softwareVersion: packageVersion(),
          log,
          signal: stopSignal(),
          ...(step ? { step } : {}),
        });
        log(`worker ${process.pid}: ${s.done} stud${s.done === 1 ? 'y' : 'ies'} done in ${s.seconds.toFixed(1)} s (${(s.done / Math.max(s.seconds, 1e-9)).toFixed(3)} studies/s), ${s.failedAttempts} failed attempt(s), ${s.dead} to the dead-letter queue`);
        if (s.dead) process.exitCode = 1;
      } finally {
        await p.release();
      }
    });

  pacs
    .command('status')
    .description('Counts of a queue (waiting, active, done, failed), its throughput and its dead-letter list.')
    .option('--redis <url>', 'the queue\'s Redis (see enqueue)')
    .option('--queue <name>', 'queue name', 'nextray')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  nextray pacs status --redis redis://127.0.0.1:6379 --queue archive
  nextray pacs status --redis redis://127.0.0.1:6379 --queue archive --json

Exit codes: 0 shown; 2 usage error or unreachable Redis.`,
    )
    .exitOverride(exitOverride)
    .action(async (flags: { redis?: string; queue: string; json?: boolean }) => {
      const { queueStatus } = await import('../pacs/queue.js');
      const s = await queueStatus(redisTarget(flags.redis), flags.queue);
      if (flags.json) return printJson(s);
      const c = s.counts;
      process.stdout.write(
        `queue ${flags.queue}: ${c.waiting ?? 0} waiting, ${c.delayed ?? 0} delayed (retry backoff), ${c.active ?? 0} active, ${c.completed ?? 0} done, ${c.failed ?? 0} failed\n` +
          (s.throughput ? `throughput: ${s.throughput.studies} studies in ${s.throughput.seconds.toFixed(1)} s = ${s.throughput.perSecond.toFixed(3)} studies/s (first start to last finish)\n` : '') +
          `dead letters: ${s.dead.length}\n` +
          s.dead.map((d) => `  study ${d.study}: ${d.error} (${d.attempts} attempts, ${d.at})\n`).join(''),
      );
    });
}
