/**
 * `predict --dicom-out DIR` (Node host): one results SR per DICOM study among the predicted files, written
 * atomically as DIR/<SR SOP Instance UID>.dcm. The SOP Instance UID is derived from (Study Instance UID, model
 * SHA-256), so predicting the same study with the same model again replaces the file (and a PACS the object)
 * instead of adding a second report. Files that could not be predicted but belong to the study (refused by the
 * header gate, damaged) are listed in the SR as views left out.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDicomHeader, type DicomHeader } from '../data/dicom/index.js';
import type { ImagePrediction } from '../inference/core/predict.js';
import { writeFileAtomic } from '../util/atomic.js';
import { buildStudySr, type SrView } from './sr.js';

export interface StudyReportsResult {
  written: Array<{ study: string; file: string; views: number; leftOut: number }>;
  /** Studies that got no SR, and why (no DICOM input, no usable identifiers). */
  notes: string[];
}

function headerOrNull(file: string): DicomHeader | null {
  try {
    return readDicomHeader(new Uint8Array(readFileSync(file)), { source: file });
  } catch {
    return null;
  }
}

export async function writeStudyReports(
  dir: string,
  images: readonly ImagePrediction[],
  bad: ReadonlyArray<{ file: string; problem: string }>,
  model: { name: string; sha256: string; operatingPoint: string },
  softwareVersion: string,
): Promise<StudyReportsResult> {
  const notes: string[] = [];
  const byStudy = new Map<string, ImagePrediction[]>();
  const studiesWithoutDicom = new Set<string>();
  for (const im of images) {
    const uid = im.dicom?.studyInstanceUid;
    if (uid) byStudy.set(uid, [...(byStudy.get(uid) ?? []), im]);
    else studiesWithoutDicom.add(im.study);
  }
  for (const s of studiesWithoutDicom) {
    if (!images.some((im) => im.study === s && im.dicom?.studyInstanceUid)) notes.push(`study ${s}: no DICOM input with a Study Instance UID, so no SR`);
  }
  const leftOutByStudy = new Map<string, Array<{ name: string; reason: string }>>();
  for (const b of bad) {
    const h = headerOrNull(b.file);
    if (h?.studyInstanceUid) leftOutByStudy.set(h.studyInstanceUid, [...(leftOutByStudy.get(h.studyInstanceUid) ?? []), { name: b.file, reason: b.problem }]);
  }
  const written: StudyReportsResult['written'] = [];
  if (byStudy.size) mkdirSync(dir, { recursive: true });
  for (const [study, ims] of byStudy) {
    const views: SrView[] = [];
    const leftOut = [...(leftOutByStudy.get(study) ?? [])];
    for (const im of ims) {
      const d = im.dicom!;
      if (!d.sopInstanceUid || !d.sopClassUid || !d.seriesInstanceUid) {
        leftOut.push({ name: im.image, reason: 'no SOP Class, SOP Instance or Series Instance UID in its header: it cannot be referenced' });
        continue;
      }
      views.push({
        sopClassUid: d.sopClassUid,
        sopInstanceUid: d.sopInstanceUid,
        seriesInstanceUid: d.seriesInstanceUid,
        name: im.image,
        ...(d.viewPosition ? { viewPosition: d.viewPosition } : {}),
        ...(d.imageLaterality || d.laterality ? { laterality: (d.imageLaterality ?? d.laterality)! } : {}),
        probability: im.probability,
        decision: im.decision,
        threshold: im.threshold,
        ...(im.ood !== undefined ? { ood: im.ood } : {}),
        ...(im.oodScore !== undefined ? { oodScore: im.oodScore } : {}),
      });
    }
    const source = headerOrNull(ims[0]!.image);
    if (!views.length || !source) {
      notes.push(`study ${study}: ${views.length ? 'its header could not be read again' : 'no view with SOP Class, SOP Instance and Series Instance UIDs'}, so no SR`);
      continue;
    }
    const sr = await buildStudySr({ source, views, leftOut, model, softwareVersion });
    const file = join(dir, `${sr.sopInstanceUid}.dcm`);
    writeFileAtomic(file, sr.bytes);
    written.push({ study, file, views: views.length, leftOut: leftOut.length });
  }
  return { written, notes };
}
