/**
 * Writes small DICOM Part 10 files byte by byte (PS3.5 / PS3.10), independently of the reader under test: a
 * 128-byte preamble, 'DICM', the File Meta group (explicit VR little endian) and a data set in the chosen
 * transfer syntax (implicit VR LE, explicit VR LE or explicit VR big endian; encapsulated pixel data for
 * compressed syntaxes).
 */
import { deflateRawSync } from 'node:zlib';

export type Vr = 'UI' | 'CS' | 'DS' | 'IS' | 'LO' | 'SH' | 'PN' | 'DA' | 'TM' | 'US' | 'SS' | 'UL' | 'OB' | 'OW' | 'SQ';

export interface DicomElement {
  group: number;
  element: number;
  vr: Vr;
  /** Strings for text VRs ('\\' joins values), numbers for US/SS/UL, bytes for OB/OW (already in the target byte order), items for SQ. */
  value: string | number[] | Uint8Array | DicomElement[][];
}

export const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflatedLE: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegLossless: '1.2.840.10008.1.2.4.70',
  jpeg2000: '1.2.840.10008.1.2.4.90',
} as const;

const LONG_VRS = new Set(['OB', 'OW', 'SQ', 'UN', 'UT']);

class Out {
  private readonly parts: number[] = [];
  constructor(readonly le: boolean) {}
  u8(...b: number[]): void {
    this.parts.push(...b);
  }
  u16(v: number): void {
    this.le ? this.u8(v & 0xff, (v >> 8) & 0xff) : this.u8((v >> 8) & 0xff, v & 0xff);
  }
  u32(v: number): void {
    const b = [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
    this.u8(...(this.le ? b : b.reverse()));
  }
  bytes(b: Uint8Array): void {
    for (const x of b) this.parts.push(x);
  }
  get length(): number {
    return this.parts.length;
  }
  toBytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function valueBytes(e: DicomElement, le: boolean, explicit: boolean): Uint8Array {
  if (e.value instanceof Uint8Array) return e.value.length % 2 ? Uint8Array.from([...e.value, 0]) : e.value;
  if (typeof e.value === 'string') {
    const pad = e.vr === 'UI' ? 0 : 0x20;
    const b = [...new TextEncoder().encode(e.value)];
    if (b.length % 2) b.push(pad);
    return Uint8Array.from(b);
  }
  if (e.vr === 'SQ') {
    const o = new Out(le);
    for (const item of e.value as DicomElement[][]) {
      const body = encodeElements(item, le, explicit);
      o.u16(0xfffe);
      o.u16(0xe000);
      o.u32(body.length);
      o.bytes(body);
    }
    return o.toBytes();
  }
  const o = new Out(le);
  for (const v of e.value as number[]) {
    if (e.vr === 'US' || e.vr === 'SS') o.u16(v & 0xffff);
    else o.u32(v >>> 0);
  }
  return o.toBytes();
}

export function encodeElements(elements: readonly DicomElement[], le: boolean, explicit: boolean): Uint8Array {
  const o = new Out(le);
  const sorted = [...elements].sort((a, b) => a.group - b.group || a.element - b.element);
  for (const e of sorted) {
    const v = valueBytes(e, le, explicit);
    o.u16(e.group);
    o.u16(e.element);
    if (explicit) {
      o.u8(e.vr.charCodeAt(0), e.vr.charCodeAt(1));
      if (LONG_VRS.has(e.vr)) {
        o.u8(0, 0);
        o.u32(v.length);
      } else o.u16(v.length);
    } else o.u32(v.length);
    o.bytes(v);
  }
  return o.toBytes();
}

/** Encapsulated pixel data (PS3.5 A.4): an empty basic offset table, then one fragment per frame. */
export function encapsulate(frames: Uint8Array[]): Uint8Array {
  const o = new Out(true);
  const item = (b: Uint8Array) => {
    o.u16(0xfffe);
    o.u16(0xe000);
    const padded = b.length % 2 ? Uint8Array.from([...b, 0]) : b;
    o.u32(padded.length);
    o.bytes(padded);
  };
  item(new Uint8Array(0));
  for (const f of frames) item(f);
  o.u16(0xfffe);
  o.u16(0xe0dd);
  o.u32(0);
  return o.toBytes();
}

export interface ImageSpec {
  rows: number;
  columns: number;
  bitsAllocated: 8 | 16;
  bitsStored?: number;
  highBit?: number;
  signed?: boolean;
  photometric?: 'MONOCHROME1' | 'MONOCHROME2' | 'RGB';
  samplesPerPixel?: number;
  /** Stored values, row-major (two's complement for signed). */
  pixels?: ArrayLike<number>;
  /** Raw Pixel Data bytes instead of `pixels` (e.g. encapsulated). */
  pixelBytes?: Uint8Array;
  transferSyntax?: string;
  window?: { center: number; width: number; function?: string };
  rescale?: { slope: number; intercept: number };
  studyUid?: string;
  /** Extra data set elements. */
  extra?: DicomElement[];
}

/** A complete DICOM Part 10 file. */
export function writeDicom(spec: ImageSpec): Uint8Array {
  const ts = spec.transferSyntax ?? TS.explicitLE;
  const le = ts !== TS.explicitBE;
  const explicit = ts !== TS.implicitLE;
  const bitsStored = spec.bitsStored ?? spec.bitsAllocated;
  const ds: DicomElement[] = [
    { group: 0x0008, element: 0x0016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.1.1' },
    { group: 0x0008, element: 0x0018, vr: 'UI', value: '1.2.826.0.1.3680043.9.7.1.1' },
    { group: 0x0028, element: 0x0002, vr: 'US', value: [spec.samplesPerPixel ?? 1] },
    { group: 0x0028, element: 0x0004, vr: 'CS', value: spec.photometric ?? 'MONOCHROME2' },
    { group: 0x0028, element: 0x0010, vr: 'US', value: [spec.rows] },
    { group: 0x0028, element: 0x0011, vr: 'US', value: [spec.columns] },
    { group: 0x0028, element: 0x0100, vr: 'US', value: [spec.bitsAllocated] },
    { group: 0x0028, element: 0x0101, vr: 'US', value: [bitsStored] },
    { group: 0x0028, element: 0x0102, vr: 'US', value: [spec.highBit ?? bitsStored - 1] },
    { group: 0x0028, element: 0x0103, vr: 'US', value: [spec.signed ? 1 : 0] },
    ...(spec.studyUid ? [{ group: 0x0020, element: 0x000d, vr: 'UI' as const, value: spec.studyUid }] : []),
    ...(spec.window
      ? [
          { group: 0x0028, element: 0x1050, vr: 'DS' as const, value: String(spec.window.center) },
          { group: 0x0028, element: 0x1051, vr: 'DS' as const, value: String(spec.window.width) },
          ...(spec.window.function ? [{ group: 0x0028, element: 0x1056, vr: 'CS' as const, value: spec.window.function }] : []),
        ]
      : []),
    ...(spec.rescale
      ? [
          { group: 0x0028, element: 0x1052, vr: 'DS' as const, value: String(spec.rescale.intercept) },
          { group: 0x0028, element: 0x1053, vr: 'DS' as const, value: String(spec.rescale.slope) },
        ]
      : []),
  ];
  // Extra elements replace the defaults of the same tag (e.g. another SOP Instance UID).
  const extra = spec.extra ?? [];
  const overridden = (e: DicomElement) => extra.some((x) => x.group === e.group && x.element === e.element);
  ds.splice(0, ds.length, ...ds.filter((e) => !overridden(e)), ...extra);
  const sopInstance = extra.find((x) => x.group === 0x0008 && x.element === 0x0018)?.value;
  const sopClass = extra.find((x) => x.group === 0x0008 && x.element === 0x0016)?.value;
  let pixelBytes = spec.pixelBytes;
  if (!pixelBytes) {
    const px = spec.pixels!;
    const o = new Out(le);
    for (let i = 0; i < px.length; i++) {
      if (spec.bitsAllocated === 8) o.u8(px[i]! & 0xff);
      else o.u16(px[i]! & 0xffff);
    }
    pixelBytes = o.toBytes();
  }
  // Every JPEG-family syntax (1.2.840.10008.1.2.4.x) and RLE (1.2.840.10008.1.2.5) is encapsulated (PS3.5 A.4).
  const encapsulated = ts.startsWith('1.2.840.10008.1.2.4.') || ts === '1.2.840.10008.1.2.5';
  const pixelEl: DicomElement = { group: 0x7fe0, element: 0x0010, vr: spec.bitsAllocated === 8 || encapsulated ? 'OB' : 'OW', value: pixelBytes };
  let body: Uint8Array;
  if (encapsulated) {
    // Undefined length (0xFFFFFFFF) with the encapsulated items, explicit VR little endian.
    const head = encodeElements(ds, true, true);
    const o = new Out(true);
    o.bytes(head);
    o.u16(0x7fe0);
    o.u16(0x0010);
    o.u8(0x4f, 0x42, 0, 0);
    o.u32(0xffffffff);
    o.bytes(pixelBytes);
    body = o.toBytes();
  } else body = encodeElements([...ds, pixelEl], le, explicit);
  // Deflated explicit VR little endian: the data set after the File Meta group is raw DEFLATE (RFC 1951).
  if (ts === TS.deflatedLE) body = new Uint8Array(deflateRawSync(body));
  const metaElements: DicomElement[] = [
    { group: 0x0002, element: 0x0001, vr: 'OB', value: Uint8Array.from([0, 1]) },
    { group: 0x0002, element: 0x0002, vr: 'UI', value: typeof sopClass === 'string' ? sopClass : '1.2.840.10008.5.1.4.1.1.1.1' },
    { group: 0x0002, element: 0x0003, vr: 'UI', value: typeof sopInstance === 'string' ? sopInstance : '1.2.826.0.1.3680043.9.7.1.1' },
    { group: 0x0002, element: 0x0010, vr: 'UI', value: ts },
  ];
  const meta = encodeElements(metaElements, true, true);
  const groupLength = encodeElements([{ group: 0x0002, element: 0x0000, vr: 'UL', value: [meta.length] }], true, true);
  const out = new Uint8Array(132 + groupLength.length + meta.length + body.length);
  out.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.set(groupLength, 132);
  out.set(meta, 132 + groupLength.length);
  out.set(body, 132 + groupLength.length + meta.length);
  return out;
}
