/**
 * Orthanc's REST API as a study source and result sink, and its change log (`GET /changes`) for `pacs watch`.
 *
 *   GET  /changes?since=N&limit=M        the change log: {Changes: [{Seq, ChangeType, ResourceType, ID}], Done, Last}
 *   GET  /studies, /studies/{id}         study ids; a study's MainDicomTags (StudyInstanceUID)
 *   GET  /studies/{id}/series            each series' MainDicomTags (Modality, SeriesInstanceUID, SeriesDescription)
 *   GET  /studies/{id}/instances         each instance's MainDicomTags (SOPInstanceUID) and ParentSeries
 *   GET  /instances/{id}/file            the DICOM file as stored
 *   POST /instances                      store a DICOM file: {ID, Status: Success | AlreadyStored}
 *   DELETE /instances/{id}               remove one (to replace an outdated result: Orthanc keeps the first copy
 *                                        of a SOP Instance UID unless configured with OverwriteInstances)
 *   POST /tools/lookup                   a DICOM UID -> Orthanc ids
 */
import { json, PacsError, PacsNotFoundError, request, type HttpOptions } from './http.js';
import type { IndexedSeries, ResultObject, ResultSink, StudyIndex, StudyRef, StudySource } from './store.js';

export interface OrthancChange {
  Seq: number;
  ChangeType: string;
  ResourceType: string;
  ID: string;
}

interface OrthancSeries {
  ID: string;
  MainDicomTags: { SeriesInstanceUID?: string; Modality?: string; SeriesDescription?: string };
  Instances: string[];
}

interface OrthancInstance {
  ID: string;
  MainDicomTags: { SOPInstanceUID?: string };
  ParentSeries: string;
}

export class Orthanc implements StudySource, ResultSink {
  readonly name: string;
  constructor(
    private readonly base: string,
    private readonly http: HttpOptions,
  ) {
    this.name = `orthanc ${base}`;
  }

  private async get<T>(path: string): Promise<T> {
    return json<T>(await request(this.name, this.base + path, this.http), `${this.name}: GET ${path}`);
  }

  /** One page of the change log after `since`. */
  async changes(since: number, limit = 100): Promise<{ Changes: OrthancChange[]; Done: boolean; Last: number }> {
    return this.get(`changes?since=${since}&limit=${limit}`);
  }

  /** The sequence number of the newest change (where a worker that skips the history starts). */
  async lastChange(): Promise<number> {
    return (await this.get<{ Last: number }>('changes?last')).Last;
  }

  async studyIdOf(studyInstanceUid: string): Promise<string | null> {
    const found = json<Array<{ ID: string; Type: string }>>(
      await request(this.name, `${this.base}tools/lookup`, this.http, { method: 'POST', body: studyInstanceUid, headers: { 'content-type': 'text/plain' } }),
      `${this.name}: lookup`,
    );
    return found.find((f) => f.Type === 'Study')?.ID ?? null;
  }

  async index(ref: StudyRef): Promise<StudyIndex> {
    let id = ref.id;
    if (!id) {
      if (!ref.studyInstanceUid) throw new RangeError('a study reference needs an Orthanc id or a Study Instance UID');
      id = (await this.studyIdOf(ref.studyInstanceUid)) ?? undefined;
      if (!id) throw new PacsNotFoundError(`${this.name}: study ${ref.studyInstanceUid} not found`);
    }
    const study = await this.get<{ MainDicomTags: { StudyInstanceUID?: string } }>(`studies/${id}`);
    const series = await this.get<OrthancSeries[]>(`studies/${id}/series`);
    const instances = await this.get<OrthancInstance[]>(`studies/${id}/instances`);
    const byId = new Map(instances.map((i) => [i.ID, i]));
    const out: IndexedSeries[] = series.map((s) => ({
      seriesInstanceUid: s.MainDicomTags.SeriesInstanceUID ?? s.ID,
      ...(s.MainDicomTags.Modality ? { modality: s.MainDicomTags.Modality.toUpperCase() } : {}),
      ...(s.MainDicomTags.SeriesDescription ? { description: s.MainDicomTags.SeriesDescription } : {}),
      instances: s.Instances.map((iid) => ({ sopInstanceUid: byId.get(iid)?.MainDicomTags.SOPInstanceUID ?? iid, key: iid })),
    }));
    return { studyInstanceUid: study.MainDicomTags.StudyInstanceUID ?? ref.studyInstanceUid ?? id, id, series: out };
  }

  async fetch(_study: StudyIndex, _series: IndexedSeries, instance: { key: string }): Promise<Uint8Array> {
    return (await request(this.name, `${this.base}instances/${instance.key}/file`, this.http, { headers: { accept: 'application/dicom' } })).bytes;
  }

  async *studies(): AsyncIterable<StudyRef> {
    const ids = await this.get<string[]>('studies');
    for (const id of ids) {
      const s = await this.get<{ MainDicomTags: { StudyInstanceUID?: string } }>(`studies/${id}`);
      yield { id, ...(s.MainDicomTags.StudyInstanceUID ? { studyInstanceUid: s.MainDicomTags.StudyInstanceUID } : {}) };
    }
  }

  async find(study: StudyIndex, seriesInstanceUid: string, sopInstanceUid: string): Promise<Uint8Array | null> {
    const inst = study.series.find((s) => s.seriesInstanceUid === seriesInstanceUid)?.instances.find((i) => i.sopInstanceUid === sopInstanceUid);
    if (!inst) return null;
    try {
      return await this.fetch(study, study.series[0]!, inst);
    } catch (err) {
      if ((err as { status?: number }).status === 404) return null;
      throw err;
    }
  }

  private async post(bytes: Uint8Array): Promise<{ ID: string; Status: string }> {
    return json(await request(this.name, `${this.base}instances`, this.http, { method: 'POST', body: bytes, headers: { 'content-type': 'application/dicom' } }), `${this.name}: POST instances`);
  }

  async store(_study: StudyIndex, objects: readonly ResultObject[]): Promise<void> {
    for (const o of objects) {
      const r = await this.post(o.bytes);
      if (r.Status === 'AlreadyStored') {
        // An earlier version of this result (the study has changed since): replace it.
        await request(this.name, `${this.base}instances/${r.ID}`, this.http, { method: 'DELETE' });
        const again = await this.post(o.bytes);
        if (again.Status !== 'Success') throw new PacsError(`${this.name}: storing ${o.sopInstanceUid} again after deleting the old copy gave ${again.Status}`, 200, "see the archive's log for why it refused the instance");
      } else if (r.Status !== 'Success') throw new PacsError(`${this.name}: storing ${o.sopInstanceUid} gave ${r.Status}`, 200, "see the archive's log for why it refused the instance");
    }
  }
}
