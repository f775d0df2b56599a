/**
 * DICOM files -> a header (./header.ts), the header gate (./gate.ts), one frame's stored values (uncompressed, or
 * through a codec in ./codecs), and greyscale in [0, 1] through the PS3.3 C.11 display pipeline (./display.ts), so
 * that the grey image is what a DICOM viewer shows by default; then the usual preprocessing follows. RGB/YBR files
 * (rare for radiographs) become grey by BT.601 luma, as PNG/JPEG do.
 *
 * Files are parsed by dicom-parser (cornerstonejs; chosen over dcmjs: no dependencies, 40 kB, parse-only, and
 * faster here — see docs/dicom.md). Uncompressed transfer syntaxes (implicit/explicit VR little endian, explicit
 * big endian, deflated) are read directly; encapsulated (compressed) frames go to the `DicomFrameDecoder`s given
 * (`createFrameDecoders` in ./codecs; the Node host's list is ./node-codecs.ts); any other is refused with an
 * error naming the file and its transfer syntax.
 *
 * Multi-frame files: one frame is read, the first unless `frame` says otherwise, and a warning says so (a
 * radiograph is one frame; a multi-frame CR/DX is unusual enough to be worth a look).
 *
 * Browser-safe: no `node:` imports.
 */
import * as dicomParserNs from 'dicom-parser';
import { inflateSync } from 'fflate';
import { EXIT_USAGE, NextrayError } from '../../util/errors.js';
import { decodableSyntaxes } from './codecs/index.js';
import { CodecError, type DicomFrameDecoder } from './codecs/types.js';
import { displayGrey, storedValues, type DisplayParams, type Lut, type StoredLayout, type VoiApplied, type VoiFunction } from './display.js';
import { gateHeader } from './gate.js';
import { headerOf, type DataSet, type DicomHeader } from './header.js';
import { syntaxName, TS, UNCOMPRESSED_TRANSFER_SYNTAXES } from './transfer-syntax.js';

// dicom-parser is a UMD bundle: Node's ESM loader exposes it as the default export only, bundlers as either.
const dicomParser: typeof dicomParserNs = (dicomParserNs as unknown as { default?: typeof dicomParserNs }).default ?? dicomParserNs;

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

/** A readable DICOM object that the header gate refuses (not a radiograph, no image); `problem` gives the reason. */
export class DicomRefusedError extends DicomError {
  constructor(file: string, problem: string) {
    super(file, problem);
    this.name = 'DicomRefusedError';
  }
}

export interface ReadDicomOptions {
  /** Names the file in errors (default '<DICOM bytes>'). */
  source?: string;
  /** Frame decoders for compressed transfer syntaxes (e.g. `createFrameDecoders(loaders)`); none by default. */
  decoders?: readonly DicomFrameDecoder[];
  /** Refuse images with more pixels than this (default 100 Mpx, as for PNG/JPEG). */
  maxPixels?: number;
  /** Which frame of a multi-frame file (default 0, with a warning when there are more). */
  frame?: number;
  /** Apply the header gate (default true): refuse non-radiographs before decoding, warn on other body parts. */
  gate?: boolean;
}

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
  /** The frame read. */
  frame: number;
  header: DicomHeader;
  warnings: string[];
}

/** One frame's stored values: Bits Stored bits at High Bit, sign-extended when signed; pixel-interleaved for colour. */
export interface StoredFrame {
  values: Int32Array;
  samplesPerPixel: number;
  rows: number;
  columns: number;
  /** Photometric Interpretation of `values` (a decoded JPEG's YBR_FULL_422 comes back as RGB). */
  photometric: string;
  frame: number;
}

/** A parsed file: its header and dicom-parser's index of it (for the pixel data). */
export interface ParsedDicom {
  source: string;
  header: DicomHeader;
  /** dicom-parser's data set; internal to this module and its tests. */
  dataSet: DataSet;
  /** The file is Part 10 (preamble + 'DICM'), not a bare data set. */
  part10: boolean;
}

/** Whether bytes start like a DICOM Part 10 file (128-byte preamble, then 'DICM'). */
export function isDicom(head: Uint8Array): boolean {
  return head.length >= 132 && head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43 && head[131] === 0x4d;
}

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

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : typeof err === 'string' ? err : String((err as { exception?: unknown })?.exception ?? err);
}

/**
 * Parses a DICOM file (Part 10, or a bare implicit-VR data set) and reads its header. Throws DicomError naming the
 * file when it is empty, not DICOM or cannot be parsed (truncated, damaged).
 */
export function parseDicom(bytes: Uint8Array, opts: { source?: string } = {}): ParsedDicom {
  const source = opts.source ?? '<DICOM bytes>';
  if (bytes.length === 0) throw new DicomError(source, 'empty file (0 bytes)');
  const part10 = isDicom(bytes);
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, part10 ? { inflater: inflateDataSet } : { TransferSyntaxUID: TS.implicitLE });
  } catch (err) {
    throw new DicomError(
      source,
      part10
        ? `damaged or truncated DICOM file: it cannot be parsed (${errorText(err)})`
        : `not a DICOM file (no 'DICM' marker at byte 128) and not readable as a raw DICOM data set (${errorText(err)})`,
    );
  }
  const header = headerOf(ds, (ds.string('x00020010') ?? TS.implicitLE).trim());
  if (!part10 && (!header.pixel.present || header.pixel.rows === undefined || header.pixel.columns === undefined)) {
    throw new DicomError(source, "not a DICOM file: no 'DICM' marker at byte 128, and read as a raw data set it has no image (Rows, Columns, Pixel Data)");
  }
  return { source, header, dataSet: ds, part10 };
}

/** The header of a DICOM file, without decoding pixels (see parseDicom for the errors). */
export function readDicomHeader(bytes: Uint8Array, opts: { source?: string } = {}): DicomHeader {
  return parseDicom(bytes, opts).header;
}

/** Throws DicomRefusedError when the gate refuses the header; else returns its warnings. */
export function applyGate(p: ParsedDicom): string[] {
  const v = gateHeader(p.header);
  if (!v.accepted) throw new DicomRefusedError(p.source, v.reason);
  return v.warnings;
}

/** The bytes of compressed frame `k` (all its fragments). */
function encapsulatedFrame(p: ParsedDicom, k: number): Uint8Array {
  const ds = p.dataSet;
  const pixel = ds.elements.x7fe00010!;
  const fragments = pixel.fragments ?? [];
  const frames = p.header.pixel.frames;
  if (!fragments.length) throw new CodecError('the encapsulated Pixel Data has no fragments');
  if (frames === 1) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixel, 0, fragments.length);
  if (pixel.basicOffsetTable?.length) return dicomParser.readEncapsulatedImageFrame(ds, pixel, k);
  if (fragments.length === frames) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, pixel, k, 1);
  // Several fragments per frame and no offset table: JPEG frames are found by their start-of-image markers.
  if (p.header.transferSyntax.startsWith('1.2.840.10008.1.2.4.')) {
    const table = dicomParser.createJPEGBasicOffsetTable(ds, pixel);
    return dicomParser.readEncapsulatedImageFrame(ds, pixel, k, table);
  }
  throw new CodecError(`${fragments.length} fragments for ${frames} frames and no Basic Offset Table: the frames cannot be told apart`);
}

function maskSigned(raw: ArrayLike<number>, count: number, stride: number, offset: number, bitsStored: number, signed: boolean, out: Int32Array, outStride: number, outOffset: number): void {
  const mask = bitsStored >= 32 ? 0xffffffff : (1 << bitsStored) - 1;
  const sign = 1 << (bitsStored - 1);
  const full = 2 ** bitsStored;
  for (let i = 0; i < count; i++) {
    let v = raw[i * stride + offset]! & mask;
    if (signed && v & sign) v -= full;
    out[i * outStride + outOffset] = v;
  }
}

/**
 * Decodes one frame to stored values (see StoredFrame). Checks the pixel layout the reader supports (8 or 16 bits
 * allocated; MONOCHROME1/2 with one sample, RGB or YBR_FULL(_422) with three) and the size limit. Throws
 * DicomError naming the file.
 */
const JPEG_FAMILY: ReadonlySet<string> = new Set([TS.jpegBaseline, TS.jpegExtended, TS.jpegLossless, TS.jpegLosslessSV1, TS.jpegLsLossless, TS.jpegLsNearLossless]);

/**
 * Whether a JPEG codestream ends with EOI (0xFFD9). Encoders pad an odd frame with 0x00 or 0xFF (pydicom's
 * JPEG-lossy.dcm ends FF D9 FF), so the marker is looked for in the last 16 bytes: inside entropy-coded data 0xFF is
 * followed only by 0x00 or a restart marker, so FF D9 there can only be the end.
 */
function endsWithEoi(b: Uint8Array): boolean {
  for (let i = b.length - 2; i >= Math.max(0, b.length - 16); i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
  return false;
}

export async function decodeStoredFrame(p: ParsedDicom, opts: { frame?: number; decoders?: readonly DicomFrameDecoder[]; maxPixels?: number } = {}): Promise<StoredFrame> {
  const file = p.source;
  const fail = (problem: string): never => {
    throw new DicomError(file, problem);
  };
  const h = p.header;
  const px = h.pixel;
  const ts = h.transferSyntax;
  if (!px.present) return fail('no Pixel Data (7FE0,0010): this DICOM file holds no image');
  const rows = px.rows ?? 0;
  const columns = px.columns ?? 0;
  if (!rows || !columns) return fail(`invalid image size in the header (Rows ${px.rows ?? 'missing'}, Columns ${px.columns ?? 'missing'})`);
  const maxPixels = opts.maxPixels ?? 100_000_000;
  if (rows * columns > maxPixels) fail(`image too large: ${columns} x ${rows} exceeds the limit of ${(maxPixels / 1e6).toFixed(1)} Mpx`);
  const spp = px.samplesPerPixel;
  const bitsAllocated = px.bitsAllocated ?? 0;
  const bitsStored = px.bitsStored ?? bitsAllocated;
  const highBit = px.highBit ?? bitsStored - 1;
  const photometric = px.photometric ?? (spp === 1 ? 'MONOCHROME2' : 'RGB');
  const frame = opts.frame ?? 0;
  if (!Number.isInteger(frame) || frame < 0 || frame >= px.frames) fail(`frame ${frame} does not exist (the file has ${px.frames})`);
  if (bitsAllocated !== 8 && bitsAllocated !== 16) fail(`Bits Allocated ${bitsAllocated} is not supported (8 or 16 bits per sample are)`);
  if (!(bitsStored >= 1 && bitsStored <= bitsAllocated && highBit >= bitsStored - 1 && highBit < bitsAllocated)) {
    fail(`inconsistent pixel layout: Bits Allocated ${bitsAllocated}, Bits Stored ${bitsStored}, High Bit ${highBit}`);
  }
  const mono = photometric === 'MONOCHROME1' || photometric === 'MONOCHROME2';
  const colour = photometric === 'RGB' || photometric.startsWith('YBR_');
  if (spp === 1 && !mono) fail(`Photometric Interpretation ${photometric} with one sample per pixel is not supported (MONOCHROME1/2 are)`);
  if (spp !== 1 && !(spp === 3 && colour)) fail(`${spp} samples per pixel with Photometric Interpretation ${photometric} is not supported (1 grey sample, or 3 RGB/YBR)`);
  const n = rows * columns;
  const ds = p.dataSet;
  const pixel = ds.elements.x7fe00010!;
  const values = new Int32Array(n * spp);
  if (pixel.encapsulatedPixelData) {
    const decoder = opts.decoders?.find((d) => d.transferSyntaxes.includes(ts));
    if (!decoder) {
      const supported = [...Object.keys(UNCOMPRESSED_TRANSFER_SYNTAXES), ...decodableSyntaxes(opts.decoders ?? [])];
      return fail(
        `transfer syntax ${syntaxName(ts)} is not supported (compressed pixel data without a decoder here); supported: ` +
          `${supported.map(syntaxName).join(', ')}. Convert the file first, e.g. 'gdcmconv --raw in.dcm out.dcm' or 'dcmdjpeg in.dcm out.dcm'`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = encapsulatedFrame(p, frame);
    } catch (err) {
      return fail(`damaged compressed pixel data (${syntaxName(ts)}): ${errorText(err)}`);
    }
    // A JPEG-family frame (it starts with SOI; anything else the codec names) ends with the EOI marker: without it the
    // data was cut short, and the codecs would fill the rest of the image from their state rather than fail.
    if (JPEG_FAMILY.has(ts) && bytes[0] === 0xff && bytes[1] === 0xd8 && !endsWithEoi(bytes)) {
      return fail(`damaged compressed pixel data (${syntaxName(ts)}): the frame ends without the JPEG end-of-image marker (FFD9), so it was cut short (a truncated instance)`);
    }
    let d;
    try {
      d = await decoder.decode(bytes, { rows, columns, bitsAllocated, bitsStored, signed: px.signed, samplesPerPixel: spp, photometric, planarConfiguration: px.planarConfiguration, transferSyntax: ts });
    } catch (err) {
      return fail(`the ${syntaxName(ts)} frame cannot be decoded: ${errorText(err)}`);
    }
    if (d.samples.length < n * d.samplesPerPixel) fail(`the decoded frame has ${d.samples.length} samples, ${n * d.samplesPerPixel} expected`);
    if (spp === 1 && d.samplesPerPixel === 3) {
      // A grey image whose JPEG was written with three components (some converters do): BT.601 luma, which is the
      // sample itself when R = G = B.
      const s = d.samples;
      const grey = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const [r, g, b] = [s[3 * i]!, s[3 * i + 1]!, s[3 * i + 2]!];
        grey[i] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
      }
      maskSigned(grey, n, 1, 0, bitsStored, px.signed, values, 1, 0);
      return { values, samplesPerPixel: 1, rows, columns, photometric, frame };
    }
    if (d.samplesPerPixel !== spp) fail(`the decoded frame has ${d.samplesPerPixel} sample(s) per pixel, the header says ${spp}`);
    maskSigned(d.samples, n * spp, 1, 0, bitsStored, px.signed, values, 1, 0);
    // JPEG codecs turn YCbCr into RGB; RLE and JPEG-LS hand back what was stored.
    const converted = spp === 3 && (ts === TS.jpegBaseline || ts === TS.jpegExtended || ts === TS.jpeg2000 || ts === TS.jpeg2000Lossless);
    return { values, samplesPerPixel: spp, rows, columns, photometric: converted ? 'RGB' : photometric, frame };
  }
  if (!(ts in UNCOMPRESSED_TRANSFER_SYNTAXES)) fail(`transfer syntax ${syntaxName(ts)} is not supported`);
  // Uncompressed YBR_FULL_422 stores two luma samples and one Cb, Cr pair per two pixels (PS3.3 C.7.6.3.1.2).
  const ybr422 = photometric === 'YBR_FULL_422';
  const frameBytes = ybr422 ? n * 2 * (bitsAllocated / 8) : (n * spp * bitsAllocated) / 8;
  const start = pixel.dataOffset + frame * frameBytes;
  const available = Math.min(pixel.length - frame * frameBytes, ds.byteArray.length - start);
  if (available < frameBytes) {
    fail(`truncated pixel data: ${Math.max(0, available)} bytes, frame ${frame + 1} needs ${frameBytes} (${columns} x ${rows}, ${bitsAllocated} bits${spp > 1 ? `, ${spp} samples` : ''})`);
  }
  const raw = ds.byteArray.subarray(start, start + frameBytes);
  // Implicit VR 16-bit data read without a VR is little endian; only explicit big endian swaps.
  const layout: StoredLayout = { bitsAllocated: bitsAllocated as 8 | 16, bitsStored, highBit, signed: px.signed, littleEndian: ts !== TS.explicitBE };
  if (ybr422) {
    const all = storedValues(raw, n * 2, layout);
    const out = new Int32Array(n * 3);
    for (let i = 0; i < n; i++) {
      const g = 4 * (i >> 1);
      out[3 * i] = all[g + (i & 1)]!;
      out[3 * i + 1] = all[g + 2]!;
      out[3 * i + 2] = all[g + 3]!;
    }
    return { values: out, samplesPerPixel: 3, rows, columns, photometric: 'YBR_FULL', frame };
  }
  const stored = storedValues(raw, n * spp, layout);
  if (spp === 3 && px.planarConfiguration === 1) {
    for (let s = 0; s < 3; s++) for (let i = 0; i < n; i++) values[3 * i + s] = stored[s * n + i]!;
    return { values, samplesPerPixel: 3, rows, columns, photometric, frame };
  }
  return { values: stored, samplesPerPixel: spp, rows, columns, photometric, frame };
}

/**
 * Reads a DICOM file's frame (the first by default) through the header gate and the display pipeline. Throws
 * DicomRefusedError when the gate refuses it, DicomError naming the file for anything it cannot use (not DICOM,
 * truncated, no pixel data, unsupported transfer syntax or pixel format).
 */
export async function readDicom(bytes: Uint8Array, opts: ReadDicomOptions = {}): Promise<DicomImage> {
  const p = parseDicom(bytes, opts.source !== undefined ? { source: opts.source } : {});
  const ds = p.dataSet;
  const h = p.header;
  const warnings = opts.gate === false ? [] : applyGate(p);
  const frames = h.pixel.frames;
  if (frames > 1 && opts.frame === undefined) warnings.push(`multi-frame file (${frames} frames): only the first frame is used`);
  const sf = await decodeStoredFrame(p, {
    ...(opts.frame !== undefined ? { frame: opts.frame } : {}),
    ...(opts.decoders ? { decoders: opts.decoders } : {}),
    ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}),
  });
  const { rows, columns } = sf;
  const n = rows * columns;
  const bitsAllocated = h.pixel.bitsAllocated!;
  const bitsStored = h.pixel.bitsStored ?? bitsAllocated;
  const signed = h.pixel.signed;
  const photometric = h.pixel.photometric ?? (h.pixel.samplesPerPixel === 1 ? 'MONOCHROME2' : 'RGB');
  const base = {
    width: columns,
    height: rows,
    transferSyntax: h.transferSyntax,
    photometric,
    bitsAllocated,
    bitsStored,
    signed,
    frames,
    frame: sf.frame,
    header: h,
    ...(h.studyInstanceUid ? { studyInstanceUid: h.studyInstanceUid } : {}),
    ...(h.seriesInstanceUid ? { seriesInstanceUid: h.seriesInstanceUid } : {}),
    ...(h.sopInstanceUid ? { sopInstanceUid: h.sopInstanceUid } : {}),
    ...(h.bodyPartExamined ? { bodyPart: h.bodyPartExamined } : {}),
  };

  if (sf.samplesPerPixel === 3) {
    // Colour: BT.601 luma scaled by the sample range (Y itself for YBR_FULL); no VOI for colour (C.11).
    const maxValue = 2 ** bitsStored - 1;
    const v = sf.values;
    const grey = new Float32Array(n);
    const ybr = sf.photometric.startsWith('YBR_');
    for (let i = 0; i < n; i++) {
      const [r, g, b] = [v[3 * i]!, v[3 * i + 1]!, v[3 * i + 2]!];
      grey[i] = (ybr || (r === g && g === b) ? r : 0.299 * r + 0.587 * g + 0.114 * b) / maxValue;
    }
    return { ...base, grey, rescale: null, voi: null, inverted: false, warnings };
  }

  const layout: StoredLayout = { bitsAllocated: bitsAllocated as 8 | 16, bitsStored, highBit: h.pixel.highBit ?? bitsStored - 1, signed, littleEndian: true };
  const fail = (problem: string): never => {
    throw new DicomError(p.source, problem);
  };
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
  const { grey, voi } = displayGrey(sf.values, { layout, rescale: rescaleParams, modalityLut, voiLut, window, invert });
  return { ...base, grey, rescale: rescaleParams, voi, inverted: invert, warnings };
}
