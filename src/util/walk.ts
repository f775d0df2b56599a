/**
 * The one walk over a user's folder (Node only). Whatever the folder holds, the walk ends and says what it left out:
 *  - each folder is entered once, known by device + inode: a symlink back to an enclosing folder (`s/up -> ..`) is a
 *    loop, and a second link to a folder already walked is a repeat; both are reported by name, not followed;
 *  - a symlink is followed once to what it names; a dangling link, a link loop (ELOOP) and anything that cannot be
 *    read (an unreadable subfolder, a link into one) are reported by name, and the walk goes on with the rest;
 *  - names are bytes: entries are read as Buffers and opened by those bytes, so a name that is not UTF-8 (Latin-1
 *    from an old archive, say) is found and opened like any other; it is shown with its invalid bytes as `\xHH`
 *    (`displayPath`), which is both printable and distinct for distinct names.
 * Entries are visited in byte order of their names, depth first; hidden entries (a leading '.') are skipped.
 */
import { readdirSync, readlinkSync, statSync, type Dirent, type Stats } from 'node:fs';

export interface WalkedFile {
  /** The path to open, as bytes. */
  path: Buffer;
  /** The path to show: the root as given + '/' + names (displayPath). */
  shown: string;
}

export interface WalkProblem {
  /** What was left out, as shown (displayPath). */
  shown: string;
  /** Why, in words. */
  problem: string;
}

export interface WalkResult {
  files: WalkedFile[];
  problems: WalkProblem[];
}

export interface WalkOptions {
  /** Keep this file? `name` is the entry's name as bytes, `path` the whole path. Default: every file. */
  accept?: (name: Buffer, path: Buffer) => boolean;
  /** Skip entries whose name starts with '.' (default true). */
  skipHidden?: boolean;
}

/**
 * A path (or name) in bytes as text: UTF-8 where it is valid UTF-8, each byte that is not part of a valid sequence as
 * `\xHH`. Equal for equal bytes only (a valid UTF-8 name never holds an invalid byte, so `\xHH` cannot stand for one).
 */
export function displayPath(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  let start = 0;
  const flush = (end: number): void => {
    if (end > start) out += Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8');
  };
  while (i < bytes.length) {
    const n = utf8SequenceLength(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    flush(i);
    out += `\\x${bytes[i]!.toString(16).toUpperCase().padStart(2, '0')}`;
    i++;
    start = i;
  }
  flush(i);
  return out;
}

/** Length of the valid UTF-8 sequence starting at `i` (1-4), or 0 when the byte there does not start one. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number): boolean => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xe0 && c1 < 0xa0) return 0; // overlong
    if (c === 0xed && c1 >= 0xa0) return 0; // surrogates
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xf0 && c1 < 0x90) return 0;
    if (c === 0xf4 && c1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}

const SLASH = Buffer.from('/');

function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return dir.length && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, SLASH, name]);
}

function joinShown(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'ENOENT') return 'no longer exists';
  if (e.code === 'ELOOP') return 'symlink loop (too many levels of links)';
  if (e.code === 'EIO') return 'input/output error (damaged disk or network share)';
  return e.code ?? e.message;
}

function linkTarget(path: Buffer): string {
  try {
    return displayPath(readlinkSync(path, { encoding: 'buffer' }));
  } catch {
    return '?';
  }
}

const key = (st: Stats): string => `${st.dev}:${st.ino}`;

/**
 * Walks the folder `root` (bytes or text; `shownRoot` is how to show it, default displayPath of its bytes). Throws
 * only when `root` itself cannot be listed (the caller reports that input); everything below is reported in
 * `problems`.
 */
export function walkFolder(root: string | Buffer, opts: WalkOptions & { shownRoot?: string } = {}): WalkResult {
  const rootBytes = typeof root === 'string' ? Buffer.from(root) : root;
  const shownRoot = opts.shownRoot ?? displayPath(rootBytes);
  const skipHidden = opts.skipHidden ?? true;
  const files: WalkedFile[] = [];
  const problems: WalkProblem[] = [];
  /** Folders entered so far (device:inode -> shown path) and the chain of folders enclosing the current one. */
  const entered = new Map<string, string>();
  const enclosing = new Set<string>();

  const rootStat = statSync(rootBytes);
  const visit = (dir: Buffer, shown: string, st: Stats): void => {
    const k = key(st);
    entered.set(k, shown);
    enclosing.add(k);
    try {
      let entries: Dirent<Buffer>[];
      try {
        entries = readdirSync(dir, { withFileTypes: true, encoding: 'buffer' });
      } catch (err) {
        if (dir === rootBytes) throw err;
        problems.push({ shown, problem: `folder cannot be read (${describe(err)}); the rest of the input goes on` });
        return;
      }
      entries.sort((a, b) => Buffer.compare(a.name, b.name));
      for (const e of entries) {
        if (skipHidden && e.name[0] === 0x2e) continue;
        const path = joinBytes(dir, e.name);
        const childShown = joinShown(shown, displayPath(e.name));
        const isLink = e.isSymbolicLink();
        if (e.isFile()) {
          if (!opts.accept || opts.accept(e.name, path)) files.push({ path, shown: childShown });
          continue;
        }
        let cst: Stats;
        try {
          // Follows a symlink to what it names (once), and gives a folder's device + inode.
          cst = statSync(path);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (isLink && code === 'ENOENT') problems.push({ shown: childShown, problem: `dangling symlink: its target ${linkTarget(path)} does not exist` });
          else if (isLink && code === 'ELOOP') problems.push({ shown: childShown, problem: `symlink loop: ${linkTarget(path)} leads back to itself` });
          else problems.push({ shown: childShown, problem: `cannot be read (${describe(err)})` });
          continue;
        }
        if (cst.isDirectory()) {
          const k2 = key(cst);
          if (enclosing.has(k2)) {
            problems.push({ shown: childShown, problem: `symlink loop: ${isLink ? linkTarget(path) : 'it'} leads back to the enclosing folder ${entered.get(k2)}; not followed` });
          } else if (entered.has(k2)) {
            problems.push({ shown: childShown, problem: `the same folder as ${entered.get(k2)}, already walked; not walked twice` });
          } else visit(path, childShown, cst);
        } else if (cst.isFile()) {
          if (!opts.accept || opts.accept(e.name, path)) files.push({ path, shown: childShown });
        }
        // Sockets, FIFOs and devices are not images: left out silently, as ls -R would list them but no tool reads them.
      }
    } finally {
      enclosing.delete(k);
    }
  };
  visit(rootBytes, shownRoot, rootStat);
  return { files, problems };
}
