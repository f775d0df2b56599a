/**
 * DICOM radiographs -> greyscale in [0, 1], following the greyscale display pipeline of DICOM PS3.3 C.11:
 *
 *   stored values (8-16 bits allocated, Bits Stored / High Bit, signed or unsigned per Pixel Representation)
 *   -> Modality LUT: Rescale Slope/Intercept (C.11.1.1.2), or a Modality LUT Sequence
 *   -> VOI LUT: a VOI LUT Sequence (its first LUT), else the first Window Center/Width with the VOI LUT Function
 *      (LINEAR by default, C.11.2.1.2.1; LINEAR_EXACT C.11.2.1.3.2; SIGMOID C.11.2.1.3.1), else (no VOI given) the
 *      full range the Modality LUT can output, mapped linearly — the analogue of PNG's bit-depth scaling
 *   -> MONOCHROME1 (or Presentation LUT Shape INVERSE) inverted: y = 1 - y
 *
 * so that the grey image is what a DICOM viewer shows by default; then the usual preprocessing follows.
 * RGB files (rare for radiographs) become grey by BT.601 luma, as PNG/JPEG do.
 *
 * Files are parsed by dicom-parser (cornerstonejs; chosen over dcmjs: no dependencies, 40 kB, parse-only, and
 * faster here — see the README). Uncompressed transfer syntaxes (implicit/explicit VR little endian, explicit big
 * endian, deflated where the host has zlib) are read directly; encapsulated (compressed) ones go to a
 * `DicomFrameDecoder` the host supplies (the Node host decodes JPEG baseline with sharp); any other is refused with
 * an error naming the file and its transfer syntax. Only the first frame of a multi-frame file is used (a warning
 * says so).
 *
 * Browser-safe: no `node:` imports (the pure pipeline functions below work on typed arrays).
 */
import * as dicomParserNs from 'dicom-parser';
import { inflateSync } from 'fflate';
import { EXIT_USAGE, NextrayError } from '../util/errors.js';

// dicom-parser is a UMD bundle: Node's ESM loader exposes it as the default export only, bundlers as either.
const dicomParser: typeof dicomParserNs = (dicomParserNs as unknown as { default?: typeof dicomParserNs }).default ?? dicomParserNs;

/** The transfer syntaxes read without a codec. */
export const UNCOMPRESSED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
};

/** Names of common compressed transfer syntaxes, for messages. */
export const COMPRESSED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
};

/** An unusable DICOM file, with the file named and the reason in plain words (like ImageError for PNG/JPEG). */
export class DicomError extends NextrayError {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`, { code: 'ERR_DICOM', exitStatus: EXIT_USAGE });
    this.name = 'DicomError';
  }
}

/** What a frame decoder is told about the frame. */
export interface DicomFrameInfo {
  rows: number;
  columns: number;
  bitsAllocated: number;
  samplesPerPixel: number;
  transferSyntax: string;
}

/** Decodes the frames of some compressed transfer syntaxes (supplied by the host: sharp in Node, a codec in the browser). */
export interface DicomFrameDecoder {
  transferSyntaxes: readonly string[];
  /** Samples of one frame, pixel-interleaved (R, G, B, R, ...) when there are several per pixel. */
  decode(frame: Uint8Array, info: DicomFrameInfo): Promise<{ samples: Uint8Array | Uint16Array | Int16Array; samplesPerPixel: number }>;
}

export interface ReadDicomOptions {
  /** Names the file in errors (default '<DICOM bytes>'). */
  source?: string;
  decoders?: readonly DicomFrameDecoder[];
  /** Refuse images with more pixels than this (default 100 Mpx, as for PNG/JPEG). */
  maxPixels?: number;
}

/** What the VOI stage did. */
export type VoiApplied =
  | { kind: 'lut'; entries: number; firstMapped: number; bits: number }
  | { kind: 'window'; center: number; width: number; function: VoiFunction }
  | { kind: 'range'; min: number; max: number };

export type VoiFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface DicomImage {
  /** Display grey values in [0, 1], row-major. */
  grey: Float32Array;
  width: number;
  height: number;
  transferSyntax: string;
  photometric: string;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  rescale: { slope: number; intercept: number } | null;
  voi: VoiApplied | null;
  inverted: boolean;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  /** Body Part Examined (0018,0015), when present. */
  bodyPart?: string;
  frames: number;
  warnings: string[];
}

/** Whether bytes start like a DICOM Part 10 file (128-byte preamble, then 'DICM'). */
export function isDicom(head: Uint8Array): boolean {
  return head.length >= 132 && head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43 && head[131] === 0x4d;
}

// ---------------------------------------------------------------------------------------------------------------
// The pixel pipeline on typed arrays (PS3.3 C.11). Each function is one stage, with the standard's formula.

export interface StoredLayout {
  bitsAllocated: 8 | 16;
  bitsStored: number;
  highBit: number;
  signed: boolean;
  littleEndian: boolean;
}

/**
 * Stored pixel values from raw sample bytes: the Bits Stored bits ending at High Bit of each Bits Allocated cell,
 * two's complement when signed (Pixel Representation 1).
 */
export function storedValues(bytes: Uint8Array, count: number, l: StoredLayout): Int32Array {
  const out = new Int32Array(count);
  const shift = l.highBit + 1 - l.bitsStored;
  const mask = l.bitsStored >= 32 ? 0xffffffff : (1 << l.bitsStored) - 1;
  const sign = 1 << (l.bitsStored - 1);
  const full = 1 << l.bitsStored;
  for (let i = 0; i < count; i++) {
    let raw: number;
    if (l.bitsAllocated === 8) raw = bytes[i]!;
    else raw = l.littleEndian ? bytes[2 * i]! | (bytes[2 * i + 1]! << 8) : (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
    let v = (raw >>> shift) & mask;
    if (l.signed && v & sign) v -= full;
    out[i] = v;
  }
  return out;
}

/** Modality LUT by Rescale Slope/Intercept: output = m * SV + b (C.11.1.1.2). */
export function rescale(values: ArrayLike<number>, slope: number, intercept: number): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = slope * values[i]! + intercept;
  return out;
}

/** A LUT from a LUT Descriptor and LUT Data (C.11.1.1.1 / C.11.2.1.1). */
export interface Lut {
  /** Number of entries (a descriptor's 0 means 65536). */
  entries: number;
  /** Input value mapped to the first entry. */
  firstMapped: number;
  /** Bits per entry: outputs lie in [0, 2^bits - 1]. */
  bits: number;
  data: ArrayLike<number>;
}

/** Applies a LUT: inputs below the first mapped value take the first entry, above the last the last entry. */
export function applyLut(values: ArrayLike<number>, lut: Lut): Float64Array {
  const out = new Float64Array(values.length);
  const last = lut.entries - 1;
  for (let i = 0; i < values.length; i++) {
    const k = Math.round(values[i]!) - lut.firstMapped;
    out[i] = lut.data[k < 0 ? 0 : k > last ? last : k]!;
  }
  return out;
}

/**
 * VOI windowing to [0, 1] with the standard's functions. LINEAR (C.11.2.1.2.1), with ymin = 0, ymax = 1:
 *   x <= c - 0.5 - (w - 1) / 2  -> 0
 *   x >  c - 0.5 + (w - 1) / 2  -> 1
 *   else ((x - (c - 0.5)) / (w - 1) + 0.5)
 * LINEAR_EXACT (C.11.2.1.3.2): x <= c - w/2 -> 0; x > c + w/2 -> 1; else (x - c) / w + 0.5.
 * SIGMOID (C.11.2.1.3.1): 1 / (1 + exp(-4 (x - c) / w)).
 */
export function applyWindow(values: ArrayLike<number>, center: number, width: number, fn: VoiFunction = 'LINEAR'): Float32Array {
  const out = new Float32Array(values.length);
  const c = center;
  const w = width;
  if (fn === 'LINEAR') {
    const lo = c - 0.5 - (w - 1) / 2;
    const hi = c - 0.5 + (w - 1) / 2;
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!;
      out[i] = x <= lo ? 0 : x > hi ? 1 : (x - (c - 0.5)) / (w - 1) + 0.5;
    }
  } else if (fn === 'LINEAR_EXACT') {
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!;
      out[i] = x <= c - w / 2 ? 0 : x > c + w / 2 ? 1 : (x - c) / w + 0.5;
    }
  } else {
    for (let i = 0; i < values.length; i++) out[i] = 1 / (1 + Math.exp((-4 * (values[i]! - c)) / w));
  }
  return out;
}

/** Linear map of [min, max] to [0, 1], clamped (no VOI given; and a VOI LUT's output range). */
export function applyRange(values: ArrayLike<number>, min: number, max: number): Float32Array {
  const out = new Float32Array(values.length);
  const span = max - min;
  for (let i = 0; i < values.length; i++) {
    const y = span > 0 ? (values[i]! - min) / span : 0;
    out[i] = y < 0 ? 0 : y > 1 ? 1 : y;
  }
  return out;
}

/** MONOCHROME1 / INVERSE: y = 1 - y, in place. */
export function invertInPlace(grey: Float32Array): Float32Array {
  for (let i = 0; i < grey.length; i++) grey[i] = 1 - grey[i]!;
  return grey;
}

export interface DisplayParams {
  layout: StoredLayout;
  rescale?: { slope: number; intercept: number } | null;
  modalityLut?: Lut | null;
  voiLut?: Lut | null;
  window?: { center: number; width: number; function?: VoiFunction } | null;
  invert: boolean;
}

/** The whole greyscale pipeline from stored values (see the module comment). */
export function displayGrey(stored: Int32Array, p: DisplayParams): { grey: Float32Array; voi: VoiApplied } {
  const { bitsStored, signed } = p.layout;
  const svMin = signed ? -(2 ** (bitsStored - 1)) : 0;
  const svMax = signed ? 2 ** (bitsStored - 1) - 1 : 2 ** bitsStored - 1;
  let modality: ArrayLike<number> = stored;
  let outMin = svMin;
  let outMax = svMax;
  if (p.modalityLut) {
    modality = applyLut(stored, p.modalityLut);
    outMin = 0;
    outMax = 2 ** p.modalityLut.bits - 1;
  } else if (p.rescale && (p.rescale.slope !== 1 || p.rescale.intercept !== 0)) {
    const { slope, intercept } = p.rescale;
    modality = rescale(stored, slope, intercept);
    [outMin, outMax] = [slope * svMin + intercept, slope * svMax + intercept].sort((a, b) => a - b) as [number, number];
  }
  let grey: Float32Array;
  let voi: VoiApplied;
  if (p.voiLut) {
    grey = applyRange(applyLut(modality, p.voiLut), 0, 2 ** p.voiLut.bits - 1);
    voi = { kind: 'lut', entries: p.voiLut.entries, firstMapped: p.voiLut.firstMapped, bits: p.voiLut.bits };
  } else if (p.window) {
    const fn = p.window.function ?? 'LINEAR';
    grey = applyWindow(modality, p.window.center, p.window.width, fn);
    voi = { kind: 'window', center: p.window.center, width: p.window.width, function: fn };
  } else {
    grey = applyRange(modality, outMin, outMax);
    voi = { kind: 'range', min: outMin, max: outMax };
  }
  if (p.invert) invertInPlace(grey);
  return { grey, voi };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading a file.

type DataSet = ReturnType<typeof dicomParser.parseDicom>;

function readLut(item: DataSet, signedInput: boolean): Lut | null {
  const desc = item.elements.x00283002;
  const data = item.elements.x00283006;
  if (!desc || !data) return null;
  const entriesRaw = item.uint16('x00283002', 0) ?? 0;
  const entries = entriesRaw === 0 ? 65536 : entriesRaw;
  const firstMapped = signedInput ? (item.int16('x00283002', 1) ?? 0) : (item.uint16('x00283002', 1) ?? 0);
  const bits = item.uint16('x00283002', 2) ?? 16;
  const values: number[] = [];
  const n = Math.min(entries, bits > 8 ? Math.floor(data.length / 2) : data.length);
  if (bits > 8) for (let i = 0; i < n; i++) values.push(item.uint16('x00283006', i) ?? 0);
  else {
    // 8-bit entries are still stored in 16-bit words (PS3.3 C.11.1.1.1); read words and keep the low byte.
    for (let i = 0; i < Math.min(entries, Math.floor(data.length / 2)); i++) values.push((item.uint16('x00283006', i) ?? 0) & 0xff);
  }
  if (values.length < entries) return null;
  return { entries, firstMapped, bits, data: values };
}

function firstSequenceItem(ds: DataSet, tag: string): DataSet | null {
  const el = ds.elements[tag];
  return el?.items?.[0]?.dataSet ?? null;
}

/**
 * Deflated Explicit VR Little Endian: the bytes after the File Meta group are raw DEFLATE. Inflated with fflate
 * (pure JS, so browsers read these files too; dicom-parser's own Node path needs a Buffer).
 */
function inflateDataSet(bytes: Uint8Array, position: number): Uint8Array {
  const inflated = inflateSync(bytes.subarray(position));
  const out = new Uint8Array(position + inflated.length);
  out.set(bytes.subarray(0, position), 0);
  out.set(inflated, position);
  return out;
}

function syntaxName(uid: string): string {
  const name = UNCOMPRESSED_TRANSFER_SYNTAXES[uid] ?? COMPRESSED_TRANSFER_SYNTAXES[uid];
  return name ? `${uid} (${name})` : uid;
}

/**
 * Reads a DICOM file's first frame through the display pipeline. Throws DicomError naming the file for anything
 * it cannot use (not DICOM, truncated, no pixel data, unsupported transfer syntax or pixel format).
 */
export async function readDicom(bytes: Uint8Array, opts: ReadDicomOptions = {}): Promise<DicomImage> {
  const file = opts.source ?? '<DICOM bytes>';
  const fail = (problem: string): never => {
    throw new DicomError(file, problem);
  };
  if (bytes.length === 0) fail('empty file (0 bytes)');
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, isDicom(bytes) ? { inflater: inflateDataSet } : { TransferSyntaxUID: '1.2.840.10008.1.2' });
  } catch (err) {
    const msg = err instanceof Error ? err.message : typeof err === 'string' ? err : String((err as { exception?: unknown })?.exception ?? err);
    return fail(
      isDicom(bytes)
        ? `damaged or truncated DICOM file: it cannot be parsed (${msg})`
        : `not a DICOM file (no 'DICM' marker at byte 128) and not readable as a raw DICOM data set (${msg})`,
    );
  }
  const ts = ds.string('x00020010') ?? '1.2.840.10008.1.2';
  const warnings: string[] = [];
  const rows = ds.uint16('x00280010');
  const columns = ds.uint16('x00280011');
  const pixel = ds.elements.x7fe00010;
  if (!isDicom(bytes) && (!pixel || rows === undefined || columns === undefined)) {
    fail("not a DICOM file: no 'DICM' marker at byte 128, and read as a raw data set it has no image (Rows, Columns, Pixel Data)");
  }
  if (!pixel) return fail('no Pixel Data (7FE0,0010): this DICOM file holds no image');
  if (!rows || !columns) return fail(`invalid image size in the header (Rows ${rows ?? 'missing'}, Columns ${columns ?? 'missing'})`);
  const maxPixels = opts.maxPixels ?? 100_000_000;
  if (rows * columns > maxPixels) fail(`image too large: ${columns} x ${rows} exceeds the limit of ${(maxPixels / 1e6).toFixed(1)} Mpx`);
  const spp = ds.uint16('x00280002') ?? 1;
  const photometric = (ds.string('x00280004') ?? (spp === 1 ? 'MONOCHROME2' : 'RGB')).trim().toUpperCase();
  const bitsAllocated = ds.uint16('x00280100') ?? 0;
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const highBit = ds.uint16('x00280102') ?? bitsStored - 1;
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  const frames = Math.max(1, ds.intString('x00280008') ?? 1);
  if (frames > 1) warnings.push(`multi-frame file (${frames} frames): only the first frame is used`);
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    fail(`Bits Allocated ${bitsAllocated} is not supported (8 or 16 bits per sample are)`);
  }
  if (!(bitsStored >= 1 && bitsStored <= bitsAllocated && highBit >= bitsStored - 1 && highBit < bitsAllocated)) {
    fail(`inconsistent pixel layout: Bits Allocated ${bitsAllocated}, Bits Stored ${bitsStored}, High Bit ${highBit}`);
  }
  const grey1 = photometric === 'MONOCHROME1' || photometric === 'MONOCHROME2';
  if (spp === 1 && !grey1) fail(`Photometric Interpretation ${photometric} with one sample per pixel is not supported (MONOCHROME1/2 are)`);
  if (spp !== 1 && spp !== 3) fail(`${spp} samples per pixel is not supported (1 grey or 3 colour)`);
  const n = rows * columns;
  const frameBytes = (n * spp * bitsAllocated) / 8;
  let samples: Uint8Array | Uint16Array | Int16Array | null = null;
  let littleEndian = ts !== '1.2.840.10008.1.2.2';
  let rawFrame: Uint8Array | null = null;
  let decodedSpp = spp;
  if (pixel.encapsulatedPixelData) {
    const decoder = opts.decoders?.find((d) => d.transferSyntaxes.includes(ts));
    if (!decoder) {
      const supported = [...Object.keys(UNCOMPRESSED_TRANSFER_SYNTAXES), ...(opts.decoders ?? []).flatMap((d) => d.transferSyntaxes)];
      return fail(
        `transfer syntax ${syntaxName(ts)} is not supported (compressed pixel data without a decoder here); supported: ` +
          `${supported.map(syntaxName).join(', ')}. Convert the file first, e.g. 'gdcmconv --raw in.dcm out.dcm' or 'dcmdjpeg in.dcm out.dcm'`,
      );
    }
    let frame: Uint8Array;
    try {
      const fragments = pixel.fragments ?? [];
      // One frame: all its fragments. Several frames without a Basic Offset Table: one fragment per frame.
      frame = frames === 1 && fragments.length
        ? dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixel, 0, fragments.length)
        : pixel.basicOffsetTable?.length
          ? dicomParser.readEncapsulatedImageFrame(ds, pixel, 0)
          : dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixel, 0, 1);
    } catch (err) {
      return fail(`damaged compressed pixel data (${syntaxName(ts)}): ${(err as Error).message ?? String(err)}`);
    }
    try {
      const d = await decoder.decode(frame, { rows, columns, bitsAllocated, samplesPerPixel: spp, transferSyntax: ts });
      samples = d.samples;
      decodedSpp = d.samplesPerPixel;
    } catch (err) {
      return fail(`the ${syntaxName(ts)} frame cannot be decoded: ${(err as Error).message}`);
    }
    if (samples.length < n * decodedSpp) fail(`the decoded frame has ${samples.length} samples, ${n * decodedSpp} expected`);
  } else {
    if (!(ts in UNCOMPRESSED_TRANSFER_SYNTAXES)) {
      fail(`transfer syntax ${syntaxName(ts)} is not supported`);
    }
    const available = Math.min(pixel.length, ds.byteArray.length - pixel.dataOffset);
    if (available < frameBytes) {
      fail(`truncated pixel data: ${Math.max(0, available)} bytes, the first frame needs ${frameBytes} (${columns} x ${rows}, ${bitsAllocated} bits${spp > 1 ? `, ${spp} samples` : ''})`);
    }
    rawFrame = ds.byteArray.subarray(pixel.dataOffset, pixel.dataOffset + frameBytes);
    if (ts === '1.2.840.10008.1.2' && pixel.vr === undefined && bitsAllocated === 16) littleEndian = true;
  }

  const base = {
    width: columns,
    height: rows,
    transferSyntax: ts,
    photometric,
    bitsAllocated,
    bitsStored,
    signed,
    frames,
    ...(ds.string('x0020000d') ? { studyInstanceUid: ds.string('x0020000d')!.trim() } : {}),
    ...(ds.string('x0020000e') ? { seriesInstanceUid: ds.string('x0020000e')!.trim() } : {}),
    ...(ds.string('x00080018') ? { sopInstanceUid: ds.string('x00080018')!.trim() } : {}),
    ...(ds.string('x00180015') ? { bodyPart: ds.string('x00180015')!.trim() } : {}),
  };

  if (decodedSpp === 3) {
    // Colour: BT.601 luma of the (8- or 16-bit) samples, scaled by the sample range; no VOI for colour (C.11).
    const planar = rawFrame !== null && (ds.uint16('x00280006') ?? 0) === 1;
    const maxValue = bitsAllocated === 16 ? 65535 : 255;
    const src: ArrayLike<number> = rawFrame
      ? bitsAllocated === 8
        ? rawFrame
        : storedValues(rawFrame, n * 3, { bitsAllocated: 16, bitsStored: 16, highBit: 15, signed: false, littleEndian })
      : samples!;
    const grey = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const [r, g, b] = planar ? [src[i]!, src[n + i]!, src[2 * n + i]!] : [src[3 * i]!, src[3 * i + 1]!, src[3 * i + 2]!];
      grey[i] = (r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b) / maxValue;
    }
    return { ...base, grey, rescale: null, voi: null, inverted: false, warnings };
  }

  const layout: StoredLayout = { bitsAllocated: bitsAllocated as 8 | 16, bitsStored, highBit, signed, littleEndian };
  let stored: Int32Array;
  if (rawFrame) stored = storedValues(rawFrame, n, layout);
  else {
    // A codec hands back decoded samples: apply Bits Stored / sign the same way.
    stored = new Int32Array(n);
    const mask = bitsStored >= 32 ? 0xffffffff : (1 << bitsStored) - 1;
    for (let i = 0; i < n; i++) {
      let v = samples![i * decodedSpp]! & mask;
      if (signed && v & (1 << (bitsStored - 1))) v -= 1 << bitsStored;
      stored[i] = v;
    }
  }
  const slope = ds.floatString('x00281053');
  const intercept = ds.floatString('x00281052');
  const rescaleParams = slope !== undefined || intercept !== undefined ? { slope: slope ?? 1, intercept: intercept ?? 0 } : null;
  if (rescaleParams && !(Number.isFinite(rescaleParams.slope) && Number.isFinite(rescaleParams.intercept))) {
    fail(`Rescale Slope/Intercept are not numbers (${ds.string('x00281053')}, ${ds.string('x00281052')})`);
  }
  const modalityItem = firstSequenceItem(ds, 'x00283000');
  const modalityLut = modalityItem ? readLut(modalityItem, signed) : null;
  if (modalityItem && !modalityLut) warnings.push('the Modality LUT Sequence is incomplete and was ignored');
  const voiItem = firstSequenceItem(ds, 'x00283010');
  // A VOI LUT's input is the Modality LUT's output: signed when it can be negative.
  const voiLut = voiItem ? readLut(voiItem, signed || (rescaleParams?.intercept ?? 0) < 0) : null;
  if (voiItem && !voiLut) warnings.push('the VOI LUT Sequence is incomplete and was ignored');
  let window: DisplayParams['window'] = null;
  const wc = ds.floatString('x00281050', 0);
  const ww = ds.floatString('x00281051', 0);
  if (wc !== undefined && ww !== undefined) {
    const fnName = (ds.string('x00281056') ?? 'LINEAR').trim().toUpperCase();
    const fn: VoiFunction = fnName === 'LINEAR_EXACT' || fnName === 'SIGMOID' ? fnName : 'LINEAR';
    if (fnName !== fn) warnings.push(`unknown VOI LUT Function '${fnName}'; LINEAR used`);
    if (!Number.isFinite(wc) || !Number.isFinite(ww)) warnings.push('Window Center/Width are not numbers; ignored');
    else if (fn === 'LINEAR' ? ww < 1 : ww <= 0) warnings.push(`Window Width ${ww} is invalid for ${fn} (C.11.2.1.2); ignored`);
    else window = { center: wc, width: ww, function: fn };
  } else if (wc !== undefined || ww !== undefined) {
    warnings.push('only one of Window Center/Width is present; ignored');
  }
  const shape = (ds.string('x20500020') ?? '').trim().toUpperCase();
  const invert = photometric === 'MONOCHROME1' || shape === 'INVERSE';
  const { grey, voi } = displayGrey(stored, { layout, rescale: rescaleParams, modalityLut, voiLut, window, invert });
  return { ...base, grey, rescale: rescaleParams, voi, inverted: invert, warnings };
}
