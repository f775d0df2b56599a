#!/usr/bin/env node
// Why dicom-parser (src/data/dicom.ts) and not dcmjs: import time and parse time of a 2048 x 2500, 12-bit DICOM
// (10 MB, written by test/helpers/dicom-writer.ts), medians of 15 parses. One JSON line.
//   npm run build && npm install --no-save dcmjs@0.52.2 && node bench/dicom-parsers.mjs
const { writeDicom } = await import(new URL('../dist/test/helpers/dicom-writer.js', import.meta.url).href);
const t0 = performance.now();
const dp = (await import('dicom-parser')).default;
const tDp = performance.now() - t0;
const t1 = performance.now();
const dcmjs = (await import('dcmjs')).default;
const tDc = performance.now() - t1;
const W = 2048;
const H = 2500;
const px = new Uint16Array(W * H);
for (let i = 0; i < px.length; i++) px[i] = (i * 7) & 4095;
const bytes = writeDicom({ rows: H, columns: W, bitsAllocated: 16, bitsStored: 12, pixels: px, window: { center: 2048, width: 4096 } });
const med = (f, n = 15) => {
  const t = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    f();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return t[n >> 1];
};
const a = med(() => {
  const ds = dp.parseDicom(bytes);
  const el = ds.elements.x7fe00010;
  return ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
});
const b = med(() => dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)).dict['7FE00010'].Value[0]);
console.log(JSON.stringify({ file_mb: Number((bytes.length / 1e6).toFixed(1)), import_ms: { 'dicom-parser': Math.round(tDp), dcmjs: Math.round(tDc) }, parse_median_ms: { 'dicom-parser': Number(a.toFixed(2)), dcmjs: Number(b.toFixed(2)) } }));
