/**
 * One unit of generator work — render one view, encode it as an 8-bit greyscale PNG and write it with its
 * findings sidecar — shared by the worker threads and the in-process path so both produce identical bytes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import type { Label, Region } from '../types.js';
import { designStudy, renderImage } from './render.js';
import type { FindingKind } from './types.js';
import { siteProfile } from './sites.js';

export interface ImageJob {
  /** MURA path of the image (`MURA-v1.1/train/.../image1.png`). */
  path: string;
  study: string;
  region: Region;
  label: Label;
  /** 0-based view index and number of views of the study. */
  view: number;
  views: number;
}

export interface JobContext {
  seed: number | string;
  size: number;
  outDir: string;
  /** Site profile name (sites.ts). */
  site: string;
}

export interface JobResult {
  path: string;
  kinds: FindingKind[];
  subtle: number;
}

export function sidecarPath(pngPath: string): string {
  return pngPath.replace(/\.png$/, '.findings.json');
}

export async function runImageJob(job: ImageJob, ctx: JobContext): Promise<JobResult> {
  const design = designStudy(ctx.seed, job.study, job.region, job.label, job.views);
  const { pixels, sidecar } = renderImage(ctx.seed, design, job.view, job.path, ctx.size, siteProfile(ctx.site));
  const png = await sharp(pixels, { raw: { width: ctx.size, height: ctx.size, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
  const abs = join(ctx.outDir, job.path);
  mkdirSync(dirname(abs), { recursive: true });
  writeFileSync(abs, png);
  writeFileSync(sidecarPath(abs), JSON.stringify(sidecar, null, 1) + '\n');
  return { path: job.path, kinds: sidecar.findings.map((f) => f.kind), subtle: sidecar.findings.filter((f) => f.subtle).length };
}
