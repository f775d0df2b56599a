/**
 * One input file -> the model inputs an ensemble needs (Node host): PNG/JPEG through sharp (src/data/images.ts),
 * DICOM through src/data/dicom.ts (PS3.3 C.11 display pipeline; JPEG baseline frames decoded by sharp, JPEG 2000
 * frames by OpenJPEG in WebAssembly), then the core's preprocessing. Runs on the decode workers (./decode-worker.ts) or in-process.
 *
 * Never throws for a bad file: the problem comes back in words, to be reported with the file's name.
 */
import { readFile, open, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { decodeGrey, ImageError, MAX_IMAGE_PIXELS } from '../../data/images.js';
import { greyWarnings, type Preprocessing } from '../../data/preprocess.js';
import { DicomError, isDicom, readDicom, type DicomFrameDecoder } from '../../data/dicom.js';
import { readDicomIdentity, type DicomIdentity } from '../../data/dicom-identity.js';
import { preprocessAll } from '../core/predict.js';

export interface DecodeRequest {
  id: number;
  /** Path to open. */
  file: string;
  /** The ensemble's distinct preprocessings. */
  preprocessings: Preprocessing[];
  maxPixels?: number;
}

export type DecodeReply =
  | {
      id: number;
      ok: true;
      inputs: Float32Array[];
      width: number;
      height: number;
      format: string;
      /** DICOM Study Instance UID (0020,000D), when the file has one. */
      studyUid?: string;
      /** DICOM: the view's, patient's and study's identifiers in the header. */
      dicom?: DicomIdentity;
      warnings: string[];
    }
  | { id: number; ok: false; problem: string };

/** sharp decodes the JPEG baseline frames of compressed DICOMs (8-bit, 1 or 3 samples). */
export const sharpJpegFrameDecoder: DicomFrameDecoder = {
  transferSyntaxes: ['1.2.840.10008.1.2.4.50'],
  async decode(frame, info) {
    const img = sharp(frame, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS });
    const { data, info: out } = await (info.samplesPerPixel === 1 ? img.toColourspace('b-w') : img).raw().toBuffer({ resolveWithObject: true });
    if (out.width !== info.columns || out.height !== info.rows) {
      throw new Error(`the JPEG frame is ${out.width} x ${out.height}, the DICOM header says ${info.columns} x ${info.rows}`);
    }
    return { samples: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), samplesPerPixel: out.channels };
  },
};

interface OpenJpegModule {
  J2KDecoder: new () => {
    getEncodedBuffer(n: number): Uint8Array;
    decode(): void;
    getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean };
    getDecodedBuffer(): Uint8Array;
    delete(): void;
  };
}
let openJpeg: Promise<OpenJpegModule> | null = null;

/**
 * JPEG 2000 frames (lossless and lossy) through OpenJPEG compiled to WebAssembly (@cornerstonejs/codec-openjpeg,
 * the decoder the cornerstone viewers use; shipped in the npm package, nothing downloaded), loaded on first use.
 */
export const openJpegFrameDecoder: DicomFrameDecoder = {
  transferSyntaxes: ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91'],
  async decode(frame, info) {
    openJpeg ??= (createRequire(import.meta.url)('@cornerstonejs/codec-openjpeg/decodewasmjs') as (o: object) => Promise<OpenJpegModule>)({
      // Its log lines would land on stdout (predict's CSV): silenced.
      print: () => {},
      printErr: () => {},
    });
    const oj = await openJpeg;
    const d = new oj.J2KDecoder();
    try {
      d.getEncodedBuffer(frame.length).set(frame);
      d.decode();
      const fi = d.getFrameInfo();
      if (fi.width !== info.columns || fi.height !== info.rows) {
        throw new Error(`the JPEG 2000 frame is ${fi.width} x ${fi.height}, the DICOM header says ${info.columns} x ${info.rows}`);
      }
      const out = d.getDecodedBuffer().slice(); // out of the WebAssembly heap
      const samples = fi.bitsPerSample > 8 ? (fi.isSigned ? new Int16Array(out.buffer) : new Uint16Array(out.buffer)) : new Uint8Array(out.buffer);
      return { samples, samplesPerPixel: fi.componentCount };
    } finally {
      d.delete();
    }
  },
};

async function looksLikeDicom(file: string): Promise<boolean> {
  if (/\.(dcm|dicom|dic)$/i.test(file)) return true;
  const fh = await open(file, 'r');
  try {
    const head = new Uint8Array(132);
    const { bytesRead } = await fh.read(head, 0, 132, 0);
    return isDicom(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** Decodes and prepares one file; never throws for a bad file. */
export async function decodeForPrediction(req: DecodeRequest): Promise<DecodeReply> {
  const { id, file } = req;
  try {
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { id, ok: false, problem: code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied: cannot read the file' : `file cannot be read: ${(err as Error).message}` };
    }
    if (st.isDirectory()) return { id, ok: false, problem: 'this is a folder, not an image file' };
    if (st.size === 0) return { id, ok: false, problem: 'empty file (0 bytes); it was probably not copied completely' };
    if (await looksLikeDicom(file)) {
      const bytes = await readFile(file);
      const dcm = await readDicom(bytes, { source: file, decoders: [sharpJpegFrameDecoder, openJpegFrameDecoder], maxPixels: req.maxPixels ?? MAX_IMAGE_PIXELS });
      const inputs = preprocessAll(dcm.grey, dcm.width, dcm.height, req.preprocessings, file);
      const dicom = readDicomIdentity(bytes);
      if (dcm.studyInstanceUid) dicom.studyInstanceUid = dcm.studyInstanceUid;
      return {
        id,
        ok: true,
        inputs,
        width: dcm.width,
        height: dcm.height,
        format: 'dicom',
        ...(dcm.studyInstanceUid ? { studyUid: dcm.studyInstanceUid } : {}),
        dicom,
        warnings: [...dcm.warnings, ...greyWarnings(dcm.grey, 8)],
      };
    }
    const img = await decodeGrey(file, req.maxPixels === undefined ? {} : { maxPixels: req.maxPixels });
    const inputs = preprocessAll(img.data, img.width, img.height, req.preprocessings, file);
    const format = /\.jpe?g$/i.test(file) ? 'jpeg' : /\.png$/i.test(file) ? 'png' : 'image';
    return { id, ok: true, inputs, width: img.width, height: img.height, format, warnings: greyWarnings(img.data, img.bitDepth) };
  } catch (err) {
    const problem = err instanceof ImageError || err instanceof DicomError ? err.problem : err instanceof Error ? err.message : String(err);
    return { id, ok: false, problem };
  }
}
