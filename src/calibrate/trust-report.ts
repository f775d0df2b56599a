/**
 * The demo report's trust sections: a heatmap gallery of test images the model got right and wrong (class
 * activation maps over the radiographs, src/inference/node/heatmap.ts), and the OOD gate's figures on generated
 * non-radiographs vs the held-out test radiographs (src/calibrate/ood-eval.ts).
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { decodeGrey } from '../data/images.js';
import { preprocessGrey } from '../data/preprocess.js';
import type { ImageRecord } from '../data/types.js';
import type { Prediction } from '../evaluate/predictions.js';
import { escapeHtml } from '../evaluate/tables.js';
import { loadGate } from '../inference/core/ood.js';
import { trustOf } from '../inference/core/trust.js';
import { heatmapPng } from '../inference/node/heatmap.js';
import { classActivationMap } from '../models/cam.js';
import { writeFileAtomic } from '../util/atomic.js';
import { evaluateOodGate, oodTable } from './ood-eval.js';
import { loadTrainedModel } from '../inference/node/checkpoint.js';

export interface TrustSection {
  title: string;
  html: string;
  markdown: string;
}

/** Picks right and wrong cases (at `threshold`) and writes their overlays under reportDir/heatmaps/. */
export async function trustSections(modelPath: string, dataRoot: string, predictions: readonly Prediction[], testRecords: readonly ImageRecord[], reportDir: string, threshold: number, opts: { oodPerSet?: number } = {}): Promise<TrustSection[]> {
  const loaded = loadTrainedModel(modelPath);
  const sections: TrustSection[] = [];
  try {
    const pre = loaded.preprocessing;
    const called = (p: Prediction): boolean => p.probability > threshold;
    const by = (f: (p: Prediction) => boolean, order: 1 | -1, k: number): Prediction[] => predictions.filter(f).sort((a, b) => order * (b.probability - a.probability)).slice(0, k);
    const cases: { p: Prediction; kind: string }[] = [
      ...by((p) => p.label === 1 && called(p), 1, 4).map((p) => ({ p, kind: 'true positive' })),
      ...by((p) => p.label === 0 && !called(p), -1, 2).map((p) => ({ p, kind: 'true negative' })),
      ...by((p) => p.label === 0 && called(p), 1, 3).map((p) => ({ p, kind: 'false positive' })),
      ...by((p) => p.label === 1 && !called(p), -1, 3).map((p) => ({ p, kind: 'false negative' })),
    ];
    const figs: { file: string; caption: string; png: Buffer }[] = [];
    for (const [i, c] of cases.entries()) {
      const g = await decodeGrey(join(dataRoot, c.p.image));
      const x = preprocessGrey(g.data, g.width, g.height, pre);
      const { map, h, w } = tf.tidy(() => {
        const r = classActivationMap(loaded.model, tf.tensor4d(x, [1, pre.size, pre.size, 3]));
        return { map: r.maps.dataSync() as Float32Array, h: r.maps.shape[1], w: r.maps.shape[2] };
      });
      const png = await heatmapPng({ grey: g.data, width: g.width, height: g.height, cam: map, camH: h, camW: w, preprocessing: pre, caption: `p ${c.p.probability.toFixed(2)}` });
      const file = `heatmaps/case${i + 1}.png`;
      writeFileAtomic(join(reportDir, file), png);
      figs.push({ file, caption: `${c.kind}: ${c.p.image.split('/').slice(2).join('/')} — P(abnormal) ${c.p.probability.toFixed(3)}`, png });
    }
    sections.push({
      title: 'Heatmaps — right and wrong cases',
      html:
        `<p>Class activation maps of the abnormal logit (viridis over the radiograph, letterbox undone), test split, threshold ${threshold}. Synthetic findings are small; the demo model's last feature map is 4x4, so the maps are coarse (see the README's pointing game).</p><div class="figs">` +
        figs.map((f) => `<figure><img src="data:image/png;base64,${f.png.toString('base64')}" alt="${escapeHtml(f.caption)}" style="width:100%"><figcaption>${escapeHtml(f.caption)}</figcaption></figure>`).join('') +
        '</div>',
      markdown: 'Class activation maps of the abnormal logit, test split.\n\n' + figs.map((f) => `![${f.caption}](${f.file})\n\n${f.caption}`).join('\n\n'),
    });
    const stored = trustOf(loaded.metadata).ood;
    if (stored) {
      const ev = await evaluateOodGate(loaded.model, loadGate(stored, `${join(loaded.checkpoint, 'model.json')}: extra.trust.ood`), pre, testRecords, { perSet: opts.oodPerSet ?? 50 });
      writeFileAtomic(join(reportDir, 'ood.json'), JSON.stringify(ev, null, 2) + '\n');
      const md = oodTable(ev);
      const rows = ev.sets.map((s) => `<tr><td>${escapeHtml(s.set)}</td><td>${s.images}</td><td>${(100 * s.flagged).toFixed(1)}%</td><td>${s.auroc === null ? '—' : s.auroc.toFixed(3)}</td><td>${s.medianScore.toFixed(1)}</td></tr>`);
      sections.push({
        title: 'Out-of-distribution gate',
        html: `<p>${escapeHtml(md.split('\n')[0]!)}</p><table><thead><tr><th>set</th><th>images</th><th>flagged</th><th>AUROC vs held-out radiographs</th><th>median score</th></tr></thead><tbody>${rows.join('')}<tr><td><strong>all non-radiographs</strong></td><td>${ev.overall.images}</td><td>${(100 * ev.overall.flagged).toFixed(1)}%</td><td>${ev.overall.auroc?.toFixed(3) ?? '—'}</td><td></td></tr></tbody></table>`,
        markdown: md,
      });
    }
  } finally {
    loaded.model.dispose();
  }
  return sections;
}
