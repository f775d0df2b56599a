/**
 * The contract between the DICOM reader and a codec: one compressed frame (the bytes of its fragments) in, the
 * frame's samples out. Browser-safe.
 */
import { EXIT_USAGE, NextrayError } from '../../../util/errors.js';

/**
 * A compressed frame that cannot be decoded: damaged data, or a variant the codec does not support (the message says
 * which, and how to convert the file). The DICOM reader catches it and throws a DicomError naming the file.
 */
export class CodecError extends NextrayError {
  constructor(message: string) {
    super(message, { code: 'ERR_DICOM_CODEC', exitStatus: EXIT_USAGE });
    this.name = 'CodecError';
  }
}

/** What a frame decoder is told about the frame (from the Image Pixel module of the data set). */
export interface DicomFrameInfo {
  rows: number;
  columns: number;
  bitsAllocated: number;
  /** Bits Stored (0028,0101); the reader masks the decoded samples to it. */
  bitsStored: number;
  /** Pixel Representation 1 (two's complement samples). */
  signed: boolean;
  samplesPerPixel: number;
  /** Photometric Interpretation as written in the header (a JPEG may have been YBR_FULL_422 before decoding). */
  photometric: string;
  /** Planar Configuration (0028,0006): 0 colour-by-pixel, 1 colour-by-plane (RLE frames are always by plane). */
  planarConfiguration: number;
  transferSyntax: string;
}

/** A decoded frame: rows * columns * samplesPerPixel samples, pixel-interleaved (R, G, B, R, ...) for colour. */
export interface DecodedFrame {
  samples: Uint8Array | Uint16Array | Int16Array | Int32Array;
  samplesPerPixel: number;
}

/** Decodes the frames of some compressed transfer syntaxes. */
export interface DicomFrameDecoder {
  /** The codec, for messages and docs: e.g. '@cornerstonejs/codec-charls 1.2.7'. */
  name?: string;
  transferSyntaxes: readonly string[];
  decode(frame: Uint8Array, info: DicomFrameInfo): Promise<DecodedFrame>;
}

/** Throws when a codec's frame size disagrees with the header (a damaged or mislabelled file). */
export function checkSize(codec: string, width: number, height: number, info: DicomFrameInfo): void {
  if (width !== info.columns || height !== info.rows) {
    throw new CodecError(`the ${codec} frame is ${width} x ${height}, the DICOM header says ${info.columns} x ${info.rows}`);
  }
}

/** Samples stored one plane after another (R..., G..., B...) -> pixel-interleaved, for `spp` samples per pixel. */
export function interleavePlanes<T extends Uint8Array | Uint16Array | Int16Array | Int32Array>(planar: T, pixels: number, spp: number): T {
  if (spp === 1) return planar;
  const out = new (planar.constructor as new (n: number) => T)(pixels * spp);
  for (let s = 0; s < spp; s++) for (let i = 0; i < pixels; i++) out[i * spp + s] = planar[s * pixels + i]!;
  return out;
}
