/**
 * The attributes of a DICOM data set that neXt-Ray acts on — identification (SOP, study, series UIDs), what the
 * image shows (Modality, Body Part Examined, View Position, Laterality), the Image Pixel module, and the Patient
 * and General Study modules that a result (the SR) copies — read from dicom-parser's index of the file. Text values
 * are kept as dicom-parser gives them: one character per byte of the file, so they are written back byte for byte
 * under the source's Specific Character Set. Browser-safe.
 */
import type * as dicomParserNs from 'dicom-parser';

export type DataSet = ReturnType<typeof dicomParserNs.parseDicom>;

export interface DicomPixelModule {
  /** Pixel Data (7FE0,0010) is there. */
  present: boolean;
  rows?: number;
  columns?: number;
  bitsAllocated?: number;
  bitsStored?: number;
  highBit?: number;
  signed: boolean;
  samplesPerPixel: number;
  photometric?: string;
  planarConfiguration: number;
  /** Number of Frames (0028,0008), 1 when absent. */
  frames: number;
  encapsulated: boolean;
}

export interface DicomHeader {
  transferSyntax: string;
  specificCharacterSet?: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  /** Modality (0008,0060), upper case. */
  modality?: string;
  /** Body Part Examined (0018,0015), upper case. */
  bodyPartExamined?: string;
  /** View Position (0018,5101): AP, PA, LL, RL, ... */
  viewPosition?: string;
  /** Laterality (0020,0060) of the series: R or L. */
  laterality?: string;
  /** Image Laterality (0020,0062): R, L, U (unpaired) or B (both). */
  imageLaterality?: string;
  instanceNumber?: string;
  /** Manufacturer (0008,0070) and Manufacturer's Model Name (0008,1090): tell neXt-Ray's own results from inputs. */
  manufacturer?: string;
  manufacturerModelName?: string;
  patient: { name?: string; id?: string; issuerOfPatientId?: string; birthDate?: string; sex?: string };
  study: { date?: string; time?: string; id?: string; accessionNumber?: string; referringPhysicianName?: string; description?: string };
  series: { number?: string; description?: string };
  pixel: DicomPixelModule;
}

function str(ds: DataSet, tag: string): string | undefined {
  const el = ds.elements[tag];
  if (!el || el.length === 0) return undefined;
  const v = ds.string(tag);
  return v === undefined || v === '' ? undefined : v;
}

function upper(v: string | undefined): string | undefined {
  return v === undefined ? undefined : v.toUpperCase();
}

/** The header of a parsed data set (see the module comment). */
export function headerOf(ds: DataSet, transferSyntax: string): DicomHeader {
  const pixel = ds.elements.x7fe00010;
  const spp = ds.uint16('x00280002') ?? 1;
  const h: DicomHeader = {
    transferSyntax,
    patient: {},
    study: {},
    series: {},
    pixel: {
      present: !!pixel,
      signed: (ds.uint16('x00280103') ?? 0) === 1,
      samplesPerPixel: spp,
      planarConfiguration: ds.uint16('x00280006') ?? 0,
      frames: Math.max(1, ds.intString('x00280008') ?? 1),
      encapsulated: !!pixel?.encapsulatedPixelData,
    },
  };
  const set = <K extends keyof DicomHeader>(k: K, v: DicomHeader[K] | undefined): void => {
    if (v !== undefined) h[k] = v;
  };
  set('specificCharacterSet', str(ds, 'x00080005'));
  set('sopClassUid', str(ds, 'x00080016'));
  set('sopInstanceUid', str(ds, 'x00080018'));
  set('studyInstanceUid', str(ds, 'x0020000d'));
  set('seriesInstanceUid', str(ds, 'x0020000e'));
  set('modality', upper(str(ds, 'x00080060')));
  set('bodyPartExamined', upper(str(ds, 'x00180015')));
  set('viewPosition', upper(str(ds, 'x00185101')));
  set('laterality', upper(str(ds, 'x00200060')));
  set('imageLaterality', upper(str(ds, 'x00200062')));
  set('instanceNumber', str(ds, 'x00200013'));
  set('manufacturer', str(ds, 'x00080070'));
  set('manufacturerModelName', str(ds, 'x00081090'));
  const fill = <T extends object>(o: T, pairs: Array<[keyof T, string]>): void => {
    for (const [k, tag] of pairs) {
      const v = str(ds, tag);
      if (v !== undefined) (o as Record<keyof T, string>)[k] = v;
    }
  };
  fill(h.patient, [['name', 'x00100010'], ['id', 'x00100020'], ['issuerOfPatientId', 'x00100021'], ['birthDate', 'x00100030'], ['sex', 'x00100040']]);
  fill(h.study, [['date', 'x00080020'], ['time', 'x00080030'], ['id', 'x00200010'], ['accessionNumber', 'x00080050'], ['referringPhysicianName', 'x00080090'], ['description', 'x00081030']]);
  fill(h.series, [['number', 'x00200011'], ['description', 'x0008103e']]);
  const p = h.pixel;
  const num = (k: 'rows' | 'columns' | 'bitsAllocated' | 'bitsStored' | 'highBit', tag: string): void => {
    const v = ds.uint16(tag);
    if (v !== undefined) p[k] = v;
  };
  num('rows', 'x00280010');
  num('columns', 'x00280011');
  num('bitsAllocated', 'x00280100');
  num('bitsStored', 'x00280101');
  num('highBit', 'x00280102');
  const photometric = upper(str(ds, 'x00280004'));
  if (photometric !== undefined) p.photometric = photometric.trim();
  return h;
}

/** What a prediction keeps of a DICOM view's header (the CSV columns and the SR's references). */
export interface DicomViewInfo {
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  sopClassUid?: string;
  modality?: string;
  bodyPartExamined?: string;
  viewPosition?: string;
  laterality?: string;
  imageLaterality?: string;
}

export function viewInfoOf(h: DicomHeader): DicomViewInfo {
  const out: DicomViewInfo = {};
  for (const k of ['studyInstanceUid', 'seriesInstanceUid', 'sopInstanceUid', 'sopClassUid', 'modality', 'bodyPartExamined', 'viewPosition', 'laterality', 'imageLaterality'] as const) {
    const v = h[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
