/**
 * A folder of DICOM files as a study source (walked recursively; files grouped into studies by their headers), and
 * a folder as a result sink (DIR/<SOP Instance UID>.dcm, written atomically, so a result stored twice is one file).
 * For archives exported to disk and for queue runs without a PACS. Node.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { isDicom, readDicomHeader } from '../data/dicom/index.js';
import { writeFileAtomic } from '../util/atomic.js';
import { PacsNotFoundError } from './http.js';
import type { IndexedSeries, ResultObject, ResultSink, StudyIndex, StudyRef, StudySource } from './store.js';

function* walk(dir: string): Generator<string> {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

interface FileInfo {
  file: string;
  study: string;
  series: string;
  sop: string;
  sopClass?: string;
  modality?: string;
  description?: string;
}

/** The header facts of one file, or null when it is no DICOM file with a Study Instance UID. */
function infoOf(file: string): FileInfo | null {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch {
    return null;
  }
  if (!isDicom(bytes.subarray(0, 132)) && !/\.(dcm|dicom|dic)$/i.test(file)) return null;
  try {
    const h = readDicomHeader(bytes, { source: file });
    if (!h.studyInstanceUid) return null;
    return {
      file,
      study: h.studyInstanceUid,
      series: h.seriesInstanceUid ?? `${h.studyInstanceUid}.unknown-series`,
      sop: h.sopInstanceUid ?? file,
      ...(h.sopClassUid ? { sopClass: h.sopClassUid } : {}),
      ...(h.modality ? { modality: h.modality } : {}),
      ...(h.series.description ? { description: h.series.description } : {}),
    };
  } catch {
    // Unreadable headers are named when the study is processed (the file then is in no study: logged here).
    return null;
  }
}

export class FolderSource implements StudySource {
  readonly name: string;
  constructor(private readonly dirs: readonly string[]) {
    this.name = `folder ${dirs.join(', ')}`;
  }

  /** Studies with their files (one walk over the folders, each header read once). */
  async *studies(): AsyncIterable<StudyRef> {
    const byStudy = new Map<string, string[]>();
    for (const d of this.dirs) {
      for (const f of walk(d)) {
        const info = infoOf(f);
        if (info) byStudy.set(info.study, [...(byStudy.get(info.study) ?? []), f]);
      }
    }
    for (const [uid, files] of byStudy) yield { studyInstanceUid: uid, files };
  }

  async index(ref: StudyRef): Promise<StudyIndex> {
    let files = ref.files;
    if (!files) {
      for await (const s of this.studies()) if (s.studyInstanceUid === ref.studyInstanceUid) files = s.files;
    }
    const infos = (files ?? []).map(infoOf).filter((i): i is FileInfo => i !== null && (!ref.studyInstanceUid || i.study === ref.studyInstanceUid));
    if (!infos.length) throw new PacsNotFoundError(`${this.name}: study ${ref.studyInstanceUid ?? '?'}: none of its files is there any more`);
    const series = new Map<string, IndexedSeries>();
    for (const i of infos) {
      let s = series.get(i.series);
      if (!s) series.set(i.series, (s = { seriesInstanceUid: i.series, ...(i.modality ? { modality: i.modality } : {}), ...(i.description ? { description: i.description } : {}), instances: [] }));
      s.instances.push({ sopInstanceUid: i.sop, ...(i.sopClass ? { sopClassUid: i.sopClass } : {}), key: i.file });
    }
    return { studyInstanceUid: infos[0]!.study, series: [...series.values()] };
  }

  async fetch(_study: StudyIndex, _series: IndexedSeries, instance: { key: string }): Promise<Uint8Array> {
    return new Uint8Array(readFileSync(instance.key));
  }
}

export class FolderSink implements ResultSink {
  readonly name: string;
  constructor(private readonly dir: string) {
    this.name = `folder ${dir}`;
  }

  async find(_study: StudyIndex, _series: string, sopInstanceUid: string): Promise<Uint8Array | null> {
    const f = join(this.dir, `${sopInstanceUid}.dcm`);
    return existsSync(f) ? new Uint8Array(readFileSync(f)) : null;
  }

  async store(_study: StudyIndex, objects: readonly ResultObject[]): Promise<void> {
    for (const o of objects) writeFileAtomic(join(this.dir, `${o.sopInstanceUid}.dcm`), o.bytes);
  }
}
