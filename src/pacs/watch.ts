/**
 * `pacs watch`: follow an archive and report each study once it is complete. Node.
 *
 * Orthanc: its change log. Each `StableStudy` change (Orthanc's signal that a study has received no instance for
 * StableAge seconds) is processed (./study.ts), and only after the result is stored is the change's sequence number
 * written to the state file (atomically: a temporary file renamed over it). After kill -9 the worker starts again at
 * the first change not yet done: the study in flight is done again, which stores the same SR UID (the archive
 * replaces it, no second report), and no study is passed over.
 *
 * DICOMweb: there is no change log; the worker polls QIDO-RS for the studies and lets each study's inputs digest
 * (./study.ts) tell which need a report.
 *
 * A study that fails (the archive answers an error, a bug) is tried again with growing pauses; while the archive is
 * unreachable the worker waits for it. A study that keeps failing for another reason is given up after `maxAttempts`,
 * named in the log and in the state file's `failed` list, and the worker moves on.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeJsonAtomic } from '../util/atomic.js';
import { NextrayError } from '../util/errors.js';
import { PacsError } from './http.js';
import type { Orthanc } from './orthanc.js';
import type { Predictor } from './predict.js';
import type { ResultSink, StudyRef, StudySource } from './store.js';
import { processStudy, type ProcessOptions, type StudyOutcome } from './study.js';

export interface WatchState {
  /** The archive and model this state is for (a state file is refused for another pair). */
  archive: string;
  model: string;
  /** Orthanc: the last change done. */
  since: number;
  /** Studies given up on: their UID or Orthanc id, the change, the last error. */
  failed: Array<{ study: string; change?: number; error: string; at: string }>;
}

export class WatchStateError extends NextrayError {
  constructor(message: string, hint?: string) {
    super(message, { code: 'ERR_PACS_STATE', exitStatus: 2, ...(hint ? { hint } : {}) });
    this.name = 'WatchStateError';
  }
}

export interface WatchOptions extends ProcessOptions {
  stateFile: string;
  /** Process what is there now and return (else follow for ever, or until `signal`). */
  once: boolean;
  pollSeconds: number;
  /** Where a new state starts: the first change Orthanc has (0), or its newest ('now'). */
  startAt: 'beginning' | 'now';
  maxAttempts?: number;
  /** Pause before retry k (1-based), in ms (default 1 s doubling to 60 s; tests shorten it). */
  backoffMs?: (attempt: number) => number;
  signal?: AbortSignal;
}

export interface WatchSummary {
  studies: number;
  reported: number;
  upToDate: number;
  noViews: number;
  gone: number;
  failed: number;
  leftOut: number;
}

function emptySummary(): WatchSummary {
  return { studies: 0, reported: 0, upToDate: 0, noViews: 0, gone: 0, failed: 0, leftOut: 0 };
}

function count(s: WatchSummary, o: StudyOutcome): void {
  s.studies++;
  s.leftOut += o.leftOut;
  if (o.status === 'reported') s.reported++;
  else if (o.status === 'up-to-date') s.upToDate++;
  else if (o.status === 'no-views') s.noViews++;
  else s.gone++;
}

function readState(file: string, archive: string, model: string): WatchState | null {
  if (!existsSync(file)) return null;
  let st: WatchState;
  try {
    st = JSON.parse(readFileSync(file, 'utf8')) as WatchState;
  } catch (err) {
    throw new WatchStateError(`--state ${file}: cannot be read (${(err as Error).message})`, 'it is written atomically by the worker; if it was edited by hand, fix it or remove it to start again from --start');
  }
  if (st.archive !== archive || st.model !== model) {
    throw new WatchStateError(`--state ${file}: it belongs to ${st.archive} with model ${st.model.slice(0, 12)}..., not to ${archive} with ${model.slice(0, 12)}...`, 'give each archive and model its own --state file');
  }
  return { ...st, failed: st.failed ?? [] };
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/** Whether the archive itself is failing (unreachable, 5xx, refusing credentials): wait for it rather than give up the study. */
function archiveDown(err: unknown): boolean {
  return err instanceof PacsError && (err.status === 0 || err.status >= 500 || err.status === 401 || err.status === 403);
}

/** One study with retries; null when given up. */
async function withRetries(ref: StudyRef, source: StudySource, sink: ResultSink, predictor: Predictor, opts: WatchOptions): Promise<StudyOutcome | { failed: string }> {
  const max = opts.maxAttempts ?? 5;
  const pause = opts.backoffMs ?? ((k: number) => Math.min(60_000, 1000 * 2 ** (k - 1)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await processStudy(ref, source, sink, predictor, opts);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const down = archiveDown(err);
      if ((!down && attempt >= max) || (opts.once && attempt >= max)) return { failed: msg };
      const wait = pause(attempt);
      opts.log(`study ${ref.studyInstanceUid ?? ref.id}: attempt ${attempt}${down ? '' : `/${max}`} failed: ${msg}; again in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait, opts.signal);
      if (opts.signal?.aborted) throw err;
    }
  }
}

/** Follows Orthanc's change log (see the module comment). */
export async function watchOrthanc(orthanc: Orthanc, sink: ResultSink, predictor: Predictor, opts: WatchOptions): Promise<WatchSummary> {
  const archive = orthanc.name;
  let state = readState(opts.stateFile, archive, predictor.sha256);
  if (!state) {
    state = { archive, model: predictor.sha256, since: opts.startAt === 'now' ? await orthanc.lastChange() : 0, failed: [] };
    writeJsonAtomic(opts.stateFile, state);
    opts.log(`new state ${opts.stateFile}: starting after change ${state.since}`);
  } else opts.log(`resuming after change ${state.since} (${opts.stateFile})`);
  const summary = emptySummary();
  while (!opts.signal?.aborted) {
    let page;
    try {
      page = await orthanc.changes(state.since);
    } catch (err) {
      if (opts.once) throw err;
      opts.log(`${(err as Error).message}; trying again in ${opts.pollSeconds} s`);
      await sleep(opts.pollSeconds * 1000, opts.signal);
      continue;
    }
    let unsaved = false;
    for (const c of page.Changes) {
      if (opts.signal?.aborted) break;
      if (c.ChangeType !== 'StableStudy' || c.ResourceType !== 'Study') {
        // Nothing to do for it; saved with the next study or at the end of the page (one write, not one per instance).
        state.since = c.Seq;
        unsaved = true;
        continue;
      }
      opts.log(`change ${c.Seq}: StableStudy ${c.ID}`);
      const o = await withRetries({ id: c.ID }, orthanc, sink, predictor, opts);
      if ('failed' in o) {
        summary.failed++;
        state.failed.push({ study: c.ID, change: c.Seq, error: o.failed, at: new Date().toISOString() });
        opts.log(`study ${c.ID}: given up: ${o.failed}; moving on (listed under "failed" in ${opts.stateFile})`);
        if (opts.once) {
          // --once leaves the position before the failed study, so the next run tries it again.
          writeJsonAtomic(opts.stateFile, state);
          return summary;
        }
      } else count(summary, o);
      // The result (if any) is stored: only now is the change done.
      state.since = c.Seq;
      writeJsonAtomic(opts.stateFile, state);
      unsaved = false;
    }
    if (unsaved) writeJsonAtomic(opts.stateFile, state);
    if (page.Done) {
      if (opts.once) break;
      await sleep(opts.pollSeconds * 1000, opts.signal);
    }
  }
  return summary;
}

/** Polls a DICOMweb server's studies (QIDO-RS) and reports those whose SR is missing or out of date. */
export async function watchDicomWeb(source: StudySource, sink: ResultSink, predictor: Predictor, opts: WatchOptions): Promise<WatchSummary> {
  const archive = source.name;
  let state = readState(opts.stateFile, archive, predictor.sha256);
  if (!state) {
    state = { archive, model: predictor.sha256, since: 0, failed: [] };
    writeJsonAtomic(opts.stateFile, state);
  }
  const summary = emptySummary();
  while (!opts.signal?.aborted) {
    try {
      for await (const ref of source.studies()) {
        if (opts.signal?.aborted) break;
        const o = await withRetries(ref, source, sink, predictor, opts);
        if ('failed' in o) {
          summary.failed++;
          state.failed.push({ study: ref.studyInstanceUid ?? '?', error: o.failed, at: new Date().toISOString() });
          writeJsonAtomic(opts.stateFile, state);
          opts.log(`study ${ref.studyInstanceUid}: given up: ${o.failed}; moving on`);
        } else count(summary, o);
      }
    } catch (err) {
      if (opts.once) throw err;
      opts.log(`${(err as Error).message}; trying again in ${opts.pollSeconds} s`);
    }
    if (opts.once) break;
    await sleep(opts.pollSeconds * 1000, opts.signal);
  }
  return summary;
}
