/**
 * MURA path grammar: `MURA-v1.1/{train,valid}/XR_<REGION>/patient<ID>/study<K>_{positive,negative}/image<M>.png`.
 * Every stage that sees a path (CSV rows, predictions files, the app) parses it here.
 */
import { isRegion, type Label, type MuraSplit, type Region } from './types.js';

export interface MuraPathParts {
  /** Root folder name as written, normally `MURA-v1.1`. */
  root: string;
  split: MuraSplit;
  region: Region;
  patient: string;
  /** Study folder name, e.g. `study1_positive`. */
  studyFolder: string;
  /** Study key with trailing slash, as in `*_labeled_studies.csv`. */
  study: string;
  label: Label;
  /** Image file name, when the path names an image (absent for a study path). */
  image?: string;
}

const MURA_PATH = /^([^/]+)\/(train|valid)\/(XR_[A-Z]+)\/(patient\d+)\/(study\d+_(positive|negative))\/?(?:([^/]+))?$/;

/**
 * Parses a MURA-layout path (image or study, forward slashes, relative to the dataset root). Returns null when
 * the path does not follow the layout; callers turn that into an error naming the file.
 */
export function parseMuraPath(path: string): MuraPathParts | null {
  const m = MURA_PATH.exec(path.replace(/\\/g, '/').replace(/^\.\//, ''));
  if (!m) return null;
  const [, root, split, region, patient, studyFolder, polarity, image] = m;
  if (!isRegion(region!)) return null;
  const parts: MuraPathParts = {
    root: root!,
    split: split as MuraSplit,
    region: region,
    patient: patient!,
    studyFolder: studyFolder!,
    study: `${root}/${split}/${region}/${patient}/${studyFolder}/`,
    label: polarity === 'positive' ? 1 : 0,
  };
  if (image) parts.image = image;
  return parts;
}
