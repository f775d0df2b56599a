/**
 * A small DICOM writer for the objects neXt-Ray creates (the results SR): a data set as a list of elements, encoded
 * explicit VR little endian with defined lengths (PS3.5 7.1.2, 7.5), and a Part 10 file around it (PS3.10 7.1:
 * 128-byte preamble, 'DICM', the File Meta group). Bytes out, no file system: browser-safe.
 *
 * Text values are strings of one character per byte (as dicom-parser reads them), so values copied from a source
 * file keep their bytes under the source's Specific Character Set; text written by neXt-Ray itself is ASCII.
 */

export type Vr = 'AE' | 'AS' | 'CS' | 'DA' | 'DS' | 'DT' | 'IS' | 'LO' | 'LT' | 'PN' | 'SH' | 'ST' | 'TM' | 'UI' | 'UT' | 'UC' | 'UR' | 'US' | 'UL' | 'SS' | 'SL' | 'FL' | 'FD' | 'OB' | 'OW' | 'SQ';

/** One data element; `tag` is group << 16 | element. */
export interface DicomElement {
  tag: number;
  vr: Vr;
  /** Text VRs: a string ('\\' separates values); US/UL/SS/SL/FL/FD: numbers; OB/OW: bytes; SQ: items. */
  value: string | readonly number[] | Uint8Array | readonly DicomItem[];
}

export type DicomItem = readonly DicomElement[];

/** The element tag as group << 16 | element. */
export const tag = (group: number, element: number): number => ((group << 16) | element) >>> 0;

const LONG_VRS = new Set<Vr>(['OB', 'OW', 'SQ', 'UT', 'UC', 'UR']);

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

class ByteSink {
  private chunks: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u16(v: number): void {
    this.bytes(Uint8Array.of(v & 0xff, (v >>> 8) & 0xff));
  }
  u32(v: number): void {
    this.bytes(Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

function textBytes(s: string, vr: Vr): Uint8Array {
  const out = new Uint8Array(s.length + (s.length % 2));
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`a ${vr} value holds the character U+${c.toString(16)}: text must be bytes (one character per byte)`);
    out[i] = c;
  }
  // PS3.5 6.2: UI values are padded with NUL, other text with a space.
  if (s.length % 2) out[s.length] = vr === 'UI' ? 0 : 0x20;
  return out;
}

function valueBytes(e: DicomElement): Uint8Array {
  const v = e.value;
  if (e.vr === 'SQ') {
    const sink = new ByteSink();
    for (const item of v as readonly DicomItem[]) {
      const body = encodeDataSet(item);
      sink.u16(0xfffe);
      sink.u16(0xe000);
      sink.u32(body.length);
      sink.bytes(body);
    }
    return sink.concat();
  }
  if (v instanceof Uint8Array) {
    if (v.length % 2 === 0) return v;
    const padded = new Uint8Array(v.length + 1);
    padded.set(v);
    return padded;
  }
  if (typeof v === 'string') return textBytes(v, e.vr);
  const nums = v as readonly number[];
  const size = e.vr === 'US' || e.vr === 'SS' ? 2 : e.vr === 'FD' ? 8 : 4;
  const out = new Uint8Array(nums.length * size);
  const dv = new DataView(out.buffer);
  nums.forEach((n, i) => {
    if (e.vr === 'US') dv.setUint16(i * 2, n, true);
    else if (e.vr === 'SS') dv.setInt16(i * 2, n, true);
    else if (e.vr === 'UL') dv.setUint32(i * 4, n, true);
    else if (e.vr === 'SL') dv.setInt32(i * 4, n, true);
    else if (e.vr === 'FL') dv.setFloat32(i * 4, n, true);
    else if (e.vr === 'FD') dv.setFloat64(i * 8, n, true);
    else throw new RangeError(`numbers given for VR ${e.vr}`);
  });
  return out;
}

/** A data set, explicit VR little endian, elements in tag order (PS3.5 7.1.2), sequences with defined lengths. */
export function encodeDataSet(elements: readonly DicomElement[]): Uint8Array {
  const sorted = [...elements].sort((a, b) => a.tag - b.tag);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.tag === sorted[i - 1]!.tag) throw new RangeError(`element (${hexTag(sorted[i]!.tag)}) given twice`);
  }
  const sink = new ByteSink();
  for (const e of sorted) {
    const v = valueBytes(e);
    sink.u16(e.tag >>> 16);
    sink.u16(e.tag & 0xffff);
    sink.bytes(Uint8Array.of(e.vr.charCodeAt(0), e.vr.charCodeAt(1)));
    if (LONG_VRS.has(e.vr)) {
      sink.u16(0);
      sink.u32(v.length);
    } else {
      if (v.length > 0xffff) throw new RangeError(`element (${hexTag(e.tag)}) ${e.vr} is ${v.length} bytes, more than a short-length VR holds`);
      sink.u16(v.length);
    }
    sink.bytes(v);
  }
  return sink.concat();
}

export function hexTag(t: number): string {
  const h = (t >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `${h.slice(0, 4)},${h.slice(4)}`;
}

export interface Part10Meta {
  sopClassUid: string;
  sopInstanceUid: string;
  implementationClassUid: string;
  implementationVersionName: string;
}

/** A DICOM Part 10 file: preamble, 'DICM', File Meta Information (PS3.10 7.1), the data set in explicit VR LE. */
export function writePart10(meta: Part10Meta, dataSet: readonly DicomElement[]): Uint8Array {
  const group2 = encodeDataSet([
    { tag: tag(0x0002, 0x0001), vr: 'OB', value: Uint8Array.of(0, 1) },
    { tag: tag(0x0002, 0x0002), vr: 'UI', value: meta.sopClassUid },
    { tag: tag(0x0002, 0x0003), vr: 'UI', value: meta.sopInstanceUid },
    { tag: tag(0x0002, 0x0010), vr: 'UI', value: EXPLICIT_VR_LITTLE_ENDIAN },
    { tag: tag(0x0002, 0x0012), vr: 'UI', value: meta.implementationClassUid },
    { tag: tag(0x0002, 0x0013), vr: 'SH', value: meta.implementationVersionName },
  ]);
  const groupLength = encodeDataSet([{ tag: tag(0x0002, 0x0000), vr: 'UL', value: [group2.length] }]);
  const body = encodeDataSet(dataSet);
  const out = new Uint8Array(132 + groupLength.length + group2.length + body.length);
  out.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.set(groupLength, 132);
  out.set(group2, 132 + groupLength.length);
  out.set(body, 132 + groupLength.length + group2.length);
  return out;
}

/** A number as a Decimal String (PS3.5 6.2: at most 16 characters). */
export function formatDS(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`DS value ${x} is not finite`);
  for (let p = 15; p >= 1; p--) {
    const s = String(Number(x.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  return x.toExponential(6);
}

/** DA (YYYYMMDD) and TM (HHMMSS) of a date, in UTC. */
export function dicomDateTime(d: Date): { date: string; time: string } {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return { date: `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`, time: `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}` };
}
