/**
 * multipart/related bodies (RFC 2387 over RFC 2046 5.1) as DICOMweb uses them: WADO-RS answers a study or an
 * instance as one part per DICOM file (`multipart/related; type="application/dicom"`), STOW-RS takes files the same
 * way. Bytes in, bytes out; browser-safe.
 *
 * The parser follows RFC 2046: the body is split at each "CRLF--boundary" delimiter (the first may come without the
 * CRLF), the preamble before the first and the epilogue after the closing "--boundary--" are dropped, a delimiter
 * line may carry trailing white space, and each part is its header lines, an empty line and its content.
 */

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface Part {
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Uint8Array;
}

/** The value of a parameter of a Content-Type (quoted or not), e.g. boundary; undefined when absent. */
export function contentTypeParameter(contentType: string, name: string): string | undefined {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i');
  const m = re.exec(contentType);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0]!;
  const last = hay.length - needle.length;
  outer: for (let i = hay.indexOf(first, from); i !== -1 && i <= last; i = hay.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Where the line that starts at `i` ends (index of its CR or LF), and where the next line starts. */
function lineEnd(b: Uint8Array, i: number): { end: number; next: number } {
  let k = i;
  while (k < b.length && b[k] !== 0x0d && b[k] !== 0x0a) k++;
  if (k >= b.length) return { end: k, next: k };
  return { end: k, next: b[k] === 0x0d && b[k + 1] === 0x0a ? k + 2 : k + 1 };
}

function parseHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  let lastName: string | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && lastName) {
      headers[lastName] += ' ' + line.trim(); // folded header line
      continue;
    }
    const c = line.indexOf(':');
    if (c <= 0) continue;
    lastName = line.slice(0, c).trim().toLowerCase();
    headers[lastName] = line.slice(c + 1).trim();
  }
  return headers;
}

/** The parts of a multipart body whose Content-Type (with its boundary parameter) is `contentType`. */
export function parseMultipart(body: Uint8Array, contentType: string): Part[] {
  if (!/^\s*multipart\//i.test(contentType)) throw new MultipartError(`not a multipart body (Content-Type ${contentType || 'missing'})`);
  const boundary = contentTypeParameter(contentType, 'boundary');
  if (!boundary) throw new MultipartError(`multipart Content-Type without a boundary: ${contentType}`);
  const dash = ascii(`--${boundary}`);
  const delimiter = ascii(`\r\n--${boundary}`);
  // The first delimiter: at the very start, or after a preamble (then preceded by CRLF).
  let at = body.length >= dash.length && dash.every((x, i) => body[i] === x) ? 0 : indexOf(body, delimiter, 0);
  if (at === -1) throw new MultipartError(`no part found: the boundary "${boundary}" does not occur in the body`);
  if (at > 0) at += 2;
  const parts: Part[] = [];
  for (;;) {
    const after = at + dash.length;
    if (body[after] === 0x2d && body[after + 1] === 0x2d) return parts; // "--boundary--": the end
    const { next: start } = lineEnd(body, after); // the rest of the delimiter line (transport padding) is ignored
    const close = indexOf(body, delimiter, start);
    if (close === -1) throw new MultipartError(`part ${parts.length + 1} is not closed by a boundary: the body was cut short`);
    const part = body.subarray(start, close);
    // Headers end at the first empty line; a part may also have no headers at all (it then starts with CRLF).
    let headerEnd = -1;
    let contentStart = 0;
    if (part[0] === 0x0d && part[1] === 0x0a) contentStart = 2;
    else if (part[0] === 0x0a) contentStart = 1;
    else {
      const crlf = indexOf(part, ascii('\r\n\r\n'), 0);
      const lf = indexOf(part, ascii('\n\n'), 0);
      if (crlf !== -1 && (lf === -1 || crlf <= lf)) {
        headerEnd = crlf;
        contentStart = crlf + 4;
      } else if (lf !== -1) {
        headerEnd = lf;
        contentStart = lf + 2;
      } else throw new MultipartError(`part ${parts.length + 1} has no empty line after its headers`);
    }
    const headerText = headerEnd === -1 ? '' : String.fromCharCode(...part.subarray(0, headerEnd));
    parts.push({ headers: parseHeaders(headerText), body: part.subarray(contentStart) });
    at = close + 2;
  }
}

/** A random boundary that does not occur in any of the bodies. */
function boundaryFor(bodies: readonly Uint8Array[]): string {
  for (;;) {
    const rnd = globalThis.crypto.getRandomValues(new Uint8Array(12));
    const b = `nextray-${Array.from(rnd, (x) => x.toString(16).padStart(2, '0')).join('')}`;
    const needle = ascii(`--${b}`);
    if (bodies.every((x) => indexOf(x, needle, 0) === -1)) return b;
  }
}

/** A multipart/related body of `parts` (each of Content-Type `type`), and the Content-Type header to send it with. */
export function buildMultipart(parts: readonly Uint8Array[], type = 'application/dicom'): { body: Uint8Array; contentType: string } {
  const boundary = boundaryFor(parts);
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    chunks.push(ascii(`--${boundary}\r\nContent-Type: ${type}\r\nContent-Length: ${p.length}\r\n\r\n`), p, ascii('\r\n'));
  }
  chunks.push(ascii(`--${boundary}--\r\n`));
  const body = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    body.set(c, o);
    o += c.length;
  }
  return { body, contentType: `multipart/related; type="${type}"; boundary=${boundary}` };
}
