/**
 * The fuzz campaign's inputs, made deterministically from (target, seed, index): real encodings made here (PNG and
 * JPEG by sharp, DICOM by test/helpers/dicom-writer.ts in several layouts and transfer syntaxes, MURA CSVs and split
 * files from a tiny dataset, multipart bodies, request targets), then mutated with a seeded RNG — bit flips,
 * interesting values over length fields, truncation, insertion, deletion, duplication, splicing. Any case can be
 * rebuilt alone from its three numbers to reproduce a failure.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/rng.js';
import { encapsulate, TS, writeDicom, type ImageSpec } from '../helpers/dicom-writer.js';
import { REPO_ROOT } from '../helpers/paths.js';

export const TARGETS = ['png', 'jpeg', 'dicom', 'csv', 'split', 'multipart', 'paths'] as const;
export type Target = (typeof TARGETS)[number];

/** Cases per target in a full run (`npm run fuzz`): 1,010 in all, 700 of them mutated images. */
export const FULL_COUNTS: Readonly<Record<Target, number>> = { png: 200, jpeg: 200, dicom: 300, csv: 60, split: 50, multipart: 80, paths: 120 };
/** The slice `npm test` runs (about a minute on two loaded cores). */
export const CI_COUNTS: Readonly<Record<Target, number>> = { png: 60, jpeg: 60, dicom: 100, csv: 15, split: 15, multipart: 30, paths: 60 };

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff];
const INTERESTING_32 = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

/** One seeded mutation pass (1-4 operations) over `base`; `other` feeds splices. Header bytes are hit half the time. */
export function mutate(rng: Rng, base: Uint8Array, other?: Uint8Array): Uint8Array {
  let b = Buffer.from(base);
  const ops = 1 + rng.int(4);
  const pos = (): number => (b.length === 0 ? 0 : rng.chance(0.5) ? rng.int(Math.min(b.length, 512)) : rng.int(b.length));
  for (let k = 0; k < ops; k++) {
    switch (rng.int(8)) {
      case 0: {
        // bit flips
        for (let n = 1 + rng.int(8); n > 0 && b.length; n--) b[pos()]! ^= 1 << rng.int(8);
        break;
      }
      case 1: {
        for (let n = 1 + rng.int(4); n > 0 && b.length; n--) b[pos()] = INTERESTING_8[rng.int(INTERESTING_8.length)]!;
        break;
      }
      case 2: {
        // a length or size field: a 16- or 32-bit integer, either byte order
        if (b.length < 4) break;
        const at = Math.min(pos(), b.length - 4);
        const v = INTERESTING_32[rng.int(INTERESTING_32.length)]!;
        if (rng.chance(0.5)) (rng.chance(0.5) ? b.writeUInt32LE(v >>> 0, at) : b.writeUInt32BE(v >>> 0, at));
        else (rng.chance(0.5) ? b.writeUInt16LE(v & 0xffff, at) : b.writeUInt16BE(v & 0xffff, at));
        break;
      }
      case 3: {
        b = b.subarray(0, rng.int(b.length + 1));
        break;
      }
      case 4: {
        const at = pos();
        const ins = Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256)));
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        break;
      }
      case 5: {
        const at = pos();
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(256)))]);
        break;
      }
      case 6: {
        // duplicate a range (a repeated chunk or element)
        if (!b.length) break;
        const from = rng.int(b.length);
        const len = 1 + rng.int(Math.min(512, b.length - from));
        const at = pos();
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + len), b.subarray(at)]);
        break;
      }
      default: {
        if (!other?.length) break;
        const at = pos();
        b = Buffer.concat([b.subarray(0, at), Buffer.from(other.subarray(rng.int(other.length)))]);
      }
    }
  }
  return new Uint8Array(b);
}

export interface Bases {
  png: Uint8Array[];
  jpeg: Uint8Array[];
  dicom: Uint8Array[];
  j2k: Uint8Array;
  jpegFrame: Uint8Array;
}

function pixels(rng: Rng, n: number, max: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7 + rng.int(16)) % (max + 1));
}

/** Real encodings to mutate: grey/16-bit/RGB/RGBA/palette PNGs, grey/colour/progressive JPEGs, DICOMs of each layout. */
export async function makeBases(): Promise<Bases> {
  const rng = new Rng('nextray-fuzz-bases');
  const w = 48;
  const h = 36;
  const grey = Buffer.from(pixels(rng, w * h, 255));
  const rgb = Buffer.from(pixels(rng, w * h * 3, 255));
  const rgba = Buffer.from(pixels(rng, w * h * 4, 255));
  const g16 = Buffer.alloc(w * h * 2);
  for (let i = 0; i < w * h; i++) g16.writeUInt16LE((i * 911) % 65536, i * 2);
  const raw = (c: 1 | 3 | 4) => ({ raw: { width: w, height: h, channels: c } });
  const png = [
    await sharp(grey, raw(1)).png().toBuffer(),
    await sharp(g16, { raw: { width: w, height: h, channels: 1, premultiplied: false } }).toColourspace('grey16').png().toBuffer(),
    await sharp(rgb, raw(3)).png({ compressionLevel: 9 }).toBuffer(),
    await sharp(rgba, raw(4)).png().toBuffer(),
    await sharp(rgb, raw(3)).png({ palette: true, colours: 16 }).toBuffer(),
    await sharp(grey, raw(1)).png({ progressive: true }).toBuffer(),
  ];
  const jpegFrame = await sharp(grey, raw(1)).jpeg({ quality: 85 }).toBuffer();
  const jpeg = [
    jpegFrame,
    await sharp(rgb, raw(3)).jpeg({ quality: 90 }).toBuffer(),
    await sharp(rgb, raw(3)).jpeg({ progressive: true, quality: 75 }).toBuffer(),
    await sharp(grey, raw(1)).jpeg({ quality: 50, optimiseCoding: true }).toBuffer(),
  ];
  const j2k = new Uint8Array(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'dicom', 'x12.j2k')));
  const px8 = pixels(rng, 32 * 24, 255);
  const px12 = pixels(rng, 32 * 24, 4095);
  const dicom = [
    writeDicom({ rows: 24, columns: 32, bitsAllocated: 8, pixels: px8, studyUid: '1.2.3' }),
    writeDicom({ rows: 24, columns: 32, bitsAllocated: 8, photometric: 'MONOCHROME1', pixels: px8 }),
    writeDicom({ rows: 24, columns: 32, bitsAllocated: 16, bitsStored: 12, pixels: px12, window: { center: 2048, width: 4096 } }),
    writeDicom({ rows: 24, columns: 32, bitsAllocated: 16, bitsStored: 12, signed: true, pixels: px12.map((v) => v - 2048), rescale: { slope: 0.5, intercept: 100 }, transferSyntax: TS.explicitBE }),
    writeDicom({ rows: 24, columns: 32, bitsAllocated: 16, pixels: px12, transferSyntax: TS.implicitLE }),
    writeDicom({ rows: 24, columns: 32, bitsAllocated: 8, pixels: px8, transferSyntax: TS.deflatedLE }),
    writeDicom({ rows: 24, columns: 32, bitsAllocated: 8, photometric: 'RGB', samplesPerPixel: 3, pixels: pixels(rng, 32 * 24 * 3, 255) }),
    writeDicom({ rows: h, columns: w, bitsAllocated: 8, transferSyntax: TS.jpegBaseline, pixelBytes: encapsulate([jpegFrame]) }),
    writeDicom({ rows: 8, columns: 16, bitsAllocated: 16, bitsStored: 12, transferSyntax: TS.jpeg2000, pixelBytes: encapsulate([j2k]) }),
  ];
  return { png, jpeg, dicom, j2k, jpegFrame };
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

let crcTable: Uint32Array | undefined;
function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Rewrites the checksum of every PNG chunk that is still whole, so a mutation gets past libpng's CRC check into
 * the chunk parsers, the inflater and the row filters (else nearly every mutated PNG stops at the first CRC).
 */
export function fixPngCrcs(bytes: Uint8Array): Uint8Array {
  const b = Buffer.from(bytes);
  let off = 8;
  while (off + 12 <= b.length) {
    const len = b.readUInt32BE(off);
    if (off + 12 + len > b.length) break;
    b.writeUInt32BE(crc32(b.subarray(off + 4, off + 8 + len)), off + 8 + len);
    off += 12 + len;
  }
  return new Uint8Array(b);
}

/** A DICOM whose header is odd on purpose (before any byte mutation): sizes, bit depths, photometric, VOI, syntax. */
function oddDicom(rng: Rng, bases: Bases): Uint8Array {
  const rows = pick(rng, [0, 1, 2, 24, 65535, 3]);
  const columns = pick(rng, [0, 1, 32, 65535, 7]);
  const bitsAllocated = pick(rng, [8, 16] as const);
  const spec: ImageSpec = {
    rows,
    columns,
    bitsAllocated,
    bitsStored: pick(rng, [1, 8, 12, 16, 17, 32, 0]),
    highBit: pick(rng, [0, 7, 11, 15, 31]),
    signed: rng.chance(0.3),
    photometric: pick(rng, ['MONOCHROME1', 'MONOCHROME2', 'RGB'] as const),
    samplesPerPixel: pick(rng, [1, 3, 4, 0]),
    transferSyntax: pick(rng, [TS.explicitLE, TS.implicitLE, TS.explicitBE, TS.deflatedLE, TS.jpegBaseline, TS.jpeg2000, TS.jpegLossless]),
    ...(rng.chance(0.5) ? { window: { center: pick(rng, [0, -1e9, 1e9, 2048, Number.NaN]), width: pick(rng, [0, -5, 1, 4096, 1e-9]), ...(rng.chance(0.3) ? { function: pick(rng, ['SIGMOID', 'LINEAR_EXACT', 'BOGUS']) } : {}) } } : {}),
    ...(rng.chance(0.4) ? { rescale: { slope: pick(rng, [0, -1, 1e-30, 1e30, Number.NaN]), intercept: pick(rng, [0, -1e9, 1e9]) } } : {}),
  };
  const n = Math.min(rows * columns * (spec.samplesPerPixel || 1), 4096);
  if (spec.transferSyntax === TS.jpegBaseline || spec.transferSyntax === TS.jpeg2000 || spec.transferSyntax === TS.jpegLossless) {
    const frame = spec.transferSyntax === TS.jpeg2000 ? bases.j2k : bases.jpegFrame;
    spec.pixelBytes = encapsulate(rng.chance(0.2) ? [] : rng.chance(0.2) ? [frame, frame] : [frame]);
  } else {
    spec.pixels = pixels(rng, rng.chance(0.3) ? rng.int(n + 1) : n, bitsAllocated === 8 ? 255 : 65535);
  }
  return writeDicom(spec);
}

/** The bytes of image case `index` of `target` ('png', 'jpeg' or 'dicom'). */
export function imageCase(target: 'png' | 'jpeg' | 'dicom', seed: number, index: number, bases: Bases): Uint8Array {
  const rng = new Rng(`${seed}:${target}:${index}`);
  const list = bases[target];
  if (target === 'dicom' && rng.chance(0.25)) {
    const odd = oddDicom(rng, bases);
    return rng.chance(0.5) ? odd : mutate(rng, odd);
  }
  const base = pick(rng, list);
  const bytes = mutate(rng, base, pick(rng, [...bases.png, ...bases.jpeg, ...bases.dicom]));
  return target === 'png' && rng.chance(0.6) ? fixPngCrcs(bytes) : bytes;
}

/** Text mutations for CSV-like files: lines dropped, duplicated, swapped, garbled; odd paths and labels; then bytes. */
export function mutateText(rng: Rng, text: string): Uint8Array {
  let lines = text.split('\n');
  const ops = 1 + rng.int(4);
  const odd = ['', ',', ',,,', '"', '"unterminated,1', 'MURA-v1.1/../../etc/passwd,1', '/abs/path.png,0', 'MURA-v1.1/train/XR_HAND/patient1/study1_positive/,2',
    'MURA-v1.1/valid/XR_HAND/patient99999/study1_positive/,-1', 'MURA-v1.1/valid/XR_HAND/patient99999/study1_positive/,NaN', 'x'.repeat(5000),
    'MURA-v1.1/train/XR_WRIST/patient00001/study1_negative/image1.png', '\u0000\u0001\u0002', '\uFEFFMURA-v1.1/train/XR_ELBOW/p/s/,1', 'a,b,c,d,e', 'MURA-v1.1\\train\\XR_HAND\\p\\s\\,1'];
  for (let k = 0; k < ops; k++) {
    const i = lines.length ? rng.int(lines.length) : 0;
    switch (rng.int(6)) {
      case 0:
        lines.splice(i, 1);
        break;
      case 1:
        lines.splice(i, 0, lines[i] ?? '');
        break;
      case 2:
        lines.splice(i, 0, pick(rng, odd));
        break;
      case 3:
        lines[i] = (lines[i] ?? '').split(',').reverse().join(',');
        break;
      case 4:
        lines[i] = (lines[i] ?? '').replace(/\d/g, () => String(rng.int(10)));
        break;
      default:
        lines = lines.map((l) => (rng.chance(0.5) ? l + '\r' : l));
    }
  }
  const bytes = new TextEncoder().encode(lines.join('\n'));
  return rng.chance(0.3) ? mutate(rng, bytes) : bytes;
}

/** A multipart body (and its Content-Type) for case `index`: well-formed ones broken in a chosen place. */
export function multipartCase(seed: number, index: number, bases: Bases): { contentType: string; body: Buffer; declaredLength?: number } {
  const rng = new Rng(`${seed}:multipart:${index}`);
  const boundary = pick(rng, ['X-NEXTRAY-b0undary', 'a', '----' + 'b'.repeat(70), 'has space', '"quoted"', 'é']);
  const file = Buffer.from(pick(rng, [...bases.png, ...bases.jpeg, ...bases.dicom]));
  const disposition = pick(rng, [
    'form-data; name="file"; filename="x.png"',
    'form-data; name="file"',
    'form-data; name="other"; filename="x.png"',
    'form-data; filename="x.png"',
    'attachment',
    'form-data; name="file"; filename="' + '../'.repeat(30) + 'etc/passwd"',
    'form-data; name="file"; filename*=UTF-8\'\'%E2%82%AC.png',
    '',
  ]);
  const parts: Buffer[] = [Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: ${pick(rng, ['image/png', 'application/octet-stream', '', 'multipart/mixed; boundary=z'])}\r\n\r\n`), file, Buffer.from(`\r\n--${boundary}--\r\n`)];
  if (rng.chance(0.3)) parts.unshift(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nAAAA\r\n`));
  let body: Buffer = Buffer.concat(parts);
  if (rng.chance(0.6)) body = Buffer.from(mutate(rng, body));
  const contentType = pick(rng, [
    `multipart/form-data; boundary=${boundary}`,
    'multipart/form-data',
    'multipart/form-data; boundary=',
    `multipart/form-data; boundary="${boundary}"`,
    `multipart/form-data; boundary=${boundary}; boundary=other`,
    'multipart/mixed; boundary=' + boundary,
    `MULTIPART/FORM-DATA; BOUNDARY=${boundary}`,
  ]);
  // Sometimes the declared length disagrees with the body (more: the server waits, then times out with 408).
  const declaredLength = rng.chance(0.15) ? body.length + 1 + rng.int(100) : undefined;
  return { contentType, body, ...(declaredLength !== undefined ? { declaredLength } : {}) };
}

const PROTECTED = ['/v1/health', '/v1/model', '/v1/predict', '/model.onnx', '/', '/index.html', '/assets/app.js'];

/** A request target for case `index`: a protected path spelled oddly (encoded, dotted, absolute-form, ...). */
export function pathCase(seed: number, index: number, port: number): { method: string; target: string; withToken: boolean; path: string } {
  const rng = new Rng(`${seed}:paths:${index}`);
  const path = pick(rng, PROTECTED);
  const method = path === '/v1/predict' ? pick(rng, ['POST', 'POST', 'GET']) : pick(rng, ['GET', 'GET', 'HEAD', 'POST', 'OPTIONS']);
  let t = '';
  for (const ch of path) {
    const r = rng.next();
    if (ch !== '/' && r < 0.25) t += '%' + ch.charCodeAt(0).toString(16).padStart(2, '0')[rng.chance(0.5) ? 'toUpperCase' : 'toLowerCase']();
    else if (ch === '/' && r < 0.1) t += pick(rng, ['//', '/./', '/x/../', '%2f', '%2F', '\\', '/%2e/', '/.%2e/../', '/;/']);
    else if (ch === '.' && r < 0.35) t += pick(rng, ['%2e', '%2E', '%c0%ae', '%252e', '.']);
    else if (r < 0.28) t += ch.toUpperCase();
    else t += ch;
  }
  if (rng.chance(0.2)) t = `${pick(rng, ['http', 'HTTP', 'https', 'ftp', 'file'])}://${pick(rng, [`127.0.0.1:${port}`, 'evil.example', 'localhost', '', 'a@b'])}${t}`;
  if (rng.chance(0.1)) t += pick(rng, ['?', '?token=x', '#frag', '%00', '%', '/..', ';x', '?a=%2F']);
  if (rng.chance(0.05)) t = pick(rng, ['*', '', ' ', '/\u00e9', '/%ff%fe']);
  return { method, target: t, withToken: rng.chance(0.3), path };
}
