/**
 * Who and what a DICOM view is, as a prediction reports it: the patient and study it belongs to (PatientID,
 * PatientName, StudyInstanceUID, StudyDate, AccessionNumber) and the view itself (SOPInstanceUID, ViewPosition,
 * Laterality, BodyPartExamined, and what the SR writer references) — taken from the header the DICOM reader parsed
 * (src/data/dicom/header.ts). Absent attributes are left out. Browser-safe.
 */
import { viewInfoOf, type DicomHeader, type DicomViewInfo } from '../../data/dicom/index.js';

/** The patient and study a DICOM view belongs to (PS3.3 C.7.1.1 Patient, C.7.2.1 General Study). */
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

/** Everything a prediction keeps of a DICOM view's header: the view (DicomViewInfo) and its patient and study. */
export type DicomIdentity = DicomViewInfo & DicomStudyIdentity;

/** The identity of the view whose header this is. */
export function dicomIdentityOf(h: DicomHeader): DicomIdentity {
  const out: DicomIdentity = viewInfoOf(h);
  if (h.patient.id) out.patientId = h.patient.id;
  if (h.patient.name) out.patientName = h.patient.name;
  if (h.study.date) out.studyDate = h.study.date;
  if (h.study.accessionNumber) out.accessionNumber = h.study.accessionNumber;
  return out;
}
