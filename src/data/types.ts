/**
 * The dataset model shared by every stage: images (views) grouped into studies, studies into patients, each
 * with its body region, label and split, exactly as the MURA-v1.1 layout encodes them.
 */

/** MURA's seven study types, in the order of the MURA paper's tables. */
export const REGIONS = [
  'XR_ELBOW',
  'XR_FINGER',
  'XR_FOREARM',
  'XR_HAND',
  'XR_HUMERUS',
  'XR_SHOULDER',
  'XR_WRIST',
] as const;
export type Region = (typeof REGIONS)[number];

export function isRegion(s: string): s is Region {
  return (REGIONS as readonly string[]).includes(s);
}

/** MURA's own splits (the folder names under MURA-v1.1/). */
export const MURA_SPLITS = ['train', 'valid'] as const;
export type MuraSplit = (typeof MURA_SPLITS)[number];

/** 1 = abnormal (MURA's `_positive`), 0 = normal (`_negative`). */
export type Label = 0 | 1;

/** One radiograph (a view). */
export interface ImageRecord {
  /** Path as written in MURA's CSVs, relative to the dataset root: `MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png`. */
  path: string;
  /** Absolute path on disk. */
  absPath: string;
  /** Study key: the study folder as in `*_labeled_studies.csv`, with trailing slash. */
  study: string;
  /** Patient folder name, e.g. `patient00001` (MURA patient ids are global, not per region). */
  patient: string;
  region: Region;
  label: Label;
  split: MuraSplit;
}

/** One study: all views of one body region of one patient at one visit; the unit MURA labels. */
export interface Study {
  key: string;
  patient: string;
  region: Region;
  label: Label;
  split: MuraSplit;
  images: ImageRecord[];
}
