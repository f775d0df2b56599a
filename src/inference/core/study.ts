/**
 * Which study an image belongs to, and study-level results: a study's probability is the mean of its views'
 * probabilities, as in MURA (src/evaluate does the same for evaluation).
 *
 * The study of an image, first rule that applies:
 *   1. 'mura'   its path runs through a MURA study folder (`.../XR_<REGION>/patient<N>/study<K>_{positive,negative}/`):
 *               the path up to that folder; the folder name also gives the label and the region;
 *   2. 'dicom'  it is a DICOM file with a Study Instance UID (0020,000D): that UID;
 *   3. 'folder' otherwise the folder holding the file (the path as given, up to its last '/').
 *
 * Browser-safe (plain string handling of '/'-separated paths; '\' is read as '/').
 */
import { isRegion, type Label, type Region } from '../../data/types.js';

export type StudySource = 'mura' | 'dicom' | 'folder';

export interface StudyKey {
  /** The study's key: a MURA study folder path ending in '/', a DICOM Study Instance UID, or a folder path. */
  key: string;
  source: StudySource;
  /** MURA only: label from the study folder name (1 = positive = abnormal). */
  label?: Label;
  /** MURA only. */
  region?: Region;
}

const STUDY_FOLDER = /^study\d+_(positive|negative)$/;

/** The MURA study folder an image path runs through, if any (see the module comment). */
export function muraStudyOf(path: string): StudyKey | null {
  const parts = path.replace(/\\/g, '/').split('/');
  // The last matching study folder, with patient<N> and XR_<REGION> right above it and a file below it.
  for (let i = parts.length - 2; i >= 2; i--) {
    const m = STUDY_FOLDER.exec(parts[i]!);
    if (!m) continue;
    if (!/^patient\d+$/.test(parts[i - 1]!) || !isRegion(parts[i - 2]!)) continue;
    return {
      key: parts.slice(0, i + 1).join('/') + '/',
      source: 'mura',
      label: m[1] === 'positive' ? 1 : 0,
      region: parts[i - 2] as Region,
    };
  }
  return null;
}

/** The study of an image (rules in the module comment). */
export function studyKeyOf(path: string, dicomStudyUid?: string | null): StudyKey {
  const mura = muraStudyOf(path);
  if (mura) return mura;
  if (dicomStudyUid) return { key: dicomStudyUid, source: 'dicom' };
  const p = path.replace(/\\/g, '/');
  const slash = p.lastIndexOf('/');
  return { key: slash < 0 ? '.' : slash === 0 ? '/' : p.slice(0, slash), source: 'folder' };
}

/** What study aggregation needs of an image result. */
export interface StudyMember {
  image: string;
  probability: number;
  study: StudyKey;
}

export interface StudyResult {
  study: string;
  source: StudySource;
  /** Mean of the views' probabilities. */
  probability: number;
  decision: 'abnormal' | 'normal';
  threshold: number;
  /** Number of images (views). */
  views: number;
  images: string[];
  label?: Label;
  region?: Region;
}

/**
 * Groups image results into studies (mean of views), in order of first appearance. `threshold`: abnormal when the
 * study's probability > threshold.
 */
export function aggregateStudies(images: readonly StudyMember[], threshold: number): StudyResult[] {
  const byKey = new Map<string, { first: StudyMember; sum: number; images: string[] }>();
  for (const im of images) {
    const k = `${im.study.source}\u0000${im.study.key}`;
    const s = byKey.get(k);
    if (s) {
      s.sum += im.probability;
      s.images.push(im.image);
    } else byKey.set(k, { first: im, sum: im.probability, images: [im.image] });
  }
  return [...byKey.values()].map((s) => {
    const probability = s.sum / s.images.length;
    const st = s.first.study;
    return {
      study: st.key,
      source: st.source,
      probability,
      decision: probability > threshold ? 'abnormal' : 'normal',
      threshold,
      views: s.images.length,
      images: s.images,
      ...(st.label !== undefined ? { label: st.label } : {}),
      ...(st.region !== undefined ? { region: st.region } : {}),
    };
  });
}
