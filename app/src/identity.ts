/**
 * Who and what a view is: the DICOM attributes a reader checks before trusting a result — patient, study, body part,
 * view position — read from the file's header (the pixels are the DICOM reader's job, src/data/dicom.ts). A PNG or
 * JPEG carries none of them: its view belongs to the "unidentified study" of the files dropped together.
 *
 * Studies are formed as the CLI forms them (src/inference/core/study.ts: the Study Instance UID (0020,000D) of a DICOM
 * file), with one more rule the page needs because a drop can mix patients: views of different Patient IDs never
 * share a study, even under one Study Instance UID (a mislabelled file must not average into another patient's
 * result).
 */
import * as dicomParserNs from 'dicom-parser';

const dicomParser: typeof dicomParserNs = (dicomParserNs as unknown as { default?: typeof dicomParserNs }).default ?? dicomParserNs;

export interface ViewIdentity {
  /** Patient ID (0010,0020). */
  patientId?: string;
  /** Patient's Name (0010,0010), the DICOM person name with '^' between its parts turned into spaces. */
  patientName?: string;
  /** Study Instance UID (0020,000D). */
  studyUid?: string;
  /** Study Date (0008,0020) as YYYY-MM-DD when it is a valid DA, else as stored. */
  studyDate?: string;
  /** Study Description (0008,1030). */
  studyDescription?: string;
  /** Accession Number (0008,0050). */
  accession?: string;
  /** Body Part Examined (0018,0015). */
  bodyPart?: string;
  /** View Position (0018,5101): AP, PA, LL ... */
  viewPosition?: string;
  /** Image Laterality (0020,0062) or Laterality (0020,0060). */
  laterality?: string;
  /** Modality (0008,0060). */
  modality?: string;
}

/** '20240131' -> '2024-01-31'; anything else as stored. */
export function formatDicomDate(da: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : da.trim();
}

/** 'DOE^JANE^^DR' -> 'DOE JANE DR' (PS3.5 6.2, the alphabetic group only). */
export function formatPersonName(pn: string): string {
  return pn.split('=')[0]!.split('^').map((s) => s.trim()).filter(Boolean).join(' ');
}

/** The identity attributes of a DICOM file's header ({} when it cannot be parsed: the pixel reader names the problem). */
export function dicomIdentity(bytes: Uint8Array): ViewIdentity {
  let ds: ReturnType<typeof dicomParser.parseDicom>;
  try {
    ds = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  } catch {
    return {};
  }
  const s = (tag: string): string | undefined => {
    try {
      const v = ds.string(tag)?.trim();
      return v ? v : undefined;
    } catch {
      return undefined;
    }
  };
  const out: ViewIdentity = {};
  const set = <K extends keyof ViewIdentity>(k: K, v: string | undefined): void => {
    if (v) out[k] = v;
  };
  set('patientId', s('x00100020'));
  const name = s('x00100010');
  set('patientName', name ? formatPersonName(name) || undefined : undefined);
  set('studyUid', s('x0020000d'));
  const date = s('x00080020');
  set('studyDate', date ? formatDicomDate(date) : undefined);
  set('studyDescription', s('x00081030'));
  set('accession', s('x00080050'));
  set('bodyPart', s('x00180015'));
  set('viewPosition', s('x00185101'));
  set('laterality', s('x00200062') ?? s('x00200060'));
  set('modality', s('x00080060'));
  return out;
}

/**
 * The study a view belongs to in the page: DICOM views by Patient ID and Study Instance UID (the CLI's key, split by
 * patient), DICOM files without a Study Instance UID by patient, PNG/JPEG files together as the "unidentified study".
 */
export function studyGroupKey(format: string, id: ViewIdentity): string {
  if (format !== 'dicom') return 'unidentified';
  return `dicom\u0000${id.patientId ?? ''}\u0000${id.studyUid ?? ''}`;
}
