/**
 * Patient-disjoint partitions of a clinic's labelled studies for site adaptation (browser-safe): the held-out part
 * that measures the adapted model, and the cross-fitting folds inside the fitting part. A patient's studies always
 * stay together (two studies of one patient share anatomy, and often the finding), and both classes are spread in
 * proportion: patients are stratified by whether any of their studies is abnormal, shuffled with a seeded stream,
 * and dealt out in turn.
 */
import { Rng, type Seed } from '../../util/rng.js';

export interface StudyUnit {
  key: string;
  patient: string;
  label: 0 | 1;
}

/** Patients in a seeded random order, abnormal ones (any abnormal study) first, then the others. */
function stratifiedPatients(studies: readonly StudyUnit[], rng: Rng): string[][] {
  const abnormal = new Map<string, boolean>();
  for (const s of studies) abnormal.set(s.patient, (abnormal.get(s.patient) ?? false) || s.label === 1);
  const names = [...abnormal.keys()].sort();
  const pos = names.filter((p) => abnormal.get(p));
  const neg = names.filter((p) => !abnormal.get(p));
  rng.shuffle(pos);
  rng.shuffle(neg);
  return [pos, neg];
}

/**
 * Splits the patients so that about `heldOutFraction` of the patients of each stratum are held out. Returns the
 * set of held-out patients. Deterministic in (studies, fraction, seed); independent of the order of `studies`.
 */
export function heldOutPatients(studies: readonly StudyUnit[], heldOutFraction: number, seed: Seed): Set<string> {
  if (!(heldOutFraction > 0 && heldOutFraction < 1)) throw new RangeError(`held-out fraction must be in (0, 1), got ${heldOutFraction}`);
  const held = new Set<string>();
  for (const stratum of stratifiedPatients(studies, new Rng(seed).fork('adapt-held-out'))) {
    const k = Math.round(heldOutFraction * stratum.length);
    for (let i = 0; i < k; i++) held.add(stratum[i]!);
  }
  return held;
}

/**
 * K patient-grouped folds: fold index per patient (0..k-1), dealing each stratum's shuffled patients round-robin
 * so every fold gets its share of abnormal patients. Fewer patients than k gives some empty folds.
 */
export function patientFolds(studies: readonly StudyUnit[], k: number, seed: Seed): Map<string, number> {
  if (!Number.isInteger(k) || k < 2) throw new RangeError(`folds must be an integer >= 2, got ${k}`);
  const fold = new Map<string, number>();
  let next = 0;
  for (const stratum of stratifiedPatients(studies, new Rng(seed).fork('adapt-folds'))) {
    for (const p of stratum) fold.set(p, next++ % k);
  }
  return fold;
}
