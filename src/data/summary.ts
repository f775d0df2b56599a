/**
 * Per-split, per-region counts of a loaded MURA dataset, in the shape of the MURA paper's Table 1 (normal and
 * abnormal studies, images, patients), as a machine-readable object (`nextray data summary --json`) and as a
 * plain-text table. Counts cover the usable images and studies only: what the loader refused is in its issues.
 */
import { MURA_SPLITS, REGIONS, type MuraSplit, type Region, type Study } from './types.js';

/** Counts for one region of one split; the keys of `nextray data summary --json`. */
export interface RegionCounts {
  images: number;
  studies: number;
  /** Distinct patients with at least one study of this region in this split. */
  patients: number;
  abnormal_studies: number;
  normal_studies: number;
}

/**
 * `{"splits": {"train": {"XR_ELBOW": {...}, ...}, "valid": {...}}}`. Both splits are always present; a region
 * appears only when the split has a study of it (so a small or synthetic dataset does not show empty rows), in
 * the order of REGIONS.
 */
export interface DatasetSummary {
  splits: Record<MuraSplit, Partial<Record<Region, RegionCounts>>>;
}

function emptyCounts(): RegionCounts {
  return { images: 0, studies: 0, patients: 0, abnormal_studies: 0, normal_studies: 0 };
}

/** Counts a set of studies (any subset, e.g. one region of one split); patients are counted once each. */
export function countStudies(studies: readonly Study[]): RegionCounts {
  const c = emptyCounts();
  const patients = new Set<string>();
  for (const s of studies) {
    c.studies++;
    c.images += s.images.length;
    if (s.label === 1) c.abnormal_studies++;
    else c.normal_studies++;
    patients.add(s.patient);
  }
  c.patients = patients.size;
  return c;
}

/** Table-1-style counts of the dataset's studies. */
export function summarizeStudies(studies: readonly Study[]): DatasetSummary {
  const splits = {} as DatasetSummary['splits'];
  for (const split of MURA_SPLITS) {
    const out: Partial<Record<Region, RegionCounts>> = {};
    for (const region of REGIONS) {
      const subset = studies.filter((s) => s.split === split && s.region === region);
      if (subset.length) out[region] = countStudies(subset);
    }
    splits[split] = out;
  }
  return { splits };
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

/**
 * A readable table per split plus one over both, with totals rows (patients in a total row are distinct
 * patients, not the sum of the column, since a patient may have studies of several regions).
 */
export function formatSummaryTable(studies: readonly Study[]): string {
  const header = ['Region', 'Normal', 'Abnormal', 'Studies', 'Images', 'Patients'];
  const widths = [12, 8, 9, 8, 8, 9];
  const row = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!, i > 0)).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const block = (title: string, subset: readonly Study[]) => {
    const lines = [title, row(header), rule];
    for (const region of REGIONS) {
      const r = subset.filter((s) => s.region === region);
      if (!r.length) continue;
      const c = countStudies(r);
      lines.push(row([region, ...[c.normal_studies, c.abnormal_studies, c.studies, c.images, c.patients].map(String)]));
    }
    const t = countStudies(subset);
    lines.push(rule, row(['Total', ...[t.normal_studies, t.abnormal_studies, t.studies, t.images, t.patients].map(String)]));
    return lines.join('\n');
  };
  const parts = MURA_SPLITS.map((split) => block(`${split}:`, studies.filter((s) => s.split === split)));
  parts.push(block('all splits:', studies));
  return parts.join('\n\n') + '\n';
}
