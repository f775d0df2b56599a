/**
 * A view's class-activation heatmap as a DICOM Secondary Capture image (PS3.3 A.8.1, SOP Class
 * 1.2.840.10008.5.1.4.1.1.7): the map in viridis over the radiograph at its own size (the core's camOnImage and
 * overlayHeatmap, as `predict --heatmaps` draws it, without the legend), 8-bit RGB, in the source's study (its
 * Patient and General Study modules copied) and a series of its own beside the SR's, with UIDs derived from
 * (study, model, source view) so a re-run replaces the image. The source image is named in the Source Image
 * Sequence. Bytes out; browser-safe.
 */
import type { DicomHeader } from '../data/dicom/header.js';
import type { Preprocessing } from '../data/preprocess.js';
import { camOnImage } from '../inference/core/cam.js';
import { overlayHeatmap } from '../inference/core/colormap.js';
import { dicomDateTime, tag, writePart10, type DicomElement } from './dicom-writer.js';
import { copied, RESEARCH_NOTICE } from './sr.js';
import { heatmapUids, IMPLEMENTATION_CLASS_UID } from './uid.js';

export const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

export interface HeatmapScInput {
  /** The source image's header (study, patient, SOP Class and Instance, series). */
  source: DicomHeader;
  /** The decoded source image, grey in [0, 1], row-major. */
  grey: Float32Array;
  width: number;
  height: number;
  /** The map over the model's input grid (camH x camW) and the preprocessing that made that grid. */
  cam: Float32Array;
  camH: number;
  camW: number;
  preprocessing: Pick<Preprocessing, 'size' | 'resize'>;
  model: { name: string; sha256: string };
  softwareVersion: string;
  /** e.g. 'P(abnormal) 0.87' — goes into the Derivation Description. */
  caption?: string;
  now?: Date;
}

export interface HeatmapSc {
  bytes: Uint8Array;
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

const el = (group: number, element: number, vr: DicomElement['vr'], value: DicomElement['value']): DicomElement => ({ tag: tag(group, element), vr, value });

export async function buildHeatmapSc(input: HeatmapScInput): Promise<HeatmapSc> {
  const h = input.source;
  if (!h.studyInstanceUid || !h.sopInstanceUid || !h.sopClassUid) throw new RangeError('the source view needs Study Instance, SOP Instance and SOP Class UIDs to be referenced');
  const { seriesInstanceUid, sopInstanceUid } = await heatmapUids(h.studyInstanceUid, input.model.sha256, h.sopInstanceUid);
  const map = camOnImage(input.cam, input.camH, input.camW, input.width, input.height, input.preprocessing);
  const rgba = overlayHeatmap(input.grey, map, input.width, input.height);
  const rgb = new Uint8Array(input.width * input.height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = rgba[i]!;
    rgb[j + 1] = rgba[i + 1]!;
    rgb[j + 2] = rgba[i + 2]!;
  }
  const now = dicomDateTime(input.now ?? new Date());
  const dataSet: DicomElement[] = [
    ...copied(h),
    // SOP Common
    el(0x0008, 0x0016, 'UI', SECONDARY_CAPTURE),
    el(0x0008, 0x0018, 'UI', sopInstanceUid),
    el(0x0008, 0x0012, 'DA', now.date),
    el(0x0008, 0x0013, 'TM', now.time),
    // General Series
    el(0x0008, 0x0060, 'CS', 'OT'),
    el(0x0020, 0x000e, 'UI', seriesInstanceUid),
    el(0x0020, 0x0011, 'IS', '998'),
    el(0x0008, 0x103e, 'LO', 'neXt-Ray heatmaps (research use only)'),
    // General Study (the source's UID)
    el(0x0020, 0x000d, 'UI', h.studyInstanceUid),
    // General Equipment, SC Equipment (Conversion Type: workstation)
    el(0x0008, 0x0070, 'LO', 'neXt-Ray'),
    el(0x0008, 0x1090, 'LO', 'neXt-Ray'),
    el(0x0018, 0x1020, 'LO', input.softwareVersion),
    el(0x0008, 0x0064, 'CS', 'WSD'),
    // General Image
    el(0x0020, 0x0013, 'IS', '1'),
    el(0x0020, 0x0020, 'CS', ''),
    el(0x0008, 0x0023, 'DA', now.date),
    el(0x0008, 0x0033, 'TM', now.time),
    el(0x0008, 0x0008, 'CS', 'DERIVED\\SECONDARY'),
    el(0x0008, 0x2111, 'ST', `Class activation map of ${input.model.name} (sha256:${input.model.sha256.slice(0, 16)}...) over the source image${input.caption ? `; ${input.caption}` : ''}. ${RESEARCH_NOTICE}`.slice(0, 1024)),
    el(0x0008, 0x2112, 'SQ', [[el(0x0008, 0x1150, 'UI', h.sopClassUid), el(0x0008, 0x1155, 'UI', h.sopInstanceUid)]]),
    el(0x0028, 0x0301, 'CS', 'NO'),
    el(0x0028, 0x2110, 'CS', '00'),
    ...(h.imageLaterality ? [el(0x0020, 0x0062, 'CS', h.imageLaterality)] : []),
    // Image Pixel: 8-bit RGB, interleaved
    el(0x0028, 0x0002, 'US', [3]),
    el(0x0028, 0x0004, 'CS', 'RGB'),
    el(0x0028, 0x0006, 'US', [0]),
    el(0x0028, 0x0010, 'US', [input.height]),
    el(0x0028, 0x0011, 'US', [input.width]),
    el(0x0028, 0x0100, 'US', [8]),
    el(0x0028, 0x0101, 'US', [8]),
    el(0x0028, 0x0102, 'US', [7]),
    el(0x0028, 0x0103, 'US', [0]),
    el(0x7fe0, 0x0010, 'OB', rgb),
    // SC Image
    el(0x0018, 0x1012, 'DA', now.date),
    el(0x0018, 0x1014, 'TM', now.time),
  ];
  const bytes = writePart10(
    { sopClassUid: SECONDARY_CAPTURE, sopInstanceUid, implementationClassUid: IMPLEMENTATION_CLASS_UID, implementationVersionName: `NEXTRAY_${input.softwareVersion}`.slice(0, 16) },
    dataSet,
  );
  return { bytes, seriesInstanceUid, sopInstanceUid };
}
