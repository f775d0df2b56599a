/**
 * The synthetic MURA generator's driver: plans the dataset, streams the images to disk through worker threads
 * (each image is rendered, encoded and written by one worker and never held by the main thread), then writes
 * MURA's four CSVs atomically and a `synth.json` manifest beside `MURA-v1.1/`.
 */
import { existsSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { writeFileAtomic, writeJsonAtomic } from '../../util/atomic.js';
import { startSiblingWorker } from '../../util/worker.js';
import { MURA_SPLITS, REGIONS, type Region } from '../types.js';
import { DatasetError } from '../mura.js';
import { planDataset, MURA_ROOT, type PlannedStudy } from './plan.js';
import { isSiteName, SITE_NAMES } from './sites.js';
import { runImageJob, type ImageJob, type JobContext, type JobResult } from './job.js';
import {
  FINDING_KINDS,
  SYNTH_GENERATOR_VERSION,
  type FindingKind,
  type RegionCounts,
  type SynthManifest,
  type SynthOptions,
  type SynthSummary,
} from './types.js';

export const SYNTH_DEFAULTS = {
  studies: 1000,
  seed: 1,
  /** MURA's images are at most 512 px on their longer side. */
  size: 512,
  /**
   * MURA's own valid split is ~8 % of studies, but synthetic sets are small: 20 % of the patients keeps the
   * validation AUC estimate usable (~200 studies for the default 1000) while leaving most data for training.
   */
  validFraction: 0.2,
} as const;

export interface SynthResult extends SynthSummary {
  /** Images that could not be generated (left out of the CSVs), with the reason. */
  failed: { path: string; error: string }[];
}

function checkOptions(opts: SynthOptions): Required<Omit<SynthOptions, 'onProgress'>> {
  const studies = opts.studies ?? SYNTH_DEFAULTS.studies;
  const size = opts.size ?? SYNTH_DEFAULTS.size;
  const validFraction = opts.validFraction ?? SYNTH_DEFAULTS.validFraction;
  const seed = opts.seed ?? SYNTH_DEFAULTS.seed;
  const workers = opts.workers ?? Math.min(2, availableParallelism());
  const site = opts.site ?? 'default';
  if (!isSiteName(site)) throw new RangeError(`site must be one of ${SITE_NAMES.join(', ')}, got '${site}'`);
  if (!Number.isInteger(studies) || studies < 1 || studies > 90000) throw new RangeError(`studies must be an integer in [1, 90000], got ${studies}`);
  if (!Number.isInteger(size) || size < 32 || size > 2048) throw new RangeError(`size must be an integer in [32, 2048] px, got ${size}`);
  if (!(validFraction >= 0 && validFraction <= 0.9)) throw new RangeError(`validFraction must be in [0, 0.9], got ${validFraction}`);
  if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new RangeError(`workers must be an integer in [0, 64], got ${workers}`);
  if (!opts.outDir) throw new RangeError('outDir is required');
  return { outDir: opts.outDir, studies, size, validFraction, seed, workers, site };
}

function emptyCounts(): RegionCounts {
  return { images: 0, studies: 0, patients: 0, abnormal_studies: 0, normal_studies: 0 };
}

/** Counts per split and region, from the plan and the images actually written. */
function summarise(plan: PlannedStudy[], written: Set<string>): Pick<SynthSummary, 'splits' | 'totals'> {
  const splits = { train: {}, valid: {} } as SynthSummary['splits'];
  const patients = new Map<string, Set<string>>();
  const totals = emptyCounts();
  const allPatients = new Set<string>();
  for (const s of plan) {
    const images = s.images.filter((p) => written.has(p)).length;
    if (images === 0) continue;
    const c = (splits[s.split][s.region] ??= emptyCounts());
    c.images += images;
    c.studies++;
    if (s.label === 1) c.abnormal_studies++;
    else c.normal_studies++;
    const k = `${s.split}/${s.region}`;
    if (!patients.has(k)) patients.set(k, new Set());
    patients.get(k)!.add(s.patient);
    totals.images += images;
    totals.studies++;
    if (s.label === 1) totals.abnormal_studies++;
    else totals.normal_studies++;
    allPatients.add(s.patient);
  }
  for (const split of MURA_SPLITS) {
    for (const region of REGIONS) {
      const c = splits[split][region];
      if (c) c.patients = patients.get(`${split}/${region}`)!.size;
    }
  }
  totals.patients = allPatients.size;
  // Stable key order (MURA's region order) for readable JSON.
  for (const split of MURA_SPLITS) {
    const ordered: Partial<Record<Region, RegionCounts>> = {};
    for (const region of REGIONS) if (splits[split][region]) ordered[region] = splits[split][region];
    splits[split] = ordered;
  }
  return { splits, totals };
}

async function runWorkers(jobs: ImageJob[], ctx: JobContext, nWorkers: number, onResult: (r: JobResult | { path: string; error: string }) => void): Promise<void> {
  const BATCH = 8;
  let next = 0;
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let outstanding = jobs.length;
      if (outstanding === 0) return resolve();
      const feed = (w: Worker, inflight: { n: number }) => {
        while (inflight.n < 2 * BATCH && next < jobs.length) {
          const batch = jobs.slice(next, next + BATCH);
          next += batch.length;
          inflight.n += batch.length;
          w.postMessage(batch);
        }
      };
      for (let i = 0; i < Math.min(nWorkers, Math.ceil(jobs.length / BATCH)); i++) {
        const w = startSiblingWorker(import.meta.url, 'worker', { workerData: ctx });
        workers.push(w);
        const inflight = { n: 0 };
        w.on('message', (msg: { ok: true; result: JobResult } | { ok: false; path: string; error: string }) => {
          inflight.n--;
          onResult(msg.ok ? msg.result : { path: msg.path, error: msg.error });
          if (--outstanding === 0) resolve();
          else feed(w, inflight);
        });
        w.on('error', reject);
        w.on('exit', (code) => {
          if (outstanding > 0) reject(new Error(`synthetic image worker stopped (exit code ${code}) with ${outstanding} images left`));
        });
        feed(w, inflight);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * Generates a synthetic dataset in the MURA-v1.1 layout under `opts.outDir`. Same seed and options give the
 * same bytes in every file, whatever the number of workers. Refuses to write into an existing `MURA-v1.1/`
 * unless `force` is set (then that folder is replaced).
 */
export async function generateSyntheticMura(opts: SynthOptions & { force?: boolean }): Promise<SynthResult> {
  const o = checkOptions(opts);
  const root = join(o.outDir, MURA_ROOT);
  if (existsSync(root) && readdirSync(root).length > 0) {
    if (!opts.force) throw new DatasetError(`${root} already exists and is not empty; choose another --out folder or pass --force to replace it`);
    rmSync(root, { recursive: true, force: true });
  }
  mkdirSync(root, { recursive: true });
  const started = performance.now();
  const plan = planDataset({ studies: o.studies, seed: o.seed, validFraction: o.validFraction });
  const jobs: ImageJob[] = [];
  for (const s of plan) {
    s.images.forEach((path, view) => jobs.push({ path, study: s.key, region: s.region, label: s.label, view, views: s.images.length }));
  }
  const ctx: JobContext = { seed: o.seed, size: o.size, outDir: o.outDir, site: o.site };
  const written = new Set<string>();
  const failed: { path: string; error: string }[] = [];
  const findings = Object.fromEntries(FINDING_KINDS.map((k) => [k, 0])) as Record<FindingKind, number>;
  const abnormalStudyImages = new Set(plan.filter((s) => s.label === 1).flatMap((s) => s.images));
  let subtle = 0;
  let withoutFinding = 0;
  let done = 0;
  const onResult = (r: JobResult | { path: string; error: string }) => {
    done++;
    if ('error' in r) failed.push(r);
    else {
      written.add(r.path);
      for (const k of r.kinds) findings[k]++;
      subtle += r.subtle;
      if (r.kinds.length === 0 && abnormalStudyImages.has(r.path)) withoutFinding++;
    }
    opts.onProgress?.(done, jobs.length);
  };
  if (o.workers === 0) {
    for (const job of jobs) {
      try {
        onResult(await runImageJob(job, ctx));
      } catch (err) {
        onResult({ path: job.path, error: err instanceof Error ? err.message : String(err) });
      }
    }
  } else {
    await runWorkers(jobs, ctx, o.workers, onResult);
  }

  // MURA's CSVs: no header, image paths one per line; studies with a trailing slash and the 0/1 label.
  for (const split of MURA_SPLITS) {
    const studies = plan.filter((s) => s.split === split);
    const images = studies.flatMap((s) => s.images.filter((p) => written.has(p)));
    const labeled = studies.filter((s) => s.images.some((p) => written.has(p))).map((s) => `${s.key},${s.label}`);
    writeFileAtomic(join(root, `${split}_image_paths.csv`), images.map((p) => p + '\n').join(''));
    writeFileAtomic(join(root, `${split}_labeled_studies.csv`), labeled.map((l) => l + '\n').join(''));
  }

  const seconds = (performance.now() - started) / 1000;
  const summary: SynthResult = {
    ...summarise(plan, written),
    findings,
    abnormal_views_without_finding: withoutFinding,
    subtle_findings: subtle,
    root,
    seconds: +seconds.toFixed(2),
    images_per_second: +(written.size / Math.max(seconds, 1e-9)).toFixed(1),
    failed,
  };
  const manifest: SynthManifest = {
    generator: 'nextray-synth',
    version: SYNTH_GENERATOR_VERSION,
    options: { studies: o.studies, seed: o.seed, size: o.size, validFraction: o.validFraction, site: o.site },
    // Timing varies between runs; the manifest keeps only what the seed determines, so it is reproducible too.
    summary: { ...summary, seconds: 0, images_per_second: 0, root: MURA_ROOT },
  };
  delete (manifest.summary as Partial<SynthResult>).failed;
  writeJsonAtomic(join(o.outDir, 'synth.json'), { ...manifest, failed: failed.length });
  return summary;
}

