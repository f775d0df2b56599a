/**
 * JPEG Lossless, Non-Hierarchical (Process 14; 1.2.840.10008.1.2.4.57 with any predictor 1-7, and .70, selection
 * value 1) through @cornerstonejs/jpeg-lossless-decoder-js — the decoder cornerstone's DICOM image loader uses.
 * That scoped fork is used rather than the unscoped jpeg-lossless-decoder-js 2.1.2: the fork fixes the frame's
 * last sample being dropped when the last Huffman code ends on a byte boundary (what dcmtk writes for a frame
 * ending in a run of one value), ships its type declarations, and has no platform-specific optional dependency.
 * Pure JavaScript: the same module runs in Node and in the page.
 */
import { Decoder } from '@cornerstonejs/jpeg-lossless-decoder-js';
import { TS } from '../transfer-syntax.js';
import { readJpegFrameHeader, sofName } from './jpeg-header.js';
import { checkSize, CodecError, type DicomFrameDecoder } from './types.js';

export const jpegLosslessFrameDecoder: DicomFrameDecoder = {
  name: '@cornerstonejs/jpeg-lossless-decoder-js 2.2.1',
  transferSyntaxes: [TS.jpegLossless, TS.jpegLosslessSV1],
  async decode(frame, info) {
    const h = readJpegFrameHeader(frame);
    if (!h) throw new CodecError('the frame is not a JPEG codestream (no SOI and frame header)');
    if (h.sof !== 0xc3) throw new CodecError(`the frame is ${sofName(h.sof)}, not lossless (SOF3) as the transfer syntax says`);
    checkSize('JPEG lossless', h.columns, h.rows, info);
    // The decoder reads from an ArrayBuffer: give it exactly the frame's bytes. Copied with Uint8Array's slice: on a
    // Node Buffer (dicom-parser keeps the caller's type) .slice() is a view into the shared pool, not a copy.
    const own = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame.buffer : Uint8Array.prototype.slice.call(frame).buffer;
    const samples = new Decoder().decode(own as ArrayBuffer, 0, frame.byteLength, h.precision > 8 ? 2 : 1);
    if (samples.length < h.rows * h.columns * h.components) throw new CodecError(`the JPEG lossless frame decoded to ${samples.length} samples, ${h.rows * h.columns * h.components} expected`);
    return { samples, samplesPerPixel: h.components };
  },
};
