/**
 * Any DICOMweb server (PS3.18) as a study source and result sink — Orthanc's DICOMweb plugin, dcm4chee, a cloud
 * PACS — with fetch and our own multipart/related parsing (./multipart.ts):
 *
 *   QIDO-RS  GET  {base}studies?limit=&offset=                      the studies (a producer's list)
 *            GET  {base}studies/{study}/series?includefield=0008103E  series: Modality, Series Description
 *            GET  {base}studies/{study}/instances                    instances: SOP Class, SOP Instance, Series
 *   WADO-RS  GET  {base}studies/{s}/series/{se}/instances/{i}        one instance, multipart/related;
 *                                                                   type="application/dicom", as stored (transfer-syntax=*)
 *   STOW-RS  POST {base}studies                                      results, multipart/related; type="application/dicom"
 *
 * Results with the SOP Instance UID of an earlier result replace it where the server overwrites (Orthanc:
 * "OverwriteInstances": true); DICOMweb has no delete, see docs/pacs.md.
 */
import { contentTypeParameter, buildMultipart, parseMultipart } from './multipart.js';
import { json, PacsError, PacsNotFoundError, request, type HttpOptions } from './http.js';
import type { IndexedInstance, IndexedSeries, ResultObject, ResultSink, StudyIndex, StudyRef, StudySource } from './store.js';

/** A DICOM JSON data set (PS3.18 F.2): tag -> { vr, Value }. */
type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

function first(ds: DicomJson, tagHex: string): string | undefined {
  const v = ds[tagHex]?.Value?.[0];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

const MULTIPART_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*';

export class DicomWeb implements StudySource, ResultSink {
  readonly name: string;
  constructor(
    private readonly base: string,
    private readonly http: HttpOptions,
  ) {
    this.name = `dicomweb ${base}`;
  }

  private async qido(path: string): Promise<DicomJson[]> {
    const r = await request(this.name, this.base + path, this.http, { headers: { accept: 'application/dicom+json' } });
    if (r.status === 204 || r.bytes.length === 0) return [];
    return json<DicomJson[]>(r, `${this.name}: QIDO-RS ${path}`);
  }

  async index(ref: StudyRef): Promise<StudyIndex> {
    const uid = ref.studyInstanceUid;
    if (!uid) throw new RangeError('a DICOMweb study reference needs its Study Instance UID');
    const series = await this.qido(`studies/${uid}/series?includefield=0008103E`);
    const instances = await this.qido(`studies/${uid}/instances?includefield=00080016`);
    if (!series.length) throw new PacsNotFoundError(`${this.name}: study ${uid} not found (QIDO-RS gave no series)`);
    const out = new Map<string, IndexedSeries>();
    for (const s of series) {
      const suid = first(s, '0020000E');
      if (!suid) continue;
      const modality = first(s, '00080060');
      const description = first(s, '0008103E');
      out.set(suid, { seriesInstanceUid: suid, ...(modality ? { modality: modality.toUpperCase() } : {}), ...(description ? { description } : {}), instances: [] });
    }
    for (const i of instances) {
      const suid = first(i, '0020000E');
      const sop = first(i, '00080018');
      if (!suid || !sop) continue;
      let s = out.get(suid);
      if (!s) out.set(suid, (s = { seriesInstanceUid: suid, instances: [] }));
      const cls = first(i, '00080016');
      s.instances.push({ sopInstanceUid: sop, ...(cls ? { sopClassUid: cls } : {}), key: `studies/${uid}/series/${suid}/instances/${sop}` });
    }
    return { studyInstanceUid: uid, series: [...out.values()] };
  }

  async fetch(_study: StudyIndex, _series: IndexedSeries, instance: IndexedInstance): Promise<Uint8Array> {
    const r = await request(this.name, this.base + instance.key, this.http, { headers: { accept: MULTIPART_DICOM } });
    const type = r.headers.get('content-type') ?? '';
    if (/^application\/dicom\b/i.test(type)) return r.bytes; // a server that answers a single part bare
    const parts = parseMultipart(r.bytes, type);
    const dicom = parts.find((p) => !p.headers['content-type'] || /application\/dicom\b/i.test(p.headers['content-type']));
    if (!dicom) throw new PacsError(`${this.name}: WADO-RS ${instance.key}: no application/dicom part in the answer (${parts.length} part(s), ${contentTypeParameter(type, 'type') ?? type})`, r.status);
    return dicom.body;
  }

  async *studies(): AsyncIterable<StudyRef> {
    const page = 100;
    for (let offset = 0; ; offset += page) {
      const studies = await this.qido(`studies?limit=${page}&offset=${offset}`);
      for (const s of studies) {
        const uid = first(s, '0020000D');
        if (uid) yield { studyInstanceUid: uid };
      }
      if (studies.length < page) return;
    }
  }

  async find(study: StudyIndex, seriesInstanceUid: string, sopInstanceUid: string): Promise<Uint8Array | null> {
    const inst = study.series.find((s) => s.seriesInstanceUid === seriesInstanceUid)?.instances.find((i) => i.sopInstanceUid === sopInstanceUid);
    if (!inst) return null;
    try {
      return await this.fetch(study, study.series[0]!, inst);
    } catch (err) {
      if (err instanceof PacsNotFoundError) return null;
      throw err;
    }
  }

  async store(_study: StudyIndex, objects: readonly ResultObject[]): Promise<void> {
    if (!objects.length) return;
    const { body, contentType } = buildMultipart(objects.map((o) => o.bytes));
    const r = await request(this.name, `${this.base}studies`, this.http, { method: 'POST', body, headers: { 'content-type': contentType, accept: 'application/dicom+json' } });
    if (!r.bytes.length) return;
    const answer = json<DicomJson | DicomJson[]>(r, `${this.name}: STOW-RS`);
    const ds = Array.isArray(answer) ? answer[0] : answer;
    const failed = (ds?.['00081198']?.Value ?? []) as DicomJson[];
    if (failed.length) {
      const which = failed.map((f) => `${first(f, '00081155') ?? '?'} (reason ${first(f, '00081197') ?? '?'})`).join(', ');
      throw new PacsError(`${this.name}: STOW-RS refused ${failed.length} of ${objects.length} object(s): ${which}`, r.status);
    }
  }
}
