/**
 * The greyscale display pipeline of DICOM PS3.3 C.11 on typed arrays, one function per stage with the standard's
 * formula:
 *
 *   stored values (8-16 bits allocated, Bits Stored / High Bit, signed or unsigned per Pixel Representation)
 *   -> Modality LUT: Rescale Slope/Intercept (C.11.1.1.2), or a Modality LUT Sequence
 *   -> VOI LUT: a VOI LUT Sequence (its first LUT), else the first Window Center/Width with the VOI LUT Function
 *      (LINEAR by default, C.11.2.1.2.1; LINEAR_EXACT C.11.2.1.3.2; SIGMOID C.11.2.1.3.1), else (no VOI given) the
 *      full range the Modality LUT can output, mapped linearly — the analogue of PNG's bit-depth scaling
 *   -> MONOCHROME1 (or Presentation LUT Shape INVERSE) inverted: y = 1 - y
 *
 * so that the grey image is what a DICOM viewer shows by default. Browser-safe: no imports at all.
 */
export type VoiApplied =
  | { kind: 'lut'; entries: number; firstMapped: number; bits: number }
  | { kind: 'window'; center: number; width: number; function: VoiFunction }
  | { kind: 'range'; min: number; max: number };

export type VoiFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';


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

