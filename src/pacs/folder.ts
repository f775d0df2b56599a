/**
 * A folder of DICOM files as a study source (walked recursively; files grouped into studies by their headers), and
 * a folder as a result sink (DIR/<SOP Instance UID>.dcm, written atomically, so a result stored twice is one file).
 * For archives exported to disk and for queue runs without a PACS. Node.
 *
 * The walk is the shared one (src/util/walk.ts): each folder once by device + inode, so symlink loops end; loops,
 * dangling links and unreadable subfolders are named (onProblem) while the rest goes on; names that are not UTF-8
 * are shown with `\xHH` (the instance key) and opened by their bytes.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { isDicom, readDicomHeader } from '../data/dicom/index.js';
import { writeFileAtomic } from '../util/atomic.js';
import { walkFolder } from '../util/walk.js';
import { PacsNotFoundError } from './http.js';
import type { IndexedSeries, ResultObject, ResultSink, StudyIndex, StudyRef, StudySource } from './store.js';

export interface FolderSourceOptions {
  /** A part of a folder that was left out (a loop, a dangling link, an unreadable subfolder, a missing folder). */
  onProblem?: (path: string, problem: string) => void;
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

/** The header facts of one file (`file` as shown, opened by `path`), or null when it is no DICOM file with a Study Instance UID. */
function infoOf(file: string, path: string | Buffer = file): FileInfo | null {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
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
  /** The bytes of files whose shown name is not their UTF-8 bytes (names that are not UTF-8), from the last walk. */
  private readonly bytesOf = new Map<string, Buffer>();
  private walked = false;
  constructor(
    private readonly dirs: readonly string[],
    private readonly opts: FolderSourceOptions = {},
  ) {
    this.name = `folder ${dirs.join(', ')}`;
  }

  /** Every file under the folders, as shown; problems go to onProblem. */
  private walk(): string[] {
    const out: string[] = [];
    for (const d of this.dirs) {
      let res;
      try {
        res = walkFolder(d);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        this.opts.onProblem?.(d, code === 'ENOENT' ? 'folder not found' : `folder cannot be read: ${(err as Error).message}`);
        continue;
      }
      for (const p of res.problems) this.opts.onProblem?.(p.shown, p.problem);
      for (const f of res.files) {
        if (!f.path.equals(Buffer.from(f.shown))) this.bytesOf.set(f.shown, f.path);
        out.push(f.shown);
      }
    }
    this.walked = true;
    return out;
  }

  /** What to open for a file key: its bytes when its name is not UTF-8 (a fresh process walks once to learn them). */
  private pathOf(key: string): string | Buffer {
    if (!this.walked && key.includes('\\x')) this.walk();
    return this.bytesOf.get(key) ?? key;
  }

  /** Studies with their files (one walk over the folders, each header read once). */
  async *studies(): AsyncIterable<StudyRef> {
    const byStudy = new Map<string, string[]>();
    for (const f of this.walk()) {
      const info = infoOf(f, this.pathOf(f));
      if (info) byStudy.set(info.study, [...(byStudy.get(info.study) ?? []), f]);
    }
    for (const [uid, files] of byStudy) yield { studyInstanceUid: uid, files };
  }

  async index(ref: StudyRef): Promise<StudyIndex> {
    let files = ref.files;
    if (!files) {
      for await (const s of this.studies()) if (s.studyInstanceUid === ref.studyInstanceUid) files = s.files;
    }
    const infos = (files ?? []).map((f) => infoOf(f, this.pathOf(f))).filter((i): i is FileInfo => i !== null && (!ref.studyInstanceUid || i.study === ref.studyInstanceUid));
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
    return new Uint8Array(readFileSync(this.pathOf(instance.key)));
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
