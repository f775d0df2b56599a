/**
 * Who and what a DICOM image is: the header attributes a prediction is reported with — the patient and study it
 * belongs to (PatientID, PatientName, StudyInstanceUID, StudyDate, AccessionNumber) and the view itself
 * (SOPInstanceUID, ViewPosition, Laterality, BodyPartExamined) — read from the header only (parsing stops before the
 * pixel data). Attributes that are absent or empty are left out. Never throws: a file whose header cannot be parsed
 * has no identity (its pixels are read, and their problem reported, by ./dicom.ts).
 *
 * Browser-safe (dicom-parser and fflate, both pure JS).
 */
import * as dicomParserNs from 'dicom-parser';
import { inflateSync } from 'fflate';

// dicom-parser is a UMD bundle: Node's ESM loader exposes it as the default export only, bundlers as either.
const dicomParser: typeof dicomParserNs = (dicomParserNs as unknown as { default?: typeof dicomParserNs }).default ?? dicomParserNs;

/** The patient and study a DICOM image belongs to (PS3.3 C.7.1.1 Patient, C.7.2.1 General Study). */
export interface DicomStudyIdentity {
  /** Patient ID (0010,0020). */
  patientId?: string;
  /** Patient's Name (0010,0010), as stored (components separated by '^'). */
  patientName?: string;
  /** Study Instance UID (0020,000D). */
  studyInstanceUid?: string;
  /** Study Date (0008,0020), YYYYMMDD as stored. */
  studyDate?: string;
  /** Accession Number (0008,0050). */
  accessionNumber?: string;
}

/** The view: which image of the study, and how it was taken (PS3.3 C.12.1 SOP Common, C.8.11.5 DX Positioning). */
export interface DicomViewIdentity {
  /** SOP Instance UID (0008,0018). */
  sopInstanceUid?: string;
  /** View Position (0018,5101), e.g. 'AP', 'PA', 'LL'. */
  viewPosition?: string;
  /** Image Laterality (0020,0062), else the series' Laterality (0020,0060): 'L', 'R', 'U' or 'B'. */
  laterality?: string;
  /** Body Part Examined (0018,0015), e.g. 'HAND', 'WRIST'. */
  bodyPartExamined?: string;
}

export type DicomIdentity = DicomStudyIdentity & DicomViewIdentity;

const TAGS: readonly [keyof DicomIdentity, string][] = [
  ['patientId', 'x00100020'],
  ['patientName', 'x00100010'],
  ['studyInstanceUid', 'x0020000d'],
  ['studyDate', 'x00080020'],
  ['accessionNumber', 'x00080050'],
  ['sopInstanceUid', 'x00080018'],
  ['viewPosition', 'x00185101'],
  ['laterality', 'x00200062'],
  ['bodyPartExamined', 'x00180015'],
];

/** Deflated Explicit VR Little Endian: the data set after the File Meta group is raw DEFLATE. */
function inflateDataSet(bytes: Uint8Array, position: number): Uint8Array {
  const inflated = inflateSync(bytes.subarray(position));
  const out = new Uint8Array(position + inflated.length);
  out.set(bytes.subarray(0, position), 0);
  out.set(inflated, position);
  return out;
}

/** The identity attributes present in a DICOM file's header ({} when there are none or it cannot be parsed). */
export function readDicomIdentity(bytes: Uint8Array): DicomIdentity {
  const part10 = bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
  let ds: dicomParserNs.DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, part10 ? { inflater: inflateDataSet, untilTag: 'x7fe00010' } : { TransferSyntaxUID: '1.2.840.10008.1.2', untilTag: 'x7fe00010' });
  } catch {
    return {};
  }
  const out: DicomIdentity = {};
  for (const [key, tag] of TAGS) {
    const v = ds.string(tag)?.trim();
    if (v) out[key] = v;
  }
  if (!out.laterality) {
    const series = ds.string('x00200060')?.trim();
    if (series) out.laterality = series;
  }
  return out;
}
