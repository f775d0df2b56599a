/**
 * Credentials for a PACS and for Redis, from the environment or a file only readable by its owner — never from the
 * command line, which every user of the machine can read in `ps`. Node.
 *
 *   NEXTRAY_PACS_USER + NEXTRAY_PACS_PASSWORD    HTTP Basic (Orthanc's RegisteredUsers, most DICOMweb servers)
 *   NEXTRAY_PACS_TOKEN                           a bearer token (OAuth DICOMweb servers)
 *   --credentials FILE                           {"user": "...", "password": "..."} or {"token": "..."}, mode 0600
 *   NEXTRAY_REDIS_URL / NEXTRAY_REDIS_PASSWORD   Redis (a URL with a password is refused on the command line)
 */
import { readFileSync, statSync } from 'node:fs';
import { NextrayError, EXIT_USAGE } from '../util/errors.js';
import type { PacsAuth } from './http.js';

export class CredentialsError extends NextrayError {
  constructor(message: string, hint?: string) {
    super(message, { code: 'ERR_PACS_CREDENTIALS', exitStatus: EXIT_USAGE, ...(hint ? { hint } : {}) });
    this.name = 'CredentialsError';
  }
}

/** Reads a credentials file, refusing one that others may read. */
function fromFile(file: string): PacsAuth {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new CredentialsError(`--credentials ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new CredentialsError(`--credentials ${file}: the file can be read by other users (mode ${(st.mode & 0o777).toString(8)})`, `chmod 600 ${file}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new CredentialsError(`--credentials ${file}: not JSON; write {"user": "...", "password": "..."} or {"token": "..."}`);
  }
  const o = v as { user?: unknown; username?: unknown; password?: unknown; token?: unknown };
  if (typeof o.token === 'string' && o.token) return { token: o.token };
  const user = typeof o.user === 'string' ? o.user : typeof o.username === 'string' ? o.username : undefined;
  if (user !== undefined && typeof o.password === 'string') return { user, password: o.password };
  throw new CredentialsError(`--credentials ${file}: give "user" and "password", or "token"`);
}

/** The PACS credentials: --credentials FILE, else the environment, else none. */
export function pacsAuth(credentialsFile: string | undefined, env: NodeJS.ProcessEnv = process.env): PacsAuth {
  if (credentialsFile) return fromFile(credentialsFile);
  if (env.NEXTRAY_PACS_TOKEN) return { token: env.NEXTRAY_PACS_TOKEN };
  if (env.NEXTRAY_PACS_PASSWORD !== undefined || env.NEXTRAY_PACS_USER !== undefined) {
    if (!env.NEXTRAY_PACS_USER || env.NEXTRAY_PACS_PASSWORD === undefined) throw new CredentialsError('set both NEXTRAY_PACS_USER and NEXTRAY_PACS_PASSWORD (or neither)');
    return { user: env.NEXTRAY_PACS_USER, password: env.NEXTRAY_PACS_PASSWORD };
  }
  return null;
}

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** For messages: the URL without its password. */
  shown: string;
}

/** The Redis to use: --redis URL (no password in it) or NEXTRAY_REDIS_URL, with NEXTRAY_REDIS_PASSWORD. */
export function redisTarget(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): RedisTarget {
  const raw = flag ?? env.NEXTRAY_REDIS_URL;
  if (!raw) throw new CredentialsError('give the queue\'s Redis: --redis redis://HOST:PORT (or set NEXTRAY_REDIS_URL)');
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new CredentialsError(`--redis ${flag ?? '(NEXTRAY_REDIS_URL)'}: not a URL; give redis://HOST:PORT`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new CredentialsError(`--redis: ${u.protocol} is not redis:// or rediss://`);
  if (flag !== undefined && u.password) {
    throw new CredentialsError('--redis: the URL holds a password, which any user can read in the process list', 'set NEXTRAY_REDIS_PASSWORD, or NEXTRAY_REDIS_URL with the password, instead');
  }
  const password = u.password ? decodeURIComponent(u.password) : env.NEXTRAY_REDIS_PASSWORD;
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db: Number.isInteger(db) ? db : 0,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(password ? { password } : {}),
    tls: u.protocol === 'rediss:',
    shown: `${u.protocol}//${u.hostname}:${u.port || 6379}${u.pathname.length > 1 ? u.pathname : ''}`,
  };
}
