/**
 * Types of the synthetic MURA generator: its options, the per-image sidecar that records what was planted where
 * (the ground truth later heatmap checks compare against), and the summary whose shape matches
 * `nextray data summary --json` so the two can be compared key for key.
 */
import type { Label, MuraSplit, Region } from '../types.js';
import type { RegionCounts } from '../summary.js';

/** Bumped whenever a change alters the bytes produced for a given seed and options. */
export const SYNTH_GENERATOR_VERSION = '1.1.0';

export const FINDING_KINDS = [
  'fracture',
  'hardware_plate',
  'hardware_wire',
  'lesion_lytic',
  'lesion_sclerotic',
  'degenerative',
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

/** One planted abnormality as seen in one image. */
export interface SynthFinding {
  kind: FindingKind;
  /** Tight pixel box [x0, y0, x1, y1] (inclusive-exclusive, clipped to the image) in the written PNG. */
  box: [number, number, number, number];
  /** Low-contrast or small: likely to be hard after downscaling to 128 px. */
  subtle: boolean;
  /** The bone (or joint, for degenerative change) it sits on, e.g. `radius`, `proximal_phalanx`. */
  site: string;
  /** Kind-specific details (displacement in px, lesion contrast, number of screws, ...). */
  details: Record<string, number | string | boolean>;
}

/** Sidecar `imageM.findings.json` written beside each PNG. */
export interface SynthImageSidecar {
  /** The MURA path of the image, as in `*_image_paths.csv`. */
  image: string;
  region: Region;
  /** Study label (1 = abnormal). A view of an abnormal study may show no finding (as in real studies). */
  label: Label;
  width: number;
  height: number;
  /** Projection the view imitates: `PA`, `lateral` or `oblique`. */
  view: string;
  /** Film positioning: in-plane rotation (degrees), pixels per anatomy cm, left/right mirror. */
  pose: { rotation_deg: number; px_per_cm: number; mirrored: boolean };
  findings: SynthFinding[];
  /** The site profile that took the film (sites.ts); absent for the default site. */
  site?: string;
}

export interface SynthOptions {
  /** Folder that receives `MURA-v1.1/` and `synth.json`. */
  outDir: string;
  /** Number of studies over both splits (default 1000). */
  studies?: number;
  /** Seed of everything; same seed and options give identical bytes. */
  seed?: number | string;
  /** Side of the square PNGs in pixels (default 512, MURA's largest side). */
  size?: number;
  /** Fraction of patients (not studies) placed in `valid` (default 0.2). */
  validFraction?: number;
  /**
   * The X-ray machine that takes the films (sites.ts: 'default', 'portable', 'cr-legacy'). The same seed gives the
   * same studies, labels and anatomy on every site; only the acquisition differs.
   */
  site?: string;
  /** Worker threads rendering in parallel; 0 renders on the calling thread (default: min(2, cores)). */
  workers?: number;
  /** Called after each image is written. */
  onProgress?: (done: number, total: number) => void;
}

/** Counts for one region of one split: the very type of `nextray data summary --json`, so the two cannot drift. */
export type { RegionCounts };

export interface SynthSummary {
  splits: Record<MuraSplit, Partial<Record<Region, RegionCounts>>>;
  totals: RegionCounts;
  /** Findings planted, by kind, over all images (an image may carry several). */
  findings: Record<FindingKind, number>;
  /** Images of abnormal studies that show no finding. */
  abnormal_views_without_finding: number;
  subtle_findings: number;
  root: string;
  seconds: number;
  images_per_second: number;
}

/** The manifest written to `<outDir>/synth.json`. */
export interface SynthManifest {
  generator: 'nextray-synth';
  version: string;
  options: { studies: number; seed: number | string; size: number; validFraction: number; site: string };
  summary: SynthSummary;
}
