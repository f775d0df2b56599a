/**
 * The frame header of a JPEG codestream (ITU T.81 B.2.2), read before decoding so that a frame is sent only to a
 * codec that can handle its process: SOF0/SOF1 (baseline / extended Huffman DCT), SOF3 (lossless), SOF55 (0xFFF7,
 * JPEG-LS). Browser-safe.
 */

export interface JpegFrameHeader {
  /** The SOF marker's low byte: 0xc0 baseline, 0xc1 extended, 0xc2 progressive, 0xc3 lossless, 0xf7 JPEG-LS ... */
  sof: number;
  precision: number;
  rows: number;
  columns: number;
  components: number;
}

/** The first SOF segment's fields, or null when the bytes hold none before the first scan (not a JPEG frame). */
export function readJpegFrameHeader(b: Uint8Array): JpegFrameHeader | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return null;
    let marker = b[i + 1]!;
    // Fill bytes (0xFF 0xFF ...) may precede a marker.
    while (marker === 0xff && i + 2 < b.length) {
      i++;
      marker = b[i + 1]!;
    }
    const length = (b[i + 2]! << 8) | b[i + 3]!;
    const isSof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (isSof) {
      if (i + 10 > b.length) return null;
      return { sof: marker, precision: b[i + 4]!, rows: (b[i + 5]! << 8) | b[i + 6]!, columns: (b[i + 7]! << 8) | b[i + 8]!, components: b[i + 9]! };
    }
    if (marker === 0xda) return null;
    i += 2 + length;
  }
  return null;
}

/** Names of the SOF processes, for messages. */
export function sofName(sof: number): string {
  const names: Record<number, string> = {
    0xc0: 'baseline DCT (SOF0)',
    0xc1: 'extended sequential DCT (SOF1)',
    0xc2: 'progressive DCT (SOF2)',
    0xc3: 'lossless (SOF3)',
    0xf7: 'JPEG-LS (SOF55)',
  };
  return names[sof] ?? `SOF marker 0xFF${sof.toString(16).toUpperCase()}`;
}
