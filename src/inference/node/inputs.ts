/**
 * What `nextray predict` was pointed at -> the image files to read: files as given, folders walked recursively
 * (src/util/walk.ts: sorted, hidden entries skipped, each folder once by device + inode, links followed once,
 * loops, dangling links and unreadable subfolders named and left out while the rest goes on) for PNG, JPEG and
 * DICOM files — DICOM by extension (.dcm, .dicom, .dic) or, for files without an extension, by the 'DICM' marker at
 * byte 128. A MURA-layout dataset is a folder like any other: its study folders group the results
 * (src/inference/core/study.ts).
 *
 * Names are bytes: a file whose name is not UTF-8 is shown with `\xHH` for its odd bytes and opened by its bytes
 * (`openPaths`), also when given on the command line (src/util/argv.ts recovers the bytes Node decoded).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { isDicom } from '../../data/dicom/index.js';
import { argsAsBytes } from '../../util/argv.js';
import { displayPath, walkFolder } from '../../util/walk.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.dcm', '.dicom', '.dic']);

export interface InputProblem {
  /** The input as given, or the path inside a folder that was left out. */
  input: string;
  problem: string;
}

export interface ExpandedInputs {
  /** Image files, each as the user would write it (the argument, or argument + '/' + path inside the folder). */
  files: string[];
  /**
   * Inputs or parts of them that gave no files: missing paths, empty folders, unreadable subfolders, symlink loops,
   * dangling links. A problem inside a folder does not stop the rest of that folder.
   */
  problems: InputProblem[];
  /** The bytes to open for files whose shown name is not their UTF-8 bytes (names that are not UTF-8). */
  openPaths: Map<string, Buffer>;
}

function dicomWithoutExtension(path: Buffer): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = new Uint8Array(132);
    const n = readSync(fd, head, 0, 132, 0);
    return isDicom(head.subarray(0, n));
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function isImageName(name: Buffer, path: Buffer): boolean {
  const text = name.toString('latin1');
  const ext = extname(text).toLowerCase();
  return IMAGE_EXTENSIONS.has(ext) || (ext === '' && text !== 'DICOMDIR' && dicomWithoutExtension(path));
}

/** What to pass to fs for a file `expandInputs` listed: its bytes when its name is not UTF-8, else the name. */
export function pathToOpen(expanded: Pick<ExpandedInputs, 'openPaths'>, file: string): string | Buffer {
  return expanded.openPaths.get(file) ?? file;
}

/**
 * Expands inputs (see the module comment); a file given explicitly is kept whatever its extension. `known`: the
 * bytes of inputs already shown as `\xHH` text (the openPaths of an earlier expansion), so a listed file expands to
 * itself again.
 */
export function expandInputs(inputs: readonly string[], known?: ReadonlyMap<string, Uint8Array>): ExpandedInputs {
  const files: string[] = [];
  const problems: InputProblem[] = [];
  const openPaths = new Map<string, Buffer>();
  const bytes = argsAsBytes(inputs);
  const add = (shown: string, path: Buffer): void => {
    files.push(shown);
    if (!path.equals(Buffer.from(shown))) openPaths.set(shown, path);
  };
  inputs.forEach((arg, i) => {
    const knownBytes = known?.get(arg);
    const raw = knownBytes ? Buffer.from(knownBytes) : bytes[i]!;
    const input = knownBytes || raw.equals(Buffer.from(arg)) ? arg : displayPath(raw);
    let st;
    try {
      st = statSync(raw);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({ input, problem: code === 'ENOENT' ? 'file not found' : `cannot be read: ${(err as Error).message}` });
      return;
    }
    if (!st.isDirectory()) {
      add(input, raw);
      return;
    }
    let walked;
    try {
      walked = walkFolder(raw, { shownRoot: input, accept: isImageName });
    } catch (err) {
      problems.push({ input, problem: `folder cannot be read: ${(err as Error).message}` });
      return;
    }
    for (const p of walked.problems) problems.push({ input: p.shown, problem: p.problem });
    if (!walked.files.length && !walked.problems.length) problems.push({ input, problem: 'folder holds no PNG, JPEG or DICOM files' });
    for (const f of walked.files) add(f.shown, f.path);
  });
  return { files, problems, openPaths };
}
