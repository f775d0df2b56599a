/**
 * The synthetic MURA generator: a dataset in the exact MURA-v1.1 layout (folders, PNGs, the four CSVs) whose
 * radiographs carry planted, recorded abnormalities — for demos, tests and heatmap checks without the real data.
 */
export { generateSyntheticMura, SYNTH_DEFAULTS, type SynthResult } from './generate.js';
export { planDataset, abnormalRate, MURA_ROOT, type PlannedStudy } from './plan.js';
export { designStudy, renderImage, type StudyDesign, type RenderedImage } from './render.js';
export { sidecarPath } from './job.js';
export {
  SITE_NAMES,
  SITE_PROFILES,
  NOISE_KAPPA,
  siteProfile,
  isSiteName,
  isIdentitySite,
  siteToneValue,
  gaussianBlur,
  applySiteOptics,
  type SiteName,
  type SiteProfile,
  type SiteTone,
} from './sites.js';
export {
  FINDING_KINDS,
  SYNTH_GENERATOR_VERSION,
  type FindingKind,
  type RegionCounts,
  type SynthFinding,
  type SynthImageSidecar,
  type SynthManifest,
  type SynthOptions,
  type SynthSummary,
} from './types.js';
