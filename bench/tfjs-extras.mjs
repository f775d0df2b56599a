// Seconds inside the TF.js inference model (`predict --engine tfjs`) with its extra outputs (cam, ood_score when the
// checkpoint has a gate) and with the logits alone, on 8-image batches of a fixed synthetic input.
// Usage: node bench/tfjs-extras.mjs CHECKPOINT_OR_RUN [BATCHES=40] [DIST=dist]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [model, batches = '40', dist = 'dist'] = process.argv.slice(2);
if (!model) {
  console.error('usage: node bench/tfjs-extras.mjs CHECKPOINT_OR_RUN [BATCHES=40] [DIST=dist]');
  process.exit(2);
}
const { openModel } = await import(pathToFileURL(resolve(dist, 'src/inference/node/models.js')).href);
const m = await openModel(model, { engine: 'tfjs', onLog: () => {} });
const size = m.card.preprocessing.size;
const n = 8;
const x = Float32Array.from({ length: n * size * size * 3 }, (_, i) => Math.sin(i * 0.013) * 1.5);
const outputs = m.card.outputs.filter((o) => o === 'cam' || o === 'ood_score');
await m.run(x, n, { outputs }); // warm-up
let extras = 0;
let plain = 0;
for (let b = 0; b < Number(batches); b++) {
  extras += (await m.run(x, n, { outputs })).seconds;
  plain += (await m.run(x, n)).seconds;
}
console.log(`${model}: ${batches} x ${n} images at ${size} px: with ${outputs.join(' + ') || 'no extras'} ${extras.toFixed(3)} s, logits only ${plain.toFixed(3)} s (${m.card.engine})`);
await m.release();
