/**
 * The dataset plan of the synthetic generator: which patients exist, their split, their studies (region,
 * label, number of views) and the MURA paths of every image. Only names and labels — a few hundred bytes per
 * study — so the plan for any size of dataset fits in memory while the pixels are streamed to disk.
 */
import { Rng, type Seed } from '../../util/rng.js';
import type { Label, MuraSplit, Region } from '../types.js';

export const MURA_ROOT = 'MURA-v1.1';

/**
 * Study counts per region in MURA-v1.1 train (normal, abnormal), from Table 1 of Rajpurkar et al. 2017
 * ("MURA: Large Dataset for Abnormality Detection in Musculoskeletal Radiographs"). They set both the share of
 * each region and its abnormal rate (overall 38.5 %), so the synthetic set is imbalanced the way MURA is.
 */
const MURA_TRAIN_STUDIES: Record<Region, [normal: number, abnormal: number]> = {
  XR_ELBOW: [1094, 660],
  XR_FINGER: [1280, 655],
  XR_FOREARM: [590, 287],
  XR_HAND: [1497, 521],
  XR_HUMERUS: [321, 271],
  XR_SHOULDER: [1364, 1457],
  XR_WRIST: [2134, 1326],
};

const REGION_LIST = Object.keys(MURA_TRAIN_STUDIES) as Region[];
const REGION_WEIGHTS = REGION_LIST.map((r) => MURA_TRAIN_STUDIES[r][0] + MURA_TRAIN_STUDIES[r][1]);

export function abnormalRate(region: Region): number {
  const [n, a] = MURA_TRAIN_STUDIES[region];
  return a / (n + a);
}

/** MURA averages 2.7 views per study; 1–4 views with this distribution gives the same mean. */
const VIEW_COUNT_WEIGHTS = [0.1, 0.3, 0.4, 0.2];
/** About 1.2 studies per patient, as in MURA (14,863 studies of 12,173 patients). */
const STUDIES_PER_PATIENT_WEIGHTS = [0.82, 0.14, 0.04];

export interface PlannedStudy {
  split: MuraSplit;
  region: Region;
  /** `patient00042` */
  patient: string;
  /** `study1_positive` */
  folder: string;
  /** Study key as in `*_labeled_studies.csv`: `MURA-v1.1/train/XR_WRIST/patient00042/study1_positive/`. */
  key: string;
  label: Label;
  /** MURA paths of the views, `<key>image1.png` ... */
  images: string[];
}

function weighted(rng: Rng, weights: readonly number[]): number {
  let total = 0;
  for (const w of weights) total += w;
  let u = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0) return i;
  }
  return weights.length - 1;
}

export const MAX_PATIENTS = 99999;

/**
 * Plans `studies` studies. Patients are drawn first (each with 1–3 studies, possibly in several regions), then a
 * `validFraction` share of the patients goes to `valid`, so no patient is in both splits. Train patients are
 * numbered first, then valid ones, as in MURA (patient00001 ... train, then valid).
 */
export function planDataset(opts: { studies: number; seed: Seed; validFraction: number }): PlannedStudy[] {
  const rng = new Rng(opts.seed).fork('plan');
  interface Draft {
    region: Region;
    label: Label;
    views: number;
  }
  const patients: Draft[][] = [];
  let planned = 0;
  while (planned < opts.studies) {
    const n = Math.min(1 + weighted(rng, STUDIES_PER_PATIENT_WEIGHTS), opts.studies - planned);
    const drafts: Draft[] = [];
    let region = REGION_LIST[weighted(rng, REGION_WEIGHTS)]!;
    for (let i = 0; i < n; i++) {
      // A returning patient is usually imaged again in the same region (follow-up), sometimes elsewhere.
      if (i > 0 && !rng.chance(0.6)) region = REGION_LIST[weighted(rng, REGION_WEIGHTS)]!;
      const label: Label = rng.chance(abnormalRate(region)) ? 1 : 0;
      drafts.push({ region, label, views: 1 + weighted(rng, VIEW_COUNT_WEIGHTS) });
    }
    patients.push(drafts);
    planned += n;
  }
  if (patients.length > MAX_PATIENTS) {
    throw new RangeError(`${opts.studies} studies need ${patients.length} patients, more than MURA's 5-digit ids allow`);
  }

  const order = patients.map((_, i) => i);
  rng.fork('split').shuffle(order);
  let nValid = Math.round(opts.validFraction * patients.length);
  // Both splits non-empty whenever the fraction asks for a valid split and there are two patients to share.
  if (opts.validFraction > 0 && patients.length >= 2) nValid = Math.min(Math.max(nValid, 1), patients.length - 1);
  const isValid = new Uint8Array(patients.length);
  for (let i = 0; i < nValid; i++) isValid[order[i]!] = 1;

  const out: PlannedStudy[] = [];
  let nextId = 1;
  for (const split of ['train', 'valid'] as const) {
    for (let p = 0; p < patients.length; p++) {
      if ((isValid[p] === 1) !== (split === 'valid')) continue;
      const patient = `patient${String(nextId++).padStart(5, '0')}`;
      const perRegion = new Map<Region, number>();
      for (const d of patients[p]!) {
        const k = (perRegion.get(d.region) ?? 0) + 1;
        perRegion.set(d.region, k);
        const folder = `study${k}_${d.label === 1 ? 'positive' : 'negative'}`;
        const key = `${MURA_ROOT}/${split}/${d.region}/${patient}/${folder}/`;
        const images: string[] = [];
        for (let v = 1; v <= d.views; v++) images.push(`${key}image${v}.png`);
        out.push({ split, region: d.region, patient, folder, key, label: d.label, images });
      }
    }
  }
  return out;
}
