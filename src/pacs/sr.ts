/**
 * A study's results as a DICOM Comprehensive SR (PS3.3 A.35.3), built in memory: bytes out, no file system, so the
 * command line (`predict --dicom-out`), a PACS worker and the page can all use it. Browser-safe.
 *
 * The object: the source study's Patient and General Study modules copied (same Study Instance UID, so the PACS
 * files the report with the images), a new SR series, UIDs derived from (Study Instance UID, model SHA-256) by
 * ./uid.ts so a re-run replaces the earlier report, the source images listed in the Current Requested Procedure
 * Evidence Sequence, and a content tree in the style of TID 1500 (Measurement Report; the template is followed in
 * shape, not claimed in a Content Template Sequence):
 *
 *   CONTAINER Imaging Measurement Report (126000, DCM)
 *     HAS CONCEPT MOD  Language of Content Item and Descendants = English
 *     HAS OBS CONTEXT  Observer Type = Device; Device Observer UID; Device Observer Name = neXt-Ray; Model Name = the model
 *     CONTAINS CONTAINER Image Library (111028, DCM) > Image Library Group > IMAGE per source view
 *     CONTAINS TEXT Algorithm Name = model name; Algorithm Version = model SHA-256; Algorithm Parameters = operating point
 *     CONTAINS CONTAINER Imaging Measurements (126010, DCM)
 *       CONTAINS CONTAINER Measurement Group (125007, DCM), one per view:
 *         Tracking Identifier (the file), Tracking Unique Identifier (its SOP Instance UID),
 *         NUM Probability of abnormality (99NEXTRAY), NUM Decision threshold, CODE Finding = Abnormal | Normal (SCT)
 *         unless the gate rejected the view, CODE Out of distribution = Yes | No (SCT) and NUM its score when the model has a gate,
 *         TEXT View position, CODE Laterality (SCT) when the header gives them; each INFERRED FROM the IMAGE
 *       CONTAINS CONTAINER Study result (99NEXTRAY): NUM probability (mean of the views the gate accepted), threshold,
 *         CODE finding (or TEXT No decision when every view was rejected), NUM views counted, TEXT per view left out
 *         (rejected by the gate, refused by the header gate, unreadable) and why
 *     CONTAINS TEXT Comment (121106, DCM) = the research-use notice
 *
 * Codes that DICOM has are used (DCM, SCT, UCUM); the rest are private under the coding scheme 99NEXTRAY, declared in
 * the Coding Scheme Identification Sequence.
 */
import type { DicomHeader } from '../data/dicom/header.js';
import { dicomDateTime, formatDS, tag, writePart10, type DicomElement, type DicomItem } from './dicom-writer.js';
import { IMPLEMENTATION_CLASS_UID, resultUids } from './uid.js';

export const COMPREHENSIVE_SR = '1.2.840.10008.5.1.4.1.1.88.33';

/** The notice every report carries. */
export const RESEARCH_NOTICE =
  'Research use only. Not a medical device and not for diagnostic use: the result of a model trained on MURA upper-extremity radiographs, ' +
  'not verified by a physician.';

export interface Code {
  value: string;
  scheme: string;
  meaning: string;
}

const dcm = (value: string, meaning: string): Code => ({ value, scheme: 'DCM', meaning });
const sct = (value: string, meaning: string): Code => ({ value, scheme: 'SCT', meaning });
const own = (value: string, meaning: string): Code => ({ value, scheme: '99NEXTRAY', meaning });

/** Why a view the OOD gate rejected is left out of its study's result. */
export const OOD_REASON = 'rejected by the out-of-distribution gate (not like the radiographs the model was trained on); not counted in the study result';
/** The study result when the gate rejected every view. */
export const NO_DECISION = 'no decision: every view was rejected by the out-of-distribution gate; have the study read by a person';

export const CODES = {
  report: dcm('126000', 'Imaging Measurement Report'),
  language: dcm('121049', 'Language of Content Item and Descendants'),
  english: { value: 'en', scheme: 'RFC5646', meaning: 'English' },
  observerType: dcm('121005', 'Observer Type'),
  device: dcm('121007', 'Device'),
  deviceUid: dcm('121012', 'Device Observer UID'),
  deviceName: dcm('121013', 'Device Observer Name'),
  deviceModel: dcm('121015', 'Device Observer Model Name'),
  imageLibrary: dcm('111028', 'Image Library'),
  imageLibraryGroup: dcm('126200', 'Image Library Group'),
  measurements: dcm('126010', 'Imaging Measurements'),
  measurementGroup: dcm('125007', 'Measurement Group'),
  trackingId: dcm('112039', 'Tracking Identifier'),
  trackingUid: dcm('112040', 'Tracking Unique Identifier'),
  algorithmName: dcm('111001', 'Algorithm Name'),
  algorithmVersion: dcm('111003', 'Algorithm Version'),
  algorithmParameters: dcm('111002', 'Algorithm Parameters'),
  comment: dcm('121106', 'Comment'),
  finding: dcm('121071', 'Finding'),
  abnormal: sct('263654008', 'Abnormal'),
  normal: sct('17621005', 'Normal'),
  yes: sct('373066001', 'Yes'),
  no: sct('373067005', 'No'),
  laterality: sct('272741003', 'Laterality'),
  right: sct('24028007', 'Right'),
  left: sct('7771000', 'Left'),
  noUnits: { value: '1', scheme: 'UCUM', meaning: 'no units' },
  probability: own('PABN', 'Probability of abnormality'),
  threshold: own('THRESH', 'Decision threshold'),
  ood: own('OOD', 'Out of distribution'),
  oodScore: own('OODSCORE', 'Out-of-distribution score'),
  viewPosition: own('VIEWPOS', 'View Position'),
  studyResult: own('STUDY', 'Study result'),
  viewsCounted: own('VIEWS', 'Views counted'),
  viewLeftOut: own('LEFTOUT', 'View left out'),
  noDecision: own('NODECISION', 'No decision'),
  inputsDigest: own('INPUTS', 'Inputs digest'),
} as const satisfies Record<string, Code>;

/** One source view and what the model made of it. */
export interface SrView {
  sopClassUid: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  /** How the view was named to neXt-Ray (a file path, an Orthanc instance id); default its SOP Instance UID. */
  name?: string;
  viewPosition?: string;
  laterality?: string;
  probability: number;
  decision: 'abnormal' | 'normal';
  threshold: number;
  /** When the model has an OOD gate: its verdict and score. */
  ood?: boolean;
  oodScore?: number;
}

export interface StudySrInput {
  /** A source image's header: Patient and General Study modules, Study Instance UID, Specific Character Set. */
  source: DicomHeader;
  views: readonly SrView[];
  /** Views of the study that were not predicted, with the reason (refused by the header gate, unreadable ...). */
  leftOut?: ReadonlyArray<{ name: string; reason: string }>;
  /**
   * Instances of the study that were looked at but not predicted (refused, unreadable), by SOP Class, SOP Instance and
   * Series: listed in the Pertinent Other Evidence Sequence beside the predicted views of the Current Requested
   * Procedure Evidence Sequence, so the report names every input it considered.
   */
  otherEvidence?: ReadonlyArray<{ sopClassUid: string; sopInstanceUid: string; seriesInstanceUid: string }>;
  /**
   * A digest of what the report was made from (a PACS worker: the study's input SOP Instance UIDs), stored as a TEXT
   * item so that a later run can tell an up-to-date report from one the study has outgrown.
   */
  inputsDigest?: string;
  /**
   * The study's probability, decision and threshold (default: the mean of the views the OOD gate accepted, as
   * `predict --studies-out`); null: no decision (every view rejected).
   */
  study?: { probability: number; decision: 'abnormal' | 'normal'; threshold: number } | null;
  model: { name: string; sha256: string; operatingPoint: string };
  /** neXt-Ray's version, for Software Versions. */
  softwareVersion: string;
  /** Content date and time (default now). */
  now?: Date;
  notice?: string;
}

export interface StudySr {
  bytes: Uint8Array;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

const el = (group: number, element: number, vr: DicomElement['vr'], value: DicomElement['value']): DicomElement => ({ tag: tag(group, element), vr, value });

function codeItem(c: Code): DicomItem {
  return [el(0x0008, 0x0100, 'SH', c.value), el(0x0008, 0x0102, 'SH', c.scheme), el(0x0008, 0x0104, 'LO', c.meaning)];
}

const codeSeq = (group: number, element: number, c: Code): DicomElement => el(group, element, 'SQ', [codeItem(c)]);

type Relationship = 'CONTAINS' | 'HAS CONCEPT MOD' | 'HAS OBS CONTEXT' | 'INFERRED FROM' | 'HAS PROPERTIES';

/** A content item (PS3.3 C.17.3): its relationship to the parent, value type, concept name and value. */
function item(rel: Relationship | null, valueType: string, concept: Code | null, value: DicomElement[]): DicomItem {
  return [
    ...(rel ? [el(0x0040, 0xa010, 'CS', rel)] : []),
    el(0x0040, 0xa040, 'CS', valueType),
    ...(concept ? [codeSeq(0x0040, 0xa043, concept)] : []),
    ...value,
  ];
}

const text = (rel: Relationship, concept: Code, s: string): DicomItem => item(rel, 'TEXT', concept, [el(0x0040, 0xa160, 'UT', s)]);
const code = (rel: Relationship, concept: Code, v: Code): DicomItem => item(rel, 'CODE', concept, [codeSeq(0x0040, 0xa168, v)]);
const uidref = (rel: Relationship, concept: Code, uid: string): DicomItem => item(rel, 'UIDREF', concept, [el(0x0040, 0xa124, 'UI', uid)]);
const num = (rel: Relationship, concept: Code, v: number, children: DicomItem[] = []): DicomItem =>
  item(rel, 'NUM', concept, [
    el(0x0040, 0xa300, 'SQ', [[codeSeq(0x0040, 0x08ea, CODES.noUnits), el(0x0040, 0xa30a, 'DS', formatDS(v))]]),
    ...(children.length ? [el(0x0040, 0xa730, 'SQ', children)] : []),
  ]);
const container = (rel: Relationship | null, concept: Code, children: DicomItem[]): DicomItem =>
  item(rel, 'CONTAINER', concept, [el(0x0040, 0xa050, 'CS', 'SEPARATE'), el(0x0040, 0xa730, 'SQ', children)]);
const image = (rel: Relationship, v: Pick<SrView, 'sopClassUid' | 'sopInstanceUid'>): DicomItem =>
  item(rel, 'IMAGE', null, [el(0x0008, 0x1199, 'SQ', [[el(0x0008, 0x1150, 'UI', v.sopClassUid), el(0x0008, 0x1155, 'UI', v.sopInstanceUid)]])]);

/** Patient and General Study attributes copied from the source when present; Type 2 ones written empty otherwise. */
export function copied(h: DicomHeader): DicomElement[] {
  const out: DicomElement[] = [];
  const put = (group: number, element: number, vr: DicomElement['vr'], v: string | undefined, type2: boolean): void => {
    if (v !== undefined) out.push(el(group, element, vr, v));
    else if (type2) out.push(el(group, element, vr, ''));
  };
  put(0x0008, 0x0005, 'CS', h.specificCharacterSet, false);
  put(0x0010, 0x0010, 'PN', h.patient.name, true);
  put(0x0010, 0x0020, 'LO', h.patient.id, true);
  put(0x0010, 0x0021, 'LO', h.patient.issuerOfPatientId, false);
  put(0x0010, 0x0030, 'DA', h.patient.birthDate, true);
  put(0x0010, 0x0040, 'CS', h.patient.sex, true);
  put(0x0008, 0x0020, 'DA', h.study.date, true);
  put(0x0008, 0x0030, 'TM', h.study.time, true);
  put(0x0008, 0x0090, 'PN', h.study.referringPhysicianName, true);
  put(0x0020, 0x0010, 'SH', h.study.id, true);
  put(0x0008, 0x0050, 'SH', h.study.accessionNumber, true);
  put(0x0008, 0x1030, 'LO', h.study.description, false);
  return out;
}

function lateralityCode(l: string | undefined): Code | null {
  return l === 'R' ? CODES.right : l === 'L' ? CODES.left : null;
}

/** The SR's data set and UIDs (buildStudySr writes it as a Part 10 file). */
export async function studySrDataSet(input: StudySrInput): Promise<{ dataSet: DicomElement[]; studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }> {
  const h = input.source;
  const studyUid = h.studyInstanceUid;
  if (!studyUid) throw new RangeError('the source has no Study Instance UID: a results SR belongs to a DICOM study');
  if (!input.views.length) throw new RangeError(`study ${studyUid}: no predicted view to report`);
  const { seriesInstanceUid, sopInstanceUid } = await resultUids(studyUid, input.model.sha256);
  const now = dicomDateTime(input.now ?? new Date());
  const views = input.views;
  // The study's result counts the views the OOD gate accepted, as `predict`, the server and the page do; a study
  // whose views were all rejected gets no probability and no finding, said in words.
  const counted = views.filter((v) => !v.ood);
  const rejected = views.filter((v) => v.ood);
  const threshold = views[0]!.threshold;
  const mean = counted.length ? counted.reduce((s, v) => s + v.probability, 0) / counted.length : null;
  const study =
    input.study !== undefined ? input.study : mean === null ? null : { probability: mean, decision: mean > threshold ? ('abnormal' as const) : ('normal' as const), threshold };

  const groups = views.map((v) => {
    const from = [image('INFERRED FROM', v)];
    const lat = lateralityCode(v.laterality);
    return container('CONTAINS', CODES.measurementGroup, [
      text('CONTAINS', CODES.trackingId, v.name ?? v.sopInstanceUid),
      uidref('CONTAINS', CODES.trackingUid, v.sopInstanceUid),
      num('CONTAINS', CODES.probability, v.probability, from),
      num('CONTAINS', CODES.threshold, v.threshold),
      // A view the gate rejected carries its numbers for research but no finding: it is not a reading of a radiograph.
      ...(v.ood ? [] : [item('CONTAINS', 'CODE', CODES.finding, [codeSeq(0x0040, 0xa168, v.decision === 'abnormal' ? CODES.abnormal : CODES.normal), el(0x0040, 0xa730, 'SQ', from)])]),
      ...(v.ood !== undefined ? [code('CONTAINS', CODES.ood, v.ood ? CODES.yes : CODES.no)] : []),
      ...(v.oodScore !== undefined && Number.isFinite(v.oodScore) ? [num('CONTAINS', CODES.oodScore, v.oodScore)] : []),
      ...(v.viewPosition ? [text('CONTAINS', CODES.viewPosition, v.viewPosition)] : []),
      ...(lat ? [code('CONTAINS', CODES.laterality, lat)] : []),
    ]);
  });
  const studyGroup = container('CONTAINS', CODES.studyResult, [
    ...(study
      ? [
          num('CONTAINS', CODES.probability, study.probability),
          num('CONTAINS', CODES.threshold, study.threshold),
          code('CONTAINS', CODES.finding, study.decision === 'abnormal' ? CODES.abnormal : CODES.normal),
        ]
      : [num('CONTAINS', CODES.threshold, threshold), text('CONTAINS', CODES.noDecision, NO_DECISION)]),
    num('CONTAINS', CODES.viewsCounted, counted.length),
    ...rejected.map((v) => text('CONTAINS', CODES.viewLeftOut, `${v.name ?? v.sopInstanceUid}: ${OOD_REASON}`)),
    ...(input.leftOut ?? []).map((l) => text('CONTAINS', CODES.viewLeftOut, `${l.name}: ${l.reason}`)),
  ]);
  const content: DicomItem[] = [
    code('HAS CONCEPT MOD', CODES.language, CODES.english),
    code('HAS OBS CONTEXT', CODES.observerType, CODES.device),
    uidref('HAS OBS CONTEXT', CODES.deviceUid, IMPLEMENTATION_CLASS_UID),
    text('HAS OBS CONTEXT', CODES.deviceName, 'neXt-Ray'),
    text('HAS OBS CONTEXT', CODES.deviceModel, input.model.name),
    container('CONTAINS', CODES.imageLibrary, [container('CONTAINS', CODES.imageLibraryGroup, views.map((v) => image('CONTAINS', v)))]),
    text('CONTAINS', CODES.algorithmName, input.model.name),
    text('CONTAINS', CODES.algorithmVersion, `sha256:${input.model.sha256}`),
    text('CONTAINS', CODES.algorithmParameters, input.model.operatingPoint),
    container('CONTAINS', CODES.measurements, [...groups, studyGroup]),
    text('CONTAINS', CODES.comment, input.notice ?? RESEARCH_NOTICE),
    ...(input.inputsDigest ? [text('CONTAINS', CODES.inputsDigest, input.inputsDigest)] : []),
  ];

  // The evidence: the source images, by series; the instances looked at but not predicted as other evidence.
  const hierarchical = (refs: ReadonlyArray<Pick<SrView, 'sopClassUid' | 'sopInstanceUid' | 'seriesInstanceUid'>>): DicomItem => {
    const bySeries = new Map<string, Array<(typeof refs)[number]>>();
    for (const v of refs) bySeries.set(v.seriesInstanceUid, [...(bySeries.get(v.seriesInstanceUid) ?? []), v]);
    return [
      el(0x0008, 0x1115, 'SQ', [...bySeries].map(([series, vs]) => [
        el(0x0008, 0x1199, 'SQ', vs.map((v) => [el(0x0008, 0x1150, 'UI', v.sopClassUid), el(0x0008, 0x1155, 'UI', v.sopInstanceUid)])),
        el(0x0020, 0x000e, 'UI', series),
      ])),
      el(0x0020, 0x000d, 'UI', studyUid),
    ];
  };
  const evidence = hierarchical(views);
  const other = input.otherEvidence?.length ? hierarchical(input.otherEvidence) : null;

  const dataSet: DicomElement[] = [
    ...copied(h),
    // SOP Common
    el(0x0008, 0x0016, 'UI', COMPREHENSIVE_SR),
    el(0x0008, 0x0018, 'UI', sopInstanceUid),
    el(0x0008, 0x0012, 'DA', now.date),
    el(0x0008, 0x0013, 'TM', now.time),
    // SR Document Series
    el(0x0008, 0x0060, 'CS', 'SR'),
    el(0x0020, 0x000e, 'UI', seriesInstanceUid),
    el(0x0020, 0x0011, 'IS', '999'),
    el(0x0008, 0x103e, 'LO', 'neXt-Ray results (research use only)'),
    el(0x0008, 0x1111, 'SQ', []),
    // General Study (the source's UID)
    el(0x0020, 0x000d, 'UI', studyUid),
    // General Equipment
    el(0x0008, 0x0070, 'LO', 'neXt-Ray'),
    el(0x0008, 0x1090, 'LO', 'neXt-Ray'),
    el(0x0018, 0x1020, 'LO', input.softwareVersion),
    // SR Document General
    el(0x0020, 0x0013, 'IS', '1'),
    el(0x0008, 0x0023, 'DA', now.date),
    el(0x0008, 0x0033, 'TM', now.time),
    el(0x0040, 0xa491, 'CS', 'COMPLETE'),
    el(0x0040, 0xa493, 'CS', 'UNVERIFIED'),
    el(0x0040, 0xa372, 'SQ', []),
    el(0x0040, 0xa375, 'SQ', [evidence]),
    ...(other ? [el(0x0040, 0xa385, 'SQ', [other])] : []),
    // Coding schemes beyond the standard's
    el(0x0008, 0x0110, 'SQ', [[el(0x0008, 0x0102, 'SH', '99NEXTRAY'), el(0x0008, 0x0115, 'ST', 'neXt-Ray private codes'), el(0x0008, 0x0116, 'ST', 'neXt-Ray')]]),
    // SR Document Content: the root container
    ...container(null, CODES.report, content),
  ];
  return { dataSet, studyInstanceUid: studyUid, seriesInstanceUid, sopInstanceUid };
}

/** The study's results SR as a DICOM Part 10 file (see the module comment). Throws RangeError on inputs it cannot represent. */
export async function buildStudySr(input: StudySrInput): Promise<StudySr> {
  const { dataSet, ...uids } = await studySrDataSet(input);
  return { bytes: writeSrFile(dataSet, uids.sopInstanceUid, input.softwareVersion), ...uids };
}

/** A Comprehensive SR data set as a Part 10 file. */
export function writeSrFile(dataSet: readonly DicomElement[], sopInstanceUid: string, softwareVersion: string): Uint8Array {
  return writePart10({ sopClassUid: COMPREHENSIVE_SR, sopInstanceUid, implementationClassUid: IMPLEMENTATION_CLASS_UID, implementationVersionName: `NEXTRAY_${softwareVersion}`.slice(0, 16) }, dataSet);
}
