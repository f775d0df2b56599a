/**
 * Every compressed transfer syntax, pixel for pixel against independent decoders. Source pictures are written
 * uncompressed by test/helpers/dicom-writer.ts; dcmtk (dcmcjpeg, dcmcjpls, dcmcrle) and gdcm (gdcmconv) compress
 * them; the same tools decode them back (dcmdjpeg, dcmdjpls, dcmdrle, gdcmconv --raw) and pydicom reads those
 * uncompressed references. Our stored values (decodeStoredFrame with the Node codecs) must equal the reference
 * exactly, and for lossless encodings also the source picture. A decoder that returned zeros, dropped a sample or
 * swapped bytes fails here. Also over pydicom's own test files, against gdcm. Tools missing: skipped with the reason
 * (failed under NEXTRAY_REQUIRE_DICOM_TOOLS=1, as in CI).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeStoredFrame, parseDicom, readDicom, TS, UNCOMPRESSED_TRANSFER_SYNTAXES } from '../../src/data/dicom/index.js';
import { nodeFrameDecoders } from '../../src/data/dicom/node-codecs.js';
import { tempDir } from '../helpers/paths.js';
import { writeDicom } from '../helpers/dicom-writer.js';
import { pydicomPixels, pydicomPython, tool, toolsSkip } from '../helpers/dicom-tools.js';

const tmp = tempDir('nextray-dicom-codecs-');
after(() => tmp.cleanup());

interface Source {
  name: string;
  bits: number;
  signed: boolean;
  spp: 1 | 3;
  rows: number;
  columns: number;
  frames: number;
  /** Stored values, all frames, pixel-interleaved. */
  values: number[];
}

/**
 * A deterministic picture that exercises a codec: a smooth ramp, a sharp edge, noise from an LCG, the extremes of
 * the range, and a last row of one value (so a Huffman stream can end on a byte boundary).
 */
function picture(name: string, rows: number, columns: number, bits: number, signed: boolean, spp: 1 | 3, frames = 1): Source {
  const lo = signed ? -(2 ** (bits - 1)) : 0;
  const hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  let s = (bits * 7919 + rows * 31 + columns + (signed ? 1 : 0) + spp * 101) >>> 0;
  const values: number[] = [];
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < columns; x++) {
        for (let c = 0; c < spp; c++) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          const noise = ((s >>> 8) / 2 ** 24 - 0.5) * (hi - lo) * 0.08;
          const ramp = lo + ((x + 3 * y + 17 * c + 11 * f) / (columns + 3 * rows + 40)) * (hi - lo);
          const edge = x > columns / 2 && y < rows / 2 ? (hi - lo) * 0.3 : 0;
          let v = Math.round(ramp + edge + noise);
          if (y === rows - 1) v = Math.round((lo + hi) / 2) + c;
          else if (x === 0 && y === 0) v = lo;
          else if (x === 1 && y === 0) v = hi;
          values.push(Math.min(hi, Math.max(lo, v)));
        }
      }
    }
  }
  return { name, bits, signed, spp, rows, columns, frames, values };
}

function writeSource(src: Source): string {
  const path = join(tmp.dir, `${src.name}.dcm`);
  const mask = src.bits === 16 ? 0xffff : (1 << src.bits) - 1;
  writeFileSync(
    path,
    writeDicom({
      rows: src.rows,
      columns: src.columns,
      bitsAllocated: src.bits > 8 ? 16 : 8,
      bitsStored: src.bits,
      signed: src.signed,
      samplesPerPixel: src.spp,
      photometric: src.spp === 3 ? 'RGB' : 'MONOCHROME2',
      // Two's complement within Bits Stored, the bits above it zero.
      pixels: src.values.map((v) => v & mask),
      extra: [
        ...(src.spp === 3 ? [{ group: 0x0028, element: 0x0006, vr: 'US' as const, value: [0] }] : []),
        ...(src.frames > 1 ? [{ group: 0x0028, element: 0x0008, vr: 'IS' as const, value: String(src.frames) }] : []),
        { group: 0x0008, element: 0x0060, vr: 'CS' as const, value: 'DX' },
      ],
    }),
  );
  return path;
}

interface Encoding {
  name: string;
  encode: (src: string, out: string) => void;
  decode: (src: string, out: string) => void;
  ts: string;
  /** The reference equals the source picture (lossless); else the maximum deviation allowed from it, if known. */
  lossless: boolean;
  maxDeviation?: number;
}

const dcmtk = (enc: string, args: string[], dec: string): Pick<Encoding, 'encode' | 'decode'> => ({
  encode: (s, o) => void tool(enc, [...args, s, o]),
  decode: (s, o) => void tool(dec, [s, o]),
});
const gdcm = (flags: string[]): Pick<Encoding, 'encode' | 'decode'> => ({
  encode: (s, o) => void tool('gdcmconv', [...flags, s, o]),
  decode: (s, o) => void tool('gdcmconv', ['--raw', s, o]),
});

function encodingsFor(src: Source): Encoding[] {
  const out: Encoding[] = [
    { name: 'dcmcjpeg +e1 (lossless SV1)', ...dcmtk('dcmcjpeg', ['+e1'], 'dcmdjpeg'), ts: TS.jpegLosslessSV1, lossless: true },
    ...[1, 2, 3, 4, 5, 6, 7].map((sv) => ({ name: `dcmcjpeg +el +sv ${sv} (lossless, predictor ${sv})`, ...dcmtk('dcmcjpeg', ['+el', '+sv', String(sv)], 'dcmdjpeg'), ts: TS.jpegLossless, lossless: true })),
    { name: 'dcmcjpls lossless', ...dcmtk('dcmcjpls', ['+el'], 'dcmdjpls'), ts: TS.jpegLsLossless, lossless: true },
    // dcmtk encodes near-lossless JPEG-LS for unsigned pixels only.
    ...(src.signed ? [] : [{ name: 'dcmcjpls near-lossless NEAR 2', ...dcmtk('dcmcjpls', ['+en', '+md', '2'], 'dcmdjpls'), ts: TS.jpegLsNearLossless, lossless: false, maxDeviation: 2 }]),
    { name: 'dcmcrle', ...dcmtk('dcmcrle', [], 'dcmdrle'), ts: TS.rle, lossless: true },
    { name: 'gdcmconv --jpeg', ...gdcm(['--jpeg']), ts: TS.jpegLosslessSV1, lossless: true },
    { name: 'gdcmconv --jpegls', ...gdcm(['--jpegls']), ts: TS.jpegLsLossless, lossless: true },
    { name: 'gdcmconv --rle', ...gdcm(['--rle']), ts: TS.rle, lossless: true },
    { name: 'gdcmconv --j2k', ...gdcm(['--j2k']), ts: TS.jpeg2000Lossless, lossless: true },
  ];
  if (src.spp === 3) {
    out.push({ name: 'dcmcjpls lossless, sample-interleaved', ...dcmtk('dcmcjpls', ['+el', '+is'], 'dcmdjpls'), ts: TS.jpegLsLossless, lossless: true });
    out.push({ name: 'dcmcjpls lossless, not interleaved', ...dcmtk('dcmcjpls', ['+el', '+in'], 'dcmdjpls'), ts: TS.jpegLsLossless, lossless: true });
  }
  if (src.bits === 8 && !src.signed) {
    out.push({ name: 'dcmcjpeg +eb (baseline, lossy)', ...dcmtk('dcmcjpeg', ['+eb'], 'dcmdjpeg'), ts: TS.jpegBaseline, lossless: false });
    // gdcm writes colour as YBR_FULL_422 and its --raw keeps YCbCr; dcmdjpeg gives RGB, as our reader does.
    out.push({ name: 'gdcmconv --jpeg --lossy (baseline)', encode: gdcm(['--jpeg', '--lossy', '-q', '90']).encode, decode: (s, o) => void tool('dcmdjpeg', [s, o]), ts: TS.jpegBaseline, lossless: false });
  }
  return out;
}

const SOURCES: Source[] = [
  picture('grey8', 24, 37, 8, false, 1),
  picture('grey12', 31, 29, 12, false, 1),
  picture('grey16', 19, 33, 16, false, 1),
  picture('signed16', 17, 21, 16, true, 1),
  picture('rgb8', 15, 22, 8, false, 3),
];

function firstDifference(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  let count = 0;
  let first = -1;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      count++;
      if (first < 0) first = i;
    }
  }
  return count ? `${count} of ${want.length} values differ, first at ${first}: got ${got[first]}, want ${want[first]}` : null;
}

const TOOLS = ['dcmcjpeg', 'dcmdjpeg', 'dcmcjpls', 'dcmdjpls', 'dcmcrle', 'dcmdrle', 'gdcmconv', 'pydicom'];
const skip = toolsSkip(TOOLS);

for (const src of SOURCES) {
  test(`${src.name} (${src.bits}-bit${src.signed ? ' signed' : ''}, ${src.spp === 3 ? 'RGB' : 'grey'}): every encoding decodes to the independent decoder's values`, { skip }, async () => {
    const path = writeSource(src);
    const encodings = encodingsFor(src);
    const problems: string[] = [];
    const done: Array<{ e: Encoding; enc: string; ref: string }> = [];
    for (const [i, e] of encodings.entries()) {
      const enc = join(tmp.dir, `${src.name}-${i}.enc.dcm`);
      const ref = join(tmp.dir, `${src.name}-${i}.ref.dcm`);
      try {
        e.encode(path, enc);
        e.decode(enc, ref);
      } catch (err) {
        problems.push(`${e.name}: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      done.push({ e, enc, ref });
    }
    assert.deepEqual(problems, [], 'the tools encode and decode every case');
    const mismatches: string[] = [];
    const refs = pydicomPixels(done.map((d) => d.ref), tmp.dir);
    for (const [k, { e, enc }] of done.entries()) {
      const bytes = new Uint8Array(readFileSync(enc));
      const p = parseDicom(bytes, { source: e.name });
      assert.equal(p.header.transferSyntax, e.ts, `${e.name}: transfer syntax written`);
      assert.ok(p.header.pixel.encapsulated, `${e.name}: the file really is compressed`);
      const ref = refs[k]!.values;
      if (e.lossless) {
        const d = firstDifference(ref, src.values);
        if (d) mismatches.push(`${e.name}: the reference decoder does not give back the source (${d})`);
      } else if (e.maxDeviation !== undefined) {
        const dev = ref.reduce((m, v, i) => Math.max(m, Math.abs(v - src.values[i]!)), 0);
        if (dev > e.maxDeviation) mismatches.push(`${e.name}: reference deviates by ${dev}`);
      }
      let ours;
      try {
        ours = await decodeStoredFrame(p, { decoders: nodeFrameDecoders });
      } catch (err) {
        mismatches.push(`${e.name}: ${(err as Error).message}`);
        continue;
      }
      assert.equal(ours.samplesPerPixel, src.spp);
      const d = firstDifference(ours.values, ref);
      if (d) mismatches.push(`${e.name}: ${d}`);
    }
    assert.deepEqual(mismatches, []);
  });
}

test('12-bit JPEG extended (process 4, dcmcjpeg +ee): our IJG-exact decoder gives dcmdjpeg\'s values sample for sample', { skip: toolsSkip(['dcmcjpeg', 'dcmdjpeg', 'pydicom']) }, async () => {
  const sources = [picture('x12a', 16, 16, 12, false, 1), picture('x12b', 37, 23, 12, false, 1), picture('x12c', 64, 48, 12, false, 1), picture('x12s', 40, 33, 12, true, 1)];
  const qualities: string[][] = [[], ['+q', '50'], ['+q', '100'], ['+q', '75', '+sm', '30']];
  const cases: Array<{ name: string; enc: string; ref: string; src: Source }> = [];
  for (const src of sources) {
    const path = writeSource(src);
    for (const [i, q] of qualities.entries()) {
      const enc = join(tmp.dir, `${src.name}-ee${i}.dcm`);
      const ref = join(tmp.dir, `${src.name}-ee${i}.ref.dcm`);
      tool('dcmcjpeg', ['+ee', ...q, path, enc]);
      tool('dcmdjpeg', [enc, ref]);
      cases.push({ name: `${src.name} +ee ${q.join(' ')}`, enc, ref, src });
    }
  }
  const refs = pydicomPixels(cases.map((c) => c.ref), tmp.dir);
  const mismatches: string[] = [];
  let lossy = 0;
  for (const [k, c] of cases.entries()) {
    const p = parseDicom(new Uint8Array(readFileSync(c.enc)), { source: c.name });
    assert.equal(p.header.transferSyntax, TS.jpegExtended);
    const ours = await decodeStoredFrame(p, { decoders: nodeFrameDecoders });
    const d = firstDifference(ours.values, refs[k]!.values);
    if (d) mismatches.push(`${c.name}: ${d}`);
    if (firstDifference(refs[k]!.values, c.src.values)) lossy++;
  }
  assert.deepEqual(mismatches, []);
  assert.ok(lossy >= cases.length / 2, 'the encodings really are lossy (so the comparison is with the decoder, not the source)');
  // A 12-bit colour frame stays refused, with the reason.
  const rgb = picture('x12rgb', 8, 8, 12, false, 3);
  const rgbOut = join(tmp.dir, 'x12rgb-ee.dcm');
  try {
    tool('dcmcjpeg', ['+ee', writeSource(rgb), rgbOut]);
  } catch {
    return; // dcmtk may not write 12-bit colour JPEG
  }
  await assert.rejects(readDicom(new Uint8Array(readFileSync(rgbOut)), { source: 'x12rgb.dcm', decoders: nodeFrameDecoders }), /x12rgb\.dcm: .*12-bit JPEG/);
});

test('multi-frame (3 frames, RLE and JPEG-LS): each frame decodes to its own values; readDicom uses the first with a warning', { skip }, async () => {
  const src = picture('frames', 12, 10, 12, false, 1, 3);
  const path = writeSource(src);
  const frameLen = src.rows * src.columns;
  const encoders: Array<[string, string, string[]]> = [
    ['rle', 'dcmcrle', []],
    ['jpegls', 'dcmcjpls', ['+el']],
    ['jpeg', 'dcmcjpeg', ['+e1']],
  ];
  for (const [name, enc, args] of encoders) {
    const out = join(tmp.dir, `frames-${name}.dcm`);
    tool(enc, [...args, path, out]);
    const bytes = new Uint8Array(readFileSync(out));
    const p = parseDicom(bytes, { source: out });
    assert.equal(p.header.pixel.frames, 3);
    for (let f = 0; f < 3; f++) {
      const fr = await decodeStoredFrame(p, { frame: f, decoders: nodeFrameDecoders });
      assert.equal(firstDifference(fr.values, src.values.slice(f * frameLen, (f + 1) * frameLen)), null, `${name} frame ${f}`);
    }
    const img = await readDicom(bytes, { source: out, decoders: nodeFrameDecoders });
    assert.equal(img.frame, 0);
    assert.ok(img.warnings.some((w) => /multi-frame file \(3 frames\): only the first frame is used/.test(w)), img.warnings.join('; '));
    assert.equal(img.grey[0], src.values[0]! / 4095);
    await assert.rejects(decodeStoredFrame(p, { frame: 3, decoders: nodeFrameDecoders }), /frame 3 does not exist \(the file has 3\)/);
  }
});

/** pydicom's own test files (python3-pydicom). */
const PYDICOM_FILES = (() => {
  const py = pydicomPython();
  if (!py) return null;
  try {
    const dir = join(tool(py, ['-c', 'import pydicom, os; print(os.path.dirname(pydicom.__file__))']).trim(), 'data', 'test_files');
    return existsSync(dir) ? dir : null;
  } catch {
    return null;
  }
})();

/**
 * The independent reference for a transfer syntax: pydicom itself where it decodes without a plugin (uncompressed,
 * deflated, RLE: its numpy handlers), dcmtk for the JPEG family (dcmdjpeg, dcmdjpls), gdcm for JPEG 2000.
 * (gdcm 3.0's RLE decoder mis-orders 16-bit colour segments on pydicom's SC_rgb_rle_16bit.dcm; dcmtk and pydicom
 * agree with each other and with us there.)
 */
function referenceTool(ts: string): string[] | null {
  if (ts in UNCOMPRESSED_TRANSFER_SYNTAXES || ts === TS.rle) return [];
  if ([TS.jpegBaseline, TS.jpegExtended, TS.jpegLossless, TS.jpegLosslessSV1].includes(ts as never)) return ['dcmdjpeg'];
  if (ts === TS.jpegLsLossless || ts === TS.jpegLsNearLossless) return ['dcmdjpls'];
  if (ts === TS.jpeg2000 || ts === TS.jpeg2000Lossless) return ['gdcmconv', '--raw'];
  return null;
}

test("pydicom's test files in every transfer syntax we read decode to the independent decoders' values", { skip: toolsSkip(['gdcmconv', 'dcmdjpeg', 'dcmdjpls', 'pydicom']) || (PYDICOM_FILES ? false : "pydicom's test files not found") }, async () => {
  const dir = PYDICOM_FILES!;
  const checked: string[] = [];
  const problems: string[] = [];
  const cases: Array<{ name: string; file: string; ref: string }> = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.dcm')).sort()) {
    const file = join(dir, name);
    let p;
    try {
      p = parseDicom(new Uint8Array(readFileSync(file)), { source: name });
    } catch {
      continue; // not parseable: other tests cover refusals
    }
    const px = p.header.pixel;
    if (!px.present || !(px.bitsAllocated === 8 || px.bitsAllocated === 16) || !px.photometric) continue;
    if (!['MONOCHROME1', 'MONOCHROME2', 'RGB'].includes(px.photometric)) continue;
    const how = referenceTool(p.header.transferSyntax);
    if (!how) continue;
    let ref = file;
    if (how.length) {
      ref = join(tmp.dir, `pyd-${name}`);
      try {
        tool(how[0]!, [...how.slice(1), file, ref]);
      } catch {
        continue; // the reference tool cannot decode it either
      }
    }
    cases.push({ name, file, ref });
  }
  const refs = pydicomPixels(cases.map((c) => c.ref), tmp.dir);
  for (const [k, c] of cases.entries()) {
    const p = parseDicom(new Uint8Array(readFileSync(c.file)), { source: c.name });
    let ours;
    try {
      ours = await decodeStoredFrame(p, { decoders: nodeFrameDecoders });
    } catch (err) {
      problems.push(`${c.name} (${p.header.transferSyntax}): ${(err as Error).message}`);
      continue;
    }
    const ref = refs[k]!.values.subarray(0, ours.values.length);
    const d = firstDifference(ours.values, ref);
    if (d) problems.push(`${c.name} (${p.header.transferSyntax}): ${d}`);
    else checked.push(`${c.name} ${p.header.transferSyntax}`);
  }
  assert.deepEqual(problems, []);
  const syntaxes = new Set(checked.map((c) => c.split(' ')[1]));
  for (const ts of [TS.rle, TS.jpegLsLossless, TS.jpeg2000Lossless, TS.jpeg2000, TS.jpegBaseline, TS.explicitLE, TS.explicitBE, TS.deflatedLE]) {
    assert.ok(syntaxes.has(ts), `a pydicom file in ${ts} was checked (${checked.join(', ')})`);
  }
});
