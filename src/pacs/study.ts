/**
 * One study through the worker: index -> gate -> fetch -> predict -> SR (+ heatmap images) -> store. Shared by
 * `pacs watch` (Orthanc's change log, DICOMweb polling) and the queue workers.
 *
 * 1. Index the study (series with Modality, instances with UIDs). neXt-Ray's own results (the series of this model's
 *    results, or any series described as neXt-Ray's) are not inputs.
 * 2. The inputs digest: SHA-256 of the sorted SOP Instance UIDs of the inputs (and whether heatmaps are made). When
 *    the study already holds this model's SR with the same digest, the study is up to date: nothing is fetched or
 *    stored. So storing our own SR (which makes Orthanc announce the study again) does not start a second round,
 *    and a study that gained an image gets its report replaced.
 * 3. Series whose Modality the header gate refuses (CT, MR, ...) are left out without being downloaded; every other
 *    instance is fetched, its header read and gated, and refused or unreadable instances are left out, each logged
 *    with its SOP Instance UID and the reason. Bad input never stops the worker; archive and network errors do
 *    propagate (the caller retries the study and does not move past it).
 * 4. Predict, build the SR (views, left-out instances, the digest) and, when asked, one Secondary Capture heatmap per
 *    view; store them. Result UIDs derive from (study, model), so storing again replaces rather than duplicates.
 */
import { gateHeader, modalityRefusal, readDicomHeader, type DicomHeader } from '../data/dicom/index.js';
import { DicomError, parseDicom } from '../data/dicom/reader.js';
import { digestSha256Hex } from '../inference/core/model.js';
import { PacsNotFoundError } from './http.js';
import type { Predictor } from './predict.js';
import { buildHeatmapSc } from './secondary-capture.js';
import { buildStudySr, CODES, type SrView } from './sr.js';
import type { IndexedSeries, ResultObject, ResultSink, StudyIndex, StudyRef, StudySource } from './store.js';
import { heatmapUids, resultUids } from './uid.js';

export interface ProcessOptions {
  heatmaps?: boolean;
  softwareVersion: string;
  /** One line per event of the study (begin, left out, predicted, storing, stored ...). */
  log: (line: string) => void;
  /**
   * Called after each step of the study, before the next begins ('fetched', 'predicted', 'storing', 'stored'): a
   * fault test pauses here to kill the process at a known point.
   */
  step?: (name: 'fetched' | 'predicted' | 'storing' | 'stored', study: string) => Promise<void>;
}

export type StudyStatus = 'reported' | 'up-to-date' | 'no-views' | 'gone';

export interface StudyOutcome {
  study: string;
  status: StudyStatus;
  /** The SR's SOP Instance UID (reported and up-to-date). */
  sr?: string;
  views: number;
  leftOut: number;
  heatmaps: number;
}

/** Our result series (for this model) and any series neXt-Ray wrote (another model's results). */
export function isResultSeries(s: IndexedSeries, ours: ReadonlySet<string>): boolean {
  return ours.has(s.seriesInstanceUid) || /^neXt-Ray\b/.test(s.description ?? '');
}

function isResultHeader(h: DicomHeader): boolean {
  return h.manufacturer === 'neXt-Ray' && h.manufacturerModelName === 'neXt-Ray';
}

export async function inputsDigest(sopInstanceUids: readonly string[], heatmaps: boolean): Promise<string> {
  const text = `nextray-inputs|heatmaps=${heatmaps ? 1 : 0}|${[...sopInstanceUids].sort().join('\\')}`;
  return `sha256:${await digestSha256Hex(new TextEncoder().encode(text))}`;
}

/** The inputs digest stored in one of our SRs (the TEXT item INPUTS), or null. */
export async function digestOfSr(bytes: Uint8Array): Promise<string | null> {
  try {
    const ds = parseDicom(bytes).dataSet;
    const walk = (items: Array<{ dataSet?: typeof ds }> | undefined): string | null => {
      for (const it of items ?? []) {
        const d = it.dataSet;
        if (!d) continue;
        const concept = d.elements.x0040a043?.items?.[0]?.dataSet;
        if (concept?.string('x00080100') === CODES.inputsDigest.value && concept.string('x00080102') === CODES.inputsDigest.scheme) return d.string('x0040a160') ?? null;
        const inner = walk(d.elements.x0040a730?.items);
        if (inner) return inner;
      }
      return null;
    };
    return walk(ds.elements.x0040a730?.items);
  } catch {
    return null;
  }
}

export async function processStudy(ref: StudyRef, source: StudySource, sink: ResultSink, predictor: Predictor, opts: ProcessOptions): Promise<StudyOutcome> {
  const named = ref.studyInstanceUid ?? ref.id ?? '?';
  let index: StudyIndex;
  try {
    index = await source.index(ref);
  } catch (err) {
    if (err instanceof PacsNotFoundError) {
      opts.log(`study ${named}: not in the archive any more (deleted?); skipped`);
      return { study: named, status: 'gone', views: 0, leftOut: 0, heatmaps: 0 };
    }
    throw err;
  }
  const study = index.studyInstanceUid;
  const log = (line: string): void => opts.log(`study ${study}: ${line}`);
  const uids = await resultUids(study, predictor.sha256);
  const heatmaps = !!opts.heatmaps && predictor.hasHeatmaps;
  const scSeries = (await heatmapUids(study, predictor.sha256, '')).seriesInstanceUid;
  const ours = new Set([uids.seriesInstanceUid, scSeries]);
  const inputs = index.series.filter((s) => !isResultSeries(s, ours));
  const digest = await inputsDigest(inputs.flatMap((s) => s.instances.map((i) => i.sopInstanceUid)), heatmaps);
  const existing = await sink.find(index, uids.seriesInstanceUid, uids.sopInstanceUid);
  if (existing && (await digestOfSr(existing)) === digest) {
    log(`up to date (SR ${uids.sopInstanceUid} covers its ${inputs.reduce((n, s) => n + s.instances.length, 0)} instance(s)); nothing to do`);
    return { study, status: 'up-to-date', sr: uids.sopInstanceUid, views: 0, leftOut: 0, heatmaps: 0 };
  }
  const count = inputs.reduce((n, s) => n + s.instances.length, 0);
  log(`begin: ${count} instance(s) in ${inputs.length} series${existing ? ' (its earlier SR is out of date)' : ''}`);

  const leftOut: Array<{ name: string; reason: string }> = [];
  const otherEvidence: Array<{ sopClassUid: string; sopInstanceUid: string; seriesInstanceUid: string }> = [];
  const accepted: Array<{ name: string; bytes: Uint8Array; header: DicomHeader }> = [];
  for (const s of inputs) {
    const refused = modalityRefusal(s.modality);
    if (refused) {
      leftOut.push({ name: `series ${s.seriesInstanceUid} (${s.instances.length} instance(s))`, reason: refused });
      log(`left out series ${s.seriesInstanceUid} (${s.instances.length} instance(s), not downloaded): ${refused}`);
      for (const i of s.instances) if (i.sopClassUid) otherEvidence.push({ sopClassUid: i.sopClassUid, sopInstanceUid: i.sopInstanceUid, seriesInstanceUid: s.seriesInstanceUid });
      continue;
    }
    for (const i of s.instances) {
      const bytes = await source.fetch(index, s, i);
      let header: DicomHeader;
      try {
        header = readDicomHeader(bytes, { source: i.sopInstanceUid });
      } catch (err) {
        const problem = err instanceof DicomError ? err.problem : (err as Error).message;
        leftOut.push({ name: i.sopInstanceUid, reason: problem });
        log(`left out SOP Instance ${i.sopInstanceUid}: ${problem}`);
        continue;
      }
      if (isResultHeader(header)) continue; // a neXt-Ray result filed in another series
      const verdict = gateHeader(header);
      for (const w of verdict.warnings) log(`warning: SOP Instance ${i.sopInstanceUid}: ${w}`);
      if (!verdict.accepted) {
        leftOut.push({ name: i.sopInstanceUid, reason: verdict.reason });
        if (header.sopClassUid) otherEvidence.push({ sopClassUid: header.sopClassUid, sopInstanceUid: i.sopInstanceUid, seriesInstanceUid: s.seriesInstanceUid });
        log(`left out SOP Instance ${i.sopInstanceUid}: ${verdict.reason}`);
        continue;
      }
      accepted.push({ name: i.sopInstanceUid, bytes, header });
    }
  }
  await opts.step?.('fetched', study);
  const { views, unreadable } = accepted.length ? await predictor.predict(accepted, { heatmaps }) : { views: [], unreadable: [] };
  for (const u of unreadable) {
    leftOut.push({ name: u.name, reason: u.problem });
    const h = accepted.find((a) => a.name === u.name)?.header;
    if (h?.sopClassUid && h.seriesInstanceUid) otherEvidence.push({ sopClassUid: h.sopClassUid, sopInstanceUid: u.name, seriesInstanceUid: h.seriesInstanceUid });
    log(`left out SOP Instance ${u.name}: ${u.problem}`);
  }
  const srViews: SrView[] = [];
  for (const v of views) {
    const h = v.header;
    if (!h.sopClassUid || !h.sopInstanceUid || !h.seriesInstanceUid) {
      leftOut.push({ name: v.name, reason: 'no SOP Class, SOP Instance or Series Instance UID in its header: it cannot be referenced' });
      continue;
    }
    srViews.push({
      sopClassUid: h.sopClassUid,
      sopInstanceUid: h.sopInstanceUid,
      seriesInstanceUid: h.seriesInstanceUid,
      name: h.sopInstanceUid,
      ...(h.viewPosition ? { viewPosition: h.viewPosition } : {}),
      ...(h.imageLaterality || h.laterality ? { laterality: (h.imageLaterality ?? h.laterality)! } : {}),
      probability: v.probability,
      decision: v.decision,
      threshold: v.threshold,
      ...(v.ood !== undefined ? { ood: v.ood } : {}),
      ...(v.oodScore !== undefined ? { oodScore: v.oodScore } : {}),
    });
  }
  if (!srViews.length) {
    log(`no view to predict (${leftOut.length} left out); no SR`);
    return { study, status: 'no-views', views: 0, leftOut: leftOut.length, heatmaps: 0 };
  }
  const counted = srViews.filter((v) => !v.ood);
  const mean = counted.length ? counted.reduce((s, v) => s + v.probability, 0) / counted.length : null;
  log(
    `predicted ${srViews.length} view(s): ${srViews.map((v) => `${v.sopInstanceUid} p=${v.probability.toFixed(3)} ${v.ood ? 'out-of-distribution' : v.decision}`).join('; ')}; ${mean === null ? 'no study decision (every view out of distribution)' : `study p=${mean.toFixed(3)} over ${counted.length} view(s)`}`,
  );
  await opts.step?.('predicted', study);
  const source0 = accepted.find((a) => a.header.sopInstanceUid === srViews[0]!.sopInstanceUid)!.header;
  const sr = await buildStudySr({
    source: source0,
    views: srViews,
    leftOut,
    otherEvidence,
    inputsDigest: digest,
    model: { name: predictor.name, sha256: predictor.sha256, operatingPoint: predictor.operatingPoint },
    softwareVersion: opts.softwareVersion,
  });
  const objects: ResultObject[] = [{ seriesInstanceUid: sr.seriesInstanceUid, sopInstanceUid: sr.sopInstanceUid, bytes: sr.bytes }];
  if (heatmaps) {
    for (const v of views) {
      if (!v.heatmap || !v.image || !v.header.sopInstanceUid) continue;
      const sc = await buildHeatmapSc({
        source: v.header,
        ...v.image,
        cam: v.heatmap.data,
        camH: v.heatmap.height,
        camW: v.heatmap.width,
        preprocessing: predictor.heatmapPreprocessing,
        model: { name: predictor.name, sha256: predictor.sha256 },
        softwareVersion: opts.softwareVersion,
        caption: v.ood ? 'out of distribution' : `P(abnormal) ${v.probability.toFixed(2)}`,
      });
      objects.push(sc);
    }
  }
  // Heatmaps first, the SR last: the SR (and its digest) is what says the study is done.
  const ordered = [...objects.slice(1), objects[0]!];
  log(`storing SR ${sr.sopInstanceUid}${objects.length > 1 ? ` and ${objects.length - 1} heatmap image(s) (${objects.slice(1).map((o) => o.sopInstanceUid).join(', ')})` : ''} in ${sink.name}`);
  await opts.step?.('storing', study);
  await sink.store(index, ordered);
  log(`stored SR ${sr.sopInstanceUid}`);
  await opts.step?.('stored', study);
  return { study, status: 'reported', sr: sr.sopInstanceUid, views: srViews.length, leftOut: leftOut.length, heatmaps: objects.length - 1 };
}
