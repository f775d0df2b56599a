/**
 * The one normalisation of an HTTP request target, done before routing and before the token check, so that both
 * see the same path. Without it the check read the raw target while the router decoded it: `/%76%31/predict`,
 * `/model%2eonnx` or the absolute form `http://host/v1/health` reached a route the check had not recognised.
 *
 * The canonical form (RFC 3986 section 6.2.2):
 *  - absolute-form targets (`http://host:port/path`) lose their scheme and authority; only http and https;
 *  - percent-encoded unreserved characters (letters, digits, `-._~`) are decoded; other escapes stay, in upper-case
 *    hex, so the router's own single decoding step gives the real bytes and nothing is decoded twice;
 *  - dot segments (`.`, `..`, also when encoded) are resolved and empty segments (`//`) collapse;
 *  - the query string is kept as it was.
 * Refused (the server answers 400): the asterisk form and anything not starting with `/`, other schemes, fragments,
 * bad escapes (`%G1`, a lone `%`), encoded slashes and backslashes (`%2F`, `%5C`: a segment holding a slash means
 * something else to every layer), NUL, raw backslashes, control characters, spaces and non-ASCII bytes in the path,
 * and `..` above the root.
 */

export type NormalizedTarget =
  /** `target` = path, plus `?query` when the request had one: what the router and every hook see. */
  | { ok: true; path: string; query: string | null; target: string }
  | { ok: false; reason: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;
/** Characters allowed raw in a path (RFC 3986 pchar plus '/', '%' checked separately). */
const PATH_CHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]$/;

function hexValue(c: string): number {
  const n = parseInt(c, 16);
  return /^[0-9A-Fa-f]$/.test(c) ? n : -1;
}

/** `raw` (what the request line carried) -> its canonical path and query, or why it cannot be normalised. */
export function normalizeRequestTarget(raw: string): NormalizedTarget {
  let target = raw;
  if (target === '*') return { ok: false, reason: 'asterisk-form request target' };
  if (!target.startsWith('/')) {
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s.exec(target);
    if (!m) return { ok: false, reason: 'request target is neither a path nor an absolute URL' };
    const scheme = m[1]!.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return { ok: false, reason: `request target with scheme ${scheme}:` };
    if (m[2] === '') return { ok: false, reason: 'absolute URL without a host' };
    target = m[3]!;
    if (target === '' || target.startsWith('?')) target = '/' + target;
  }
  if (target.includes('#')) return { ok: false, reason: 'fragment in the request target' };
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? null : target.slice(q + 1);
  for (let i = 0; query !== null && i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return { ok: false, reason: 'control, space or non-ASCII character in the query' };
  }

  // Percent-decoding of unreserved characters; every other escape is validated and kept (upper-case).
  let path = '';
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i]!;
    if (ch === '\\') return { ok: false, reason: 'backslash in the path' };
    if (!PATH_CHAR.test(ch)) return { ok: false, reason: 'character not allowed in a path (control, space, quote or non-ASCII)' };
    if (ch !== '%') {
      path += ch;
      continue;
    }
    const hi = hexValue(rawPath[i + 1] ?? '');
    const lo = hexValue(rawPath[i + 2] ?? '');
    if (hi < 0 || lo < 0) return { ok: false, reason: 'malformed percent-escape in the path' };
    const code = hi * 16 + lo;
    i += 2;
    if (code === 0x2f || code === 0x5c) return { ok: false, reason: 'encoded slash or backslash in the path' };
    if (code === 0) return { ok: false, reason: 'encoded NUL in the path' };
    const decoded = String.fromCharCode(code);
    path += UNRESERVED.test(decoded) ? decoded : '%' + code.toString(16).toUpperCase().padStart(2, '0');
  }

  // Dot segments and empty segments.
  const out: string[] = [];
  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.' || s === '') {
      if (last) out.push('');
      continue;
    }
    if (s === '..') {
      if (out.length === 0) return { ok: false, reason: "'..' above the root" };
      out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  const canonical = '/' + out.join('/');
  return { ok: true, path: canonical, query, target: query === null ? canonical : `${canonical}?${query}` };
}
