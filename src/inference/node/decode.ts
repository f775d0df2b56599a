/**
 * One input file -> the model inputs an ensemble needs (Node host): PNG/JPEG through sharp (src/data/images.ts),
 * DICOM through src/data/dicom/ (the header gate, then the PS3.3 C.11 display pipeline; compressed frames through
 * the codecs of src/data/dicom/node-codecs.ts), then the core's preprocessing. Runs on the decode workers (./decode-worker.ts) or in-process.
 *
 * Never throws for a bad file: the problem comes back in words, to be reported with the file's name.
 */
import { readFile, open, stat } from 'node:fs/promises';
import { decodeGrey, ImageError, MAX_IMAGE_PIXELS } from '../../data/images.js';
import { greyWarnings, type Preprocessing } from '../../data/preprocess.js';
import { DicomError, isDicom, readDicom } from '../../data/dicom/index.js';
import { nodeFrameDecoders } from '../../data/dicom/node-codecs.js';
import { dicomIdentityOf, type DicomIdentity } from '../core/identity.js';
import { preprocessAll } from '../core/predict.js';

export interface DecodeRequest {
  id: number;
  /** The file as shown (messages, format by extension); opened by this name unless `path` is given. */
  file: string;
  /** The path's bytes, for a name that is not UTF-8 (opened by these bytes). */
  path?: Uint8Array;
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

async function looksLikeDicom(file: string, path: string | Buffer): Promise<boolean> {
  if (/\.(dcm|dicom|dic)$/i.test(file)) return true;
  const fh = await open(path, 'r');
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
  // A name that is not UTF-8 is opened by its bytes (they arrive from a worker message as a plain Uint8Array).
  const path: string | Buffer = req.path ? Buffer.from(req.path.buffer, req.path.byteOffset, req.path.byteLength) : file;
  try {
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { id, ok: false, problem: code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied: cannot read the file' : `file cannot be read: ${(err as Error).message}` };
    }
    if (st.isDirectory()) return { id, ok: false, problem: 'this is a folder, not an image file' };
    if (st.size === 0) return { id, ok: false, problem: 'empty file (0 bytes); it was probably not copied completely' };
    if (await looksLikeDicom(file, path)) {
      const dcm = await readDicom(await readFile(path), { source: file, decoders: nodeFrameDecoders, maxPixels: req.maxPixels ?? MAX_IMAGE_PIXELS });
      const inputs = preprocessAll(dcm.grey, dcm.width, dcm.height, req.preprocessings, file);
      return {
        id,
        ok: true,
        inputs,
        width: dcm.width,
        height: dcm.height,
        format: 'dicom',
        ...(dcm.studyInstanceUid ? { studyUid: dcm.studyInstanceUid } : {}),
        dicom: dicomIdentityOf(dcm.header),
        warnings: [...dcm.warnings, ...greyWarnings(dcm.grey, 8)],
      };
    }
    const img = await decodeGrey(typeof path === 'string' ? path : new Uint8Array(await readFile(path)), req.maxPixels === undefined ? {} : { maxPixels: req.maxPixels });
    const inputs = preprocessAll(img.data, img.width, img.height, req.preprocessings, file);
    const format = /\.jpe?g$/i.test(file) ? 'jpeg' : /\.png$/i.test(file) ? 'png' : 'image';
    return { id, ok: true, inputs, width: img.width, height: img.height, format, warnings: greyWarnings(img.data, img.bitDepth) };
  } catch (err) {
    const problem = err instanceof ImageError || err instanceof DicomError ? err.problem : err instanceof Error ? err.message : String(err);
    return { id, ok: false, problem };
  }
}
