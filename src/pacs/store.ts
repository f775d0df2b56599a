/**
 * Where a worker's studies come from and where its results go, whatever the archive: Orthanc's REST API
 * (./orthanc.ts), any DICOMweb server (./dicomweb.ts: QIDO-RS, WADO-RS, STOW-RS) or a folder (./folder.ts).
 * A study is first *indexed* (its series with Modality and Series Description, its instances with their UIDs:
 * one or two small queries), so series that the header gate refuses by Modality are never downloaded, and the
 * digest of the study's inputs is known before any pixel moves.
 */

/** Names a study in an archive: its Study Instance UID, and where the archive has one, its own id (Orthanc's). */
export interface StudyRef {
  studyInstanceUid?: string;
  /** Orthanc's study id. */
  id?: string;
  /** A folder archive: the study's files. */
  files?: string[];
}

export interface IndexedInstance {
  sopInstanceUid: string;
  /** When the index gives it (DICOMweb, a folder; Orthanc's REST index does not). */
  sopClassUid?: string;
  /** How the archive fetches it (Orthanc's instance id, a WADO-RS path, a file path). */
  key: string;
}

export interface IndexedSeries {
  seriesInstanceUid: string;
  modality?: string;
  description?: string;
  instances: IndexedInstance[];
}

export interface StudyIndex {
  studyInstanceUid: string;
  /** The archive's own id of the study (Orthanc), for messages. */
  id?: string;
  series: IndexedSeries[];
}

export interface ResultObject {
  seriesInstanceUid: string;
  sopInstanceUid: string;
  bytes: Uint8Array;
}

/** Studies in, DICOM files out of an archive. */
export interface StudySource {
  /** For messages: 'orthanc http://...', 'dicomweb http://...', 'folder /data'. */
  readonly name: string;
  /** The study's series and instances; throws PacsNotFoundError when the study is not (or no longer) there. */
  index(ref: StudyRef): Promise<StudyIndex>;
  /** One instance's DICOM file. */
  fetch(study: StudyIndex, series: IndexedSeries, instance: IndexedInstance): Promise<Uint8Array>;
  /** Every study of the archive (a producer enqueues them). */
  studies(): AsyncIterable<StudyRef>;
}

/** Where results go; `find` reads back an earlier result (to tell whether it is up to date). */
export interface ResultSink {
  readonly name: string;
  /** The stored object with this SOP Instance UID in the study, or null. */
  find(study: StudyIndex, seriesInstanceUid: string, sopInstanceUid: string): Promise<Uint8Array | null>;
  /** Stores the objects, replacing stored objects of the same SOP Instance UIDs. */
  store(study: StudyIndex, objects: readonly ResultObject[]): Promise<void>;
}
