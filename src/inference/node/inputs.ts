/**
 * What `nextray predict` was pointed at -> the image files to read: files as given, folders walked recursively
 * (sorted, hidden entries skipped) for PNG, JPEG and DICOM files — DICOM by extension (.dcm, .dicom, .dic) or, for
 * files without an extension, by the 'DICM' marker at byte 128. A MURA-layout dataset is a folder like any other:
 * its study folders group the results (src/inference/core/study.ts).
 */
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { isDicom } from '../../data/dicom/index.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.dcm', '.dicom', '.dic']);

export interface InputProblem {
  /** The input as given. */
  input: string;
  problem: string;
}

export interface ExpandedInputs {
  /** Image files, each as the user would write it (the argument, or argument + '/' + path inside the folder). */
  files: string[];
  /** Inputs that gave no files: missing paths, empty folders. */
  problems: InputProblem[];
}

function dicomWithoutExtension(path: string): boolean {
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

function walk(dir: string, shown: string, out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const abs = join(dir, e.name);
    const rel = shown.endsWith('/') ? shown + e.name : `${shown}/${e.name}`;
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        const st = statSync(abs);
        isDir = st.isDirectory();
        isFile = st.isFile();
      } catch {
        continue;
      }
    }
    if (isDir) walk(abs, rel, out);
    else if (isFile) {
      const ext = extname(e.name).toLowerCase();
      if (IMAGE_EXTENSIONS.has(ext) || (ext === '' && e.name !== 'DICOMDIR' && dicomWithoutExtension(abs))) out.push(rel);
    }
  }
}

/** Expands inputs (see the module comment); a file given explicitly is kept whatever its extension. */
export function expandInputs(inputs: readonly string[]): ExpandedInputs {
  const files: string[] = [];
  const problems: InputProblem[] = [];
  for (const input of inputs) {
    let st;
    try {
      st = statSync(input);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({ input, problem: code === 'ENOENT' ? 'file not found' : `cannot be read: ${(err as Error).message}` });
      continue;
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      try {
        walk(input, input, found);
      } catch (err) {
        problems.push({ input, problem: `folder cannot be read: ${(err as Error).message}` });
        continue;
      }
      if (!found.length) problems.push({ input, problem: 'folder holds no PNG, JPEG or DICOM files' });
      files.push(...found);
    } else files.push(input);
  }
  return { files, problems };
}
