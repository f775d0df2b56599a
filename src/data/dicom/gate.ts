/**
 * The header gate: what neXt-Ray agrees to predict on, decided from the DICOM header before any pixel is decoded.
 * Browser-safe.
 *
 * - Modality (0008,0060, defined terms of PS3.3 C.7.3.1.1.1): CR (Computed Radiography), DX (Digital Radiography)
 *   and RG (Radiographic imaging, conventional film/screen — digitised films) are radiographs and accepted.
 *   OT (Other) is accepted with a warning (secondary captures of radiographs are often labelled so). A missing
 *   Modality is accepted silently when the SOP Class is a radiograph's (CR or DX Image Storage), else with a
 *   warning. Every other modality — CT, MR, US, NM, PT, MG, XA, RF, IO, PX, SR, PR, KO, SEG, RT*, DOC and the rest —
 *   is refused with the reason: the model was trained on upper-extremity radiographs only.
 * - The Image Pixel module (PS3.3 C.7.6.3) must be there: Pixel Data, Rows, Columns, Bits Allocated and
 *   Photometric Interpretation; an object without it (an SR, a presentation state, a truncated instance) is refused.
 * - Body Part Examined (0018,0015) outside the upper extremity gives a warning (the prediction is still made): the
 *   accepted values are the upper-extremity terms of PS3.16 Annex L (the Body Part Examined values of the regions in
 *   CID 4031) and the ones seen in practice — see UPPER_EXTREMITY_BODY_PARTS. An absent value gives no warning.
 * - DX "For Processing" (raw detector data, not meant for display) is accepted with a warning.
 */
import type { DicomHeader } from './header.js';

/** Radiograph modalities (PS3.3 C.7.3.1.1.1 defined terms). */
export const RADIOGRAPH_MODALITIES: Readonly<Record<string, string>> = {
  CR: 'Computed Radiography',
  DX: 'Digital Radiography',
  RG: 'Radiographic imaging (conventional film/screen)',
};

/** Names of other modalities, for refusals (PS3.3 C.7.3.1.1.1). */
export const OTHER_MODALITIES: Readonly<Record<string, string>> = {
  CT: 'Computed Tomography',
  MR: 'Magnetic Resonance',
  US: 'Ultrasound',
  NM: 'Nuclear Medicine',
  PT: 'Positron emission tomography',
  MG: 'Mammography',
  XA: 'X-Ray Angiography',
  RF: 'Radio Fluoroscopy',
  IO: 'Intra-oral Radiography',
  PX: 'Panoramic X-Ray',
  DG: 'Diaphanography',
  BMD: 'Bone Densitometry (X-ray)',
  SR: 'SR Document',
  PR: 'Presentation State',
  KO: 'Key Object Selection',
  SEG: 'Segmentation',
  REG: 'Registration',
  RTIMAGE: 'RT Image',
  RTDOSE: 'RT Dose',
  RTSTRUCT: 'RT Structure Set',
  RTPLAN: 'RT Plan',
  DOC: 'Document',
  ES: 'Endoscopy',
  XC: 'External-camera Photography',
  OP: 'Ophthalmic Photography',
  OPT: 'Ophthalmic Tomography',
  SM: 'Slide Microscopy',
  ECG: 'Electrocardiography',
  OT: 'Other',
};

/** SOP Classes of radiographs (PS3.4 B.5): CR Image Storage, DX Image Storage for presentation and for processing. */
export const RADIOGRAPH_SOP_CLASSES: Readonly<Record<string, string>> = {
  '1.2.840.10008.5.1.4.1.1.1': 'Computed Radiography Image Storage',
  '1.2.840.10008.5.1.4.1.1.1.1': 'Digital X-Ray Image Storage - For Presentation',
  '1.2.840.10008.5.1.4.1.1.1.1.1': 'Digital X-Ray Image Storage - For Processing',
};
const DX_FOR_PROCESSING = '1.2.840.10008.5.1.4.1.1.1.1.1';

/**
 * Body Part Examined values of the upper extremity: PS3.16 Annex L's terms for the regions of CID 4031 from the
 * shoulder girdle to the fingers, plus the spellings seen in practice for the whole limb. MURA's seven study types
 * (shoulder, humerus, elbow, forearm, wrist, hand, finger) are all here.
 */
export const UPPER_EXTREMITY_BODY_PARTS: readonly string[] = [
  'SHOULDER',
  'CLAVICLE',
  'SCAPULA',
  'ACJOINT',
  'ARM',
  'HUMERUS',
  'ELBOW',
  'FOREARM',
  'RADIUS',
  'ULNA',
  'WRIST',
  'HAND',
  'FINGER',
  'THUMB',
  'UPPER LIMB',
  'UPPERLIMB',
  'UPPER EXTREMITY',
  'UPR EXTREMITY',
  'EXTREMITY',
];

export type GateVerdict = { accepted: true; warnings: string[] } | { accepted: false; reason: string; warnings: string[] };

/**
 * The modality rule alone (null: not refused by it), for callers that know a series' Modality before they have its
 * files: a PACS worker skips a CT series without downloading it.
 */
export function modalityRefusal(modality: string | undefined): string | null {
  const m = modality?.toUpperCase();
  if (m === undefined || m === '' || RADIOGRAPH_MODALITIES[m] || m === 'OT') return null;
  const name = OTHER_MODALITIES[m];
  return `Modality ${m}${name ? ` (${name})` : ''} is not a radiograph: neXt-Ray reads CR, DX and RG images of the upper extremity; refused before inference`;
}

/** The gate's verdict on a header (rules in the module comment). */
export function gateHeader(h: DicomHeader): GateVerdict {
  const warnings: string[] = [];
  const sop = h.sopClassUid ? `${h.sopClassUid}${RADIOGRAPH_SOP_CLASSES[h.sopClassUid] ? ` (${RADIOGRAPH_SOP_CLASSES[h.sopClassUid]})` : ''}` : 'not given';
  const refuse = (reason: string): GateVerdict => ({ accepted: false, reason, warnings });
  const m = h.modality;
  const refusal = modalityRefusal(m);
  if (refusal) return refuse(refusal);
  const p = h.pixel;
  if (!p.present) return refuse(`no Pixel Data (7FE0,0010): this DICOM object holds no image (SOP Class ${sop}); refused before inference`);
  const missing = [
    p.rows === undefined || p.rows === 0 ? 'Rows (0028,0010)' : null,
    p.columns === undefined || p.columns === 0 ? 'Columns (0028,0011)' : null,
    p.bitsAllocated === undefined ? 'Bits Allocated (0028,0100)' : null,
    p.photometric === undefined ? 'Photometric Interpretation (0028,0004)' : null,
  ].filter((x): x is string => x !== null);
  if (missing.length) return refuse(`incomplete Image Pixel module: ${missing.join(', ')} missing; refused before inference`);
  if (m === 'OT') warnings.push('Modality OT (Other): not known to be a radiograph; predicted anyway');
  else if (m === undefined && !(h.sopClassUid && RADIOGRAPH_SOP_CLASSES[h.sopClassUid])) {
    warnings.push(`no Modality (0008,0060) and SOP Class ${sop}: not known to be a radiograph; predicted anyway`);
  }
  if (h.sopClassUid === DX_FOR_PROCESSING) warnings.push('DX "For Processing" image (raw detector values, not meant for display): the model expects For Presentation images');
  const part = h.bodyPartExamined;
  if (part !== undefined && !UPPER_EXTREMITY_BODY_PARTS.includes(part)) {
    warnings.push(`Body Part Examined '${part}' is not part of the upper extremity; the model was trained on shoulder-to-finger radiographs (MURA)`);
  }
  return { accepted: true, warnings };
}
