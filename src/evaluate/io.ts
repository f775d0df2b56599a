/**
 * The evaluation stage's Node-only I/O, kept apart so metrics, tables, plots (SVG) and predictions parsing stay pure
 * (the browser entry uses them): reading a predictions CSV file, the published MURA reference numbers, SVG -> PNG
 * (sharp).
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { parsePredictionsCsv, PredictionsError, type PredictionsInput } from './predictions.js';
import type { ReferenceResults } from './tables.js';

export function readPredictionsCsv(path: string): PredictionsInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PredictionsError(`${path}: cannot read predictions file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parsePredictionsCsv(text, path);
}

let cachedReference: ReferenceResults | null = null;

/** The published MURA numbers with their citation (src/evaluate/reference-results.json; tables.ts takes them as an argument). */
export function loadReferenceResults(): ReferenceResults {
  if (!cachedReference) {
    // Beside this module in src/ (tsx) and in dist/src/ (tsc copies included JSON files).
    const url = new URL('./reference-results.json', import.meta.url);
    cachedReference = JSON.parse(readFileSync(url, 'utf8')) as ReferenceResults;
  }
  return cachedReference;
}

/** Rasterises an SVG document to PNG at `scale` times its size (2 = crisp on high-density screens and slides). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(svg, 'utf8'), { density: 72 * scale })
    .png()
    .toBuffer();
}
