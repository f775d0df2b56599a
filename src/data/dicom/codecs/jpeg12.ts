/**
 * 12-bit JPEG (ITU T.81 extended sequential DCT, Huffman coded: SOF1, or SOF0 with P = 12) for one grey component —
 * what DICOM's JPEG Extended (Process 2 & 4, 1.2.840.10008.1.2.4.51) holds for 12-bit CR/DX/CT. No maintained npm
 * package decodes it (libjpeg-turbo's wasm build is 8-bit only), so this is a small decoder written to give the
 * IJG library's output exactly, as dcmtk's dcmdjpeg does (its libijg12, default integer IDCT): the Huffman decoding of
 * T.81 F.2.2, dequantisation, and the "islow" inverse DCT of IJG's jidctint.c in its 12-bit form (CONST_BITS 13,
 * PASS1_BITS 1) with its range-limit table. Checked sample for sample against dcmdjpeg by
 * test/data/dicom-codecs.test.ts on files made by `dcmcjpeg +ee`. Colour, progressive and arithmetic-coded 12-bit
 * frames are refused. Browser-safe.
 */
import { CodecError } from './types.js';

const ZIGZAG = Uint8Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
  52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

interface Huffman {
  maxcode: Int32Array; // [17], -1 when no code of that length
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let l = 1; l <= 16; l++) {
    const n = counts[l - 1]!;
    if (n) {
      valptr[l] = k;
      mincode[l] = code;
      code += n;
      k += n;
      maxcode[l] = code - 1;
    }
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { maxcode, valptr, mincode, values };
}

class Bits {
  private acc = 0;
  private n = 0;
  /** A marker was met inside entropy-coded data: from then on zeros are read (as IJG does). */
  marker = -1;
  constructor(
    private readonly b: Uint8Array,
    public pos: number,
  ) {}
  private fill(): void {
    let byte = 0;
    if (this.marker < 0 && this.pos < this.b.length) {
      byte = this.b[this.pos]!;
      if (byte === 0xff) {
        const next = this.b[this.pos + 1];
        if (next === 0x00) this.pos += 2;
        else {
          this.marker = next ?? 0xd9;
          byte = 0;
        }
      } else this.pos++;
    }
    this.acc = ((this.acc << 8) | byte) >>> 0;
    this.n += 8;
  }
  bit(): number {
    if (this.n === 0) this.fill();
    this.n--;
    return (this.acc >>> this.n) & 1;
  }
  bits(k: number): number {
    let v = 0;
    for (let i = 0; i < k; i++) v = (v << 1) | this.bit();
    return v;
  }
  decode(h: Huffman): number {
    let code = this.bit();
    let l = 1;
    while (code > h.maxcode[l]!) {
      code = (code << 1) | this.bit();
      if (++l > 16) throw new CodecError('corrupt Huffman data in the 12-bit JPEG frame');
    }
    return h.values[h.valptr[l]! + code - h.mincode[l]!]!;
  }
  /** After a restart interval: drop the bits left in the byte and step over the RSTn marker. */
  restart(): void {
    this.acc = 0;
    this.n = 0;
    if (this.marker >= 0xd0 && this.marker <= 0xd7) {
      this.pos += 2;
      this.marker = -1;
      return;
    }
    if (this.marker < 0 && this.b[this.pos] === 0xff && this.b[this.pos + 1]! >= 0xd0 && this.b[this.pos + 1]! <= 0xd7) this.pos += 2;
  }
}

const extend = (v: number, t: number): number => (v < 1 << (t - 1) ? v - (1 << t) + 1 : v);

// IJG jidctint.c, 12-bit: CONST_BITS 13, PASS1_BITS 1; FIX(x) = round(x * 2^13).
const CONST_BITS = 13;
const PASS1_BITS = 1;
const F_0_298631336 = 2446;
const F_0_390180644 = 3196;
const F_0_541196100 = 4433;
const F_0_765366865 = 6270;
const F_0_899976223 = 7373;
const F_1_175875602 = 9633;
const F_1_501321110 = 12299;
const F_1_847759065 = 15137;
const F_1_961570560 = 16069;
const F_2_053119869 = 16819;
const F_2_562915447 = 20995;
const F_3_072711026 = 25172;
/** DESCALE of IJG: round by adding half, then an arithmetic shift (exact in doubles for these magnitudes). */
const descale = (x: number, n: number): number => Math.floor((x + 2 ** (n - 1)) / 2 ** n);
const MAXJSAMPLE = 4095;
const CENTER = 2048;
const RANGE_MASK = MAXJSAMPLE * 4 + 3;
/** IJG's post-IDCT range-limit table (jdmaster.c prepare_range_limit_table), indexed by value & RANGE_MASK. */
const RANGE_LIMIT = (() => {
  const t = new Uint16Array(RANGE_MASK + 1);
  for (let k = 0; k <= RANGE_MASK; k++) t[k] = k < CENTER ? k + CENTER : k < 2 * (MAXJSAMPLE + 1) ? MAXJSAMPLE : k < 4 * (MAXJSAMPLE + 1) - CENTER ? 0 : k - (4 * (MAXJSAMPLE + 1) - CENTER);
  return t;
})();

/** IJG's islow IDCT of one block (coefficients in natural order, dequantised inside) into out[row * stride + col]. */
function idctIslow(coef: Int32Array, q: Int32Array, out: Uint16Array, offset: number, stride: number, ws: Float64Array): void {
  for (let c = 0; c < 8; c++) {
    const at = (r: number): number => coef[r * 8 + c]! * q[r * 8 + c]!;
    if (!coef[8 + c] && !coef[16 + c] && !coef[24 + c] && !coef[32 + c] && !coef[40 + c] && !coef[48 + c] && !coef[56 + c]) {
      const dc = at(0) * 2 ** PASS1_BITS;
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dc;
      continue;
    }
    let z2 = at(2);
    let z3 = at(6);
    let z1 = (z2 + z3) * F_0_541196100;
    let tmp2 = z1 + z3 * -F_1_847759065;
    let tmp3 = z1 + z2 * F_0_765366865;
    z2 = at(0);
    z3 = at(4);
    let tmp0 = (z2 + z3) * 2 ** CONST_BITS;
    let tmp1 = (z2 - z3) * 2 ** CONST_BITS;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = at(7);
    tmp1 = at(5);
    tmp2 = at(3);
    tmp3 = at(1);
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175875602;
    tmp0 *= F_0_298631336;
    tmp1 *= F_2_053119869;
    tmp2 *= F_3_072711026;
    tmp3 *= F_1_501321110;
    z1 *= -F_0_899976223;
    z2 *= -F_2_562915447;
    z3 = z3 * -F_1_961570560 + z5;
    z4 = z4 * -F_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    const s = CONST_BITS - PASS1_BITS;
    ws[c] = descale(tmp10 + tmp3, s);
    ws[56 + c] = descale(tmp10 - tmp3, s);
    ws[8 + c] = descale(tmp11 + tmp2, s);
    ws[48 + c] = descale(tmp11 - tmp2, s);
    ws[16 + c] = descale(tmp12 + tmp1, s);
    ws[40 + c] = descale(tmp12 - tmp1, s);
    ws[24 + c] = descale(tmp13 + tmp0, s);
    ws[32 + c] = descale(tmp13 - tmp0, s);
  }
  const lim = (v: number): number => RANGE_LIMIT[v & RANGE_MASK]!;
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const o = offset + r * stride;
    if (!ws[w + 1] && !ws[w + 2] && !ws[w + 3] && !ws[w + 4] && !ws[w + 5] && !ws[w + 6] && !ws[w + 7]) {
      const v = lim(descale(ws[w]!, PASS1_BITS + 3));
      for (let k = 0; k < 8; k++) out[o + k] = v;
      continue;
    }
    let z2 = ws[w + 2]!;
    let z3 = ws[w + 6]!;
    let z1 = (z2 + z3) * F_0_541196100;
    let tmp2 = z1 + z3 * -F_1_847759065;
    let tmp3 = z1 + z2 * F_0_765366865;
    let tmp0 = (ws[w]! + ws[w + 4]!) * 2 ** CONST_BITS;
    let tmp1 = (ws[w]! - ws[w + 4]!) * 2 ** CONST_BITS;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7]!;
    tmp1 = ws[w + 5]!;
    tmp2 = ws[w + 3]!;
    tmp3 = ws[w + 1]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175875602;
    tmp0 *= F_0_298631336;
    tmp1 *= F_2_053119869;
    tmp2 *= F_3_072711026;
    tmp3 *= F_1_501321110;
    z1 *= -F_0_899976223;
    z2 *= -F_2_562915447;
    z3 = z3 * -F_1_961570560 + z5;
    z4 = z4 * -F_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    const s = CONST_BITS + PASS1_BITS + 3;
    out[o] = lim(descale(tmp10 + tmp3, s));
    out[o + 7] = lim(descale(tmp10 - tmp3, s));
    out[o + 1] = lim(descale(tmp11 + tmp2, s));
    out[o + 6] = lim(descale(tmp11 - tmp2, s));
    out[o + 2] = lim(descale(tmp12 + tmp1, s));
    out[o + 5] = lim(descale(tmp12 - tmp1, s));
    out[o + 3] = lim(descale(tmp13 + tmp0, s));
    out[o + 4] = lim(descale(tmp13 - tmp0, s));
  }
}

/** Decodes a 12-bit, one-component, sequential Huffman JPEG frame: samples 0..4095, row-major, width x height. */
export function decodeJpeg12(b: Uint8Array): { samples: Uint16Array; width: number; height: number } {
  if (b[0] !== 0xff || b[1] !== 0xd8) throw new CodecError('the frame is not a JPEG codestream (no SOI)');
  const qt: Array<Int32Array | undefined> = [];
  const dc: Array<Huffman | undefined> = [];
  const ac: Array<Huffman | undefined> = [];
  let width = 0;
  let height = 0;
  let compId = -1;
  let tq = 0;
  let restartInterval = 0;
  let i = 2;
  const u16 = (k: number): number => (b[k]! << 8) | b[k + 1]!;
  for (;;) {
    if (i + 4 > b.length) throw new CodecError('the 12-bit JPEG frame ends before its scan');
    if (b[i] !== 0xff) throw new CodecError(`no JPEG marker at byte ${i} of the frame`);
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++;
      continue;
    }
    const len = u16(i + 2);
    const seg = b.subarray(i + 4, i + 2 + len);
    if (marker === 0xdb) {
      for (let k = 0; k < seg.length; ) {
        const pq = seg[k]! >> 4;
        const id = seg[k]! & 15;
        const t = new Int32Array(64);
        for (let j = 0; j < 64; j++) t[ZIGZAG[j]!] = pq ? (seg[k + 1 + 2 * j]! << 8) | seg[k + 2 + 2 * j]! : seg[k + 1 + j]!;
        qt[id] = t;
        k += 1 + 64 * (pq ? 2 : 1);
      }
    } else if (marker === 0xc4) {
      for (let k = 0; k < seg.length; ) {
        const tc = seg[k]! >> 4;
        const th = seg[k]! & 15;
        const counts = seg.subarray(k + 1, k + 17);
        const n = counts.reduce((s, x) => s + x, 0);
        const table = buildHuffman(counts, seg.slice(k + 17, k + 17 + n));
        (tc ? ac : dc)[th] = table;
        k += 17 + n;
      }
    } else if (marker === 0xc0 || marker === 0xc1) {
      if (seg[0] !== 12) throw new CodecError(`the frame's sample precision is ${seg[0]}, not 12`);
      height = u16(i + 5);
      width = u16(i + 7);
      if (seg[5] !== 1) throw new CodecError(`12-bit JPEG with ${seg[5]} components is not supported (one grey component is)`);
      compId = seg[6]!;
      tq = seg[8]!;
      if (!width || !height) throw new CodecError('the JPEG frame header gives no image size (a DNL marker is not supported)');
    } else if ((marker >= 0xc2 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7) {
      throw new CodecError(`12-bit JPEG of process SOF 0xFF${marker.toString(16).toUpperCase()} is not supported (sequential Huffman is)`);
    } else if (marker === 0xdd) {
      restartInterval = u16(i + 4);
    } else if (marker === 0xda) {
      if (!width) throw new CodecError('the scan comes before the frame header');
      if (seg[0] !== 1 || seg[1] !== compId) throw new CodecError('the scan does not hold the frame\'s one component');
      const dct = dc[seg[2]! >> 4];
      const act = ac[seg[2]! & 15];
      const q = qt[tq];
      if (!dct || !act || !q) throw new CodecError('the scan uses a Huffman or quantisation table the frame does not define');
      const bw = Math.ceil(width / 8);
      const bh = Math.ceil(height / 8);
      const stride = bw * 8;
      const full = new Uint16Array(stride * bh * 8);
      const bits = new Bits(b, i + 2 + len);
      const coef = new Int32Array(64);
      const ws = new Float64Array(64);
      let pred = 0;
      let left = restartInterval;
      for (let by = 0; by < bh; by++) {
        for (let bx = 0; bx < bw; bx++) {
          if (restartInterval) {
            if (left === 0) {
              bits.restart();
              pred = 0;
              left = restartInterval;
            }
            left--;
          }
          coef.fill(0);
          const t = bits.decode(dct);
          pred += t ? extend(bits.bits(t), t) : 0;
          coef[0] = pred;
          for (let k = 1; k < 64; ) {
            const rs = bits.decode(act);
            const r = rs >> 4;
            const s = rs & 15;
            if (s) {
              k += r;
              if (k > 63) throw new CodecError('corrupt AC coefficients in the 12-bit JPEG frame');
              coef[ZIGZAG[k]!] = extend(bits.bits(s), s);
              k++;
            } else {
              if (r !== 15) break;
              k += 16;
            }
          }
          idctIslow(coef, q, full, by * 8 * stride + bx * 8, stride, ws);
        }
      }
      const samples = new Uint16Array(width * height);
      for (let y = 0; y < height; y++) samples.set(full.subarray(y * stride, y * stride + width), y * width);
      return { samples, width, height };
    } else if (marker === 0xd9) throw new CodecError('the JPEG frame has no scan');
    i += 2 + len;
  }
}
