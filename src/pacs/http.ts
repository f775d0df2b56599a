/**
 * HTTP to a PACS (Orthanc's REST API, a DICOMweb server) with the global fetch: one place for the credentials
 * (HTTP Basic or a bearer token, sent in a header, never put in a URL), time-outs, and errors that say which server
 * and what to do. A 404 is its own error (the study was deleted meanwhile: the caller logs it and goes on); any
 * other failure is a PacsError the caller may retry.
 */
import { NextrayError } from '../util/errors.js';

export type PacsAuth = { user: string; password: string } | { token: string } | null;

export class PacsError extends NextrayError {
  /** HTTP status, or 0 when the server could not be reached. */
  readonly status: number;
  constructor(message: string, status: number, hint?: string, exitStatus = 1) {
    super(message, { code: 'ERR_PACS', exitStatus, ...(hint ? { hint } : {}) });
    this.name = 'PacsError';
    this.status = status;
  }
}

/** The resource is not there (HTTP 404): deleted since it was announced, or never stored. */
export class PacsNotFoundError extends PacsError {
  constructor(message: string) {
    super(message, 404);
    this.name = 'PacsNotFoundError';
  }
}

export interface HttpOptions {
  auth: PacsAuth;
  /** Per request (default 120 s: a study's WADO-RS answer can be large). */
  timeoutMs?: number;
}

/** A base URL without credentials and with one trailing slash. Credentials in it are refused: argv is visible in `ps`. */
export function baseUrl(url: string, flag: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PacsError(`${flag} ${url}: not a URL (give e.g. http://127.0.0.1:8042)`, 0, undefined, 2);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new PacsError(`${flag} ${url}: only http:// and https:// are supported`, 0, undefined, 2);
  if (u.username || u.password) {
    throw new PacsError(`${flag}: the URL holds credentials, which any user can read in the process list`, 0, 'remove them from the URL and set NEXTRAY_PACS_USER / NEXTRAY_PACS_PASSWORD (or NEXTRAY_PACS_TOKEN), or give --credentials FILE (mode 0600)', 2);
  }
  return u.href.endsWith('/') ? u.href : `${u.href}/`;
}

function authHeader(auth: PacsAuth): Record<string, string> {
  if (!auth) return {};
  if ('token' in auth) return { authorization: `Bearer ${auth.token}` };
  const b = new TextEncoder().encode(`${auth.user}:${auth.password}`);
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return { authorization: `Basic ${btoa(s)}` };
}

export interface HttpReply {
  status: number;
  headers: Headers;
  bytes: Uint8Array;
}

/** One request; throws PacsNotFoundError on 404, PacsError on other non-2xx answers and on network failures. */
export async function request(
  server: string,
  url: string,
  opts: HttpOptions,
  init: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string } = {},
): Promise<HttpReply> {
  const what = `${init.method ?? 'GET'} ${url}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: init.method ?? 'GET',
      headers: { ...authHeader(opts.auth), ...init.headers },
      ...(init.body !== undefined ? { body: init.body as BodyInit } : {}),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new PacsError(`${server}: ${what}: ${cause?.code ?? ''} ${cause?.message ?? (err as Error).message}`.replace(/\s+/g, ' '), 0, 'is the server running and the URL right?');
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (res.status === 404) throw new PacsNotFoundError(`${server}: ${what}: not found (HTTP 404)`);
  if (res.status === 401 || res.status === 403) {
    throw new PacsError(`${server}: ${what}: HTTP ${res.status}, the credentials were refused`, res.status, 'set NEXTRAY_PACS_USER and NEXTRAY_PACS_PASSWORD (or NEXTRAY_PACS_TOKEN), or give --credentials FILE');
  }
  if (res.status < 200 || res.status > 299) {
    const text = new TextDecoder().decode(bytes.subarray(0, 300)).replace(/\s+/g, ' ').trim();
    throw new PacsError(`${server}: ${what}: HTTP ${res.status}${text ? `: ${text}` : ''}`, res.status);
  }
  return { status: res.status, headers: res.headers, bytes };
}

export function json<T>(r: HttpReply, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(r.bytes)) as T;
  } catch {
    throw new PacsError(`${what}: the answer is not JSON`, r.status);
  }
}
