/**
 * Predictions: the one input of the evaluation library. A prediction is `{ image, label, probability }` with image
 * a MURA-layout path (`MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png`), so region, patient and
 * study come from the path. Any face can produce them: a predictions CSV (this module parses it, row by row,
 * continuing past bad rows) or a model run over a dataset split.
 *
 * Study level follows MURA: a study's probability is the mean of its views' probabilities; its label is the one in
 * the study folder name, which every view must agree with.
 */
import { parseMuraPath } from '../data/paths.js';
import type { Label, Region } from '../data/types.js';
import { EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../util/errors.js';
import { csvField, parseCsvLine } from '../util/csv.js';

export interface Prediction {
  /** MURA-layout image path, relative to the dataset root. */
  image: string;
  /** 1 = abnormal, 0 = normal. */
  label: Label;
  /** Predicted probability of abnormal, in [0, 1]. */
  probability: number;
}

/** A prediction with what its path says. */
export interface ResolvedPrediction extends Prediction {
  region: Region;
  patient: string;
  /** Study key with trailing slash. */
  study: string;
  /** Dataset root folder as written (`MURA-v1.1` for the real dataset). */
  root: string;
  split: string;
}

export interface StudyPrediction {
  study: string;
  region: Region;
  patient: string;
  label: Label;
  /** Mean of the views' probabilities. */
  probability: number;
  /** Image paths of its views, in input order. */
  images: string[];
}

export interface RowProblem {
  /** 1-based line number in the file (the header is line 1); for in-memory input, 1-based index + 1. */
  line: number;
  message: string;
}

export interface PredictionsInput {
  /** Where they came from (file path, or a description), used in error messages. */
  source: string;
  predictions: ResolvedPrediction[];
  /** Rows that were skipped, with why. */
  problems: RowProblem[];
  /** Data rows seen (valid + bad). */
  rows: number;
}

/** An error in an input file or list that the user must fix; the message names the source. */
export class PredictionsError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_PREDICTIONS', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'PredictionsError';
  }
}

/**
 * Checks one prediction; returns it resolved or a problem message. `seen` maps image path to the line that first
 * named it, to catch duplicates.
 */
function resolveOne(p: Prediction, line: number, seen: Map<string, number>): ResolvedPrediction | string {
  // A path with folders above the dataset root (`/data/MURA-v1.1/valid/...`, as `nextray predict` writes paths as
  // given) is read by its last six segments: <root>/<split>/XR_<REGION>/patient<N>/study<K>_<label>/<file>.
  const parts = parseMuraPath(p.image) ?? parseMuraPath(p.image.replace(/\\/g, '/').split('/').slice(-6).join('/'));
  if (!parts || !parts.image) {
    return `image "${p.image}" is not a MURA-layout image path (<root>/{train,valid}/XR_<REGION>/patient<N>/study<K>_{positive,negative}/<file>)`;
  }
  if (p.label !== 0 && p.label !== 1) return `label is ${String(p.label)}; it must be 0 (normal) or 1 (abnormal)`;
  if (typeof p.probability !== 'number' || !Number.isFinite(p.probability) || p.probability < 0 || p.probability > 1) {
    return `probability is ${String(p.probability)}; it must be a number in [0, 1]`;
  }
  if (p.label !== parts.label) {
    return `label ${p.label} contradicts the study folder "${parts.studyFolder}" (label ${parts.label}); MURA labels studies by folder name`;
  }
  const key = p.image.replace(/\\/g, '/').replace(/^\.\//, '');
  const first = seen.get(key);
  if (first !== undefined) return `image "${p.image}" already appeared on line ${first}`;
  seen.set(key, line);
  return {
    image: key,
    label: p.label,
    probability: p.probability,
    region: parts.region,
    patient: parts.patient,
    study: parts.study,
    root: parts.root,
    split: parts.split,
  };
}

/** Validates in-memory predictions (e.g. from a model run); bad ones are listed, not thrown. */
export function resolvePredictions(predictions: readonly Prediction[], source = 'predictions'): PredictionsInput {
  const seen = new Map<string, number>();
  const out: ResolvedPrediction[] = [];
  const problems: RowProblem[] = [];
  predictions.forEach((p, i) => {
    const r = resolveOne(p, i + 2, seen);
    if (typeof r === 'string') problems.push({ line: i + 2, message: r });
    else out.push(r);
  });
  return { source, predictions: out, problems, rows: predictions.length };
}

/**
 * Parses a predictions CSV with header `image,label,probability` (any column order, extra columns ignored). Bad
 * rows are skipped and listed with their line number; a missing or wrong header throws (nothing can be read).
 */
export function parsePredictionsCsv(text: string, source: string): PredictionsInput {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header = parseCsvLine(lines[0] ?? '');
  if (!header || header.every((h) => h === '')) {
    throw new PredictionsError(`${source}: empty file; expected a header line "image,label,probability"`);
  }
  const names = header.map((h) => h.trim().toLowerCase());
  const col = (name: string): number => names.indexOf(name);
  const missing = ['image', 'label', 'probability'].filter((n) => col(n) < 0);
  if (missing.length) {
    throw new PredictionsError(
      `${source}: header "${lines[0]}" lacks column(s) ${missing.join(', ')}; expected "image,label,probability"`,
    );
  }
  const [ci, cl, cp] = [col('image'), col('label'), col('probability')];
  const seen = new Map<string, number>();
  const predictions: ResolvedPrediction[] = [];
  const problems: RowProblem[] = [];
  let rows = 0;
  for (let k = 1; k < lines.length; k++) {
    const raw = lines[k]!;
    if (raw.trim() === '') continue;
    rows++;
    const line = k + 1;
    const fields = parseCsvLine(raw);
    if (!fields) {
      problems.push({ line, message: 'malformed quoting' });
      continue;
    }
    if (fields.length < names.length) {
      problems.push({ line, message: `${fields.length} field(s), the header has ${names.length}` });
      continue;
    }
    const labelText = fields[cl]!;
    const probText = fields[cp]!;
    if (labelText !== '0' && labelText !== '1') {
      problems.push({ line, message: `label "${labelText}" is not 0 or 1` });
      continue;
    }
    const probability = probText === '' ? NaN : Number(probText);
    if (!Number.isFinite(probability)) {
      problems.push({ line, message: `probability "${probText}" is not a number` });
      continue;
    }
    const r = resolveOne({ image: fields[ci]!, label: labelText === '1' ? 1 : 0, probability }, line, seen);
    if (typeof r === 'string') problems.push({ line, message: r });
    else predictions.push(r);
  }
  return { source, predictions, problems, rows };
}

/**
 * Groups image predictions into studies (MURA: study probability = mean of its views' probabilities). Throws when
 * the views of one study carry different labels. Output is sorted by study key, so it does not depend on row order.
 */
export function aggregateStudies(predictions: readonly ResolvedPrediction[]): StudyPrediction[] {
  const byStudy = new Map<string, { first: ResolvedPrediction; sum: number; images: string[] }>();
  for (const p of predictions) {
    const s = byStudy.get(p.study);
    if (!s) {
      byStudy.set(p.study, { first: p, sum: p.probability, images: [p.image] });
      continue;
    }
    if (s.first.label !== p.label) {
      throw new PredictionsError(
        `study ${p.study}: its views disagree on the label (${s.first.image} has ${s.first.label}, ${p.image} has ${p.label}); a study has one label`,
      );
    }
    s.sum += p.probability;
    s.images.push(p.image);
  }
  return [...byStudy.keys()].sort().map((key) => {
    const s = byStudy.get(key)!;
    return {
      study: key,
      region: s.first.region,
      patient: s.first.patient,
      label: s.first.label,
      probability: s.sum / s.images.length,
      images: s.images,
    };
  });
}

/** Image-level predictions CSV, with the call at `threshold` and the study each image belongs to. */
export function imagePredictionsCsv(predictions: readonly ResolvedPrediction[], threshold: number): string {
  const lines = ['image,label,probability,predicted,region,study'];
  for (const p of predictions) {
    lines.push(
      [csvField(p.image), p.label, p.probability, p.probability > threshold ? 1 : 0, p.region, csvField(p.study)].join(','),
    );
  }
  return lines.join('\n') + '\n';
}

/** Study-level predictions CSV (mean of views), with the call at `threshold`. */
export function studyPredictionsCsv(studies: readonly StudyPrediction[], threshold: number): string {
  const lines = ['study,label,probability,predicted,region,views'];
  for (const s of studies) {
    lines.push(
      [csvField(s.study), s.label, s.probability, s.probability > threshold ? 1 : 0, s.region, s.images.length].join(','),
    );
  }
  return lines.join('\n') + '\n';
}
