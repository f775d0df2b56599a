/**
 * The frame decoders for every compressed transfer syntax neXt-Ray reads, in one list for the reader. Pure
 * TypeScript/JavaScript codecs (RLE, JPEG lossless) are always there; the wasm ones (JPEG-LS, JPEG baseline,
 * JPEG 2000) when the host gives their loaders (see ./wasm.ts). Browser-safe.
 */
import { jpegLosslessFrameDecoder } from './jpeg-lossless.js';
import { rleFrameDecoder } from './rle.js';
import { charlsFrameDecoder, libjpegTurboFrameDecoder, openJpegFrameDecoder, type CodecModuleLoaders } from './wasm.js';
import type { DicomFrameDecoder } from './types.js';

export { decodeRle, rleFrameDecoder } from './rle.js';
export { jpegLosslessFrameDecoder } from './jpeg-lossless.js';
export { readJpegFrameHeader, sofName, type JpegFrameHeader } from './jpeg-header.js';
export {
  charlsFrameDecoder,
  libjpegTurboFrameDecoder,
  loadEmscriptenCodec,
  openJpegFrameDecoder,
  type CharLSModule,
  type CodecModuleLoaders,
  type EmscriptenFactory,
  type LibJpegTurboModule,
  type OpenJpegModule,
} from './wasm.js';
export { checkSize, interleavePlanes, type DecodedFrame, type DicomFrameDecoder, type DicomFrameInfo } from './types.js';

/**
 * All frame decoders, given the host's wasm loaders: RLE and JPEG lossless always; JPEG-LS, JPEG baseline/extended
 * (8-bit) and JPEG 2000 for the loaders given.
 */
export function createFrameDecoders(loaders: CodecModuleLoaders = {}): DicomFrameDecoder[] {
  const out: DicomFrameDecoder[] = [rleFrameDecoder, jpegLosslessFrameDecoder];
  if (loaders.charls) out.push(charlsFrameDecoder(loaders.charls));
  if (loaders.libjpegTurbo) out.push(libjpegTurboFrameDecoder(loaders.libjpegTurbo));
  if (loaders.openjpeg) out.push(openJpegFrameDecoder(loaders.openjpeg));
  return out;
}

/** The transfer syntaxes a decoder list covers. */
export function decodableSyntaxes(decoders: readonly DicomFrameDecoder[]): string[] {
  return [...new Set(decoders.flatMap((d) => d.transferSyntaxes))];
}

