/**
 * Where the page gets its model, online and offline.
 *
 * The server (or the folder `nextray app build` wrote) describes what it serves in a small `model.json`:
 * `{ file, sha256, bytes, name, runtimes }`. The page asks for it on every visit (network only, a few hundred bytes,
 * with a short timeout so a dead network does not hold the page up), keeps the model's bytes in Cache Storage under
 * their SHA-256 (`model/<sha256>` in the cache 'nextray-model'), downloads a model only when its SHA-256 is not stored
 * yet, checks the download against the SHA-256 before storing it, and removes the model it replaces. Offline, the
 * last description seen (localStorage) names the stored model to use.
 *
 * This lives in the page, not in the service worker, because the model request may need the page's credentials
 * (the server's token) and because the page must know when a new model replaced the old one (to say so).
 */
import { inference } from 'nextray/browser';

export interface Deployment {
  /** The model's file, relative to the page ('model.onnx'). */
  file: string;
  sha256: string;
  bytes: number;
  /** Short name of the model (file base name). */
  name?: string;
  /** onnxruntime-web builds shipped beside the page: 'wasm' always, 'webgpu' when included. */
  runtimes: string[];
}

export interface ModelSource {
  bytes: Uint8Array;
  deployment: Deployment;
  /** Where the bytes came from this time. */
  from: 'network' | 'cache';
  /** Whether the description could be fetched (false: offline, the stored model is used). */
  online: boolean;
  /** The server refused the description for want of its token; the stored model is used. */
  refused: boolean;
  /** The SHA-256 of the model this browser ran before, when it was another one. */
  replaced: string | null;
}

export const MODEL_CACHE = 'nextray-model';
const LAST_DEPLOYMENT = 'nextray.deployment';
const LAST_SHA = 'nextray.modelSha256';
/** How long to wait for model.json before going on offline (a captive or dead network can hang instead of failing). */
export const DESCRIPTION_TIMEOUT_MS = 4000;

export class ModelLoadError extends Error {}

function validDeployment(j: unknown): j is Deployment {
  const d = j as Deployment;
  return !!d && typeof d.file === 'string' && /^[0-9a-f]{64}$/.test(d.sha256) && typeof d.bytes === 'number' && Array.isArray(d.runtimes);
}

function storage(): Storage | null {
  try {
    return self.localStorage;
  } catch {
    return null;
  }
}

async function describe(headers: Record<string, string>): Promise<{ d: Deployment; online: boolean; refused?: boolean }> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), DESCRIPTION_TIMEOUT_MS);
  let res: Response | null = null;
  try {
    res = await fetch('model.json', { headers, cache: 'no-store', signal: ctl.signal });
  } catch {
    res = null;
  } finally {
    clearTimeout(timer);
  }
  const refused = res !== null && res.status === 401;
  if (res && res.ok) {
    const j = (await res.json()) as unknown;
    if (!validDeployment(j)) throw new ModelLoadError('model.json: not a model description ({ file, sha256, bytes, runtimes })');
    storage()?.setItem(LAST_DEPLOYMENT, JSON.stringify(j));
    return { d: j, online: true };
  }
  // Offline, or the server wants its token again (a browser restart ends the login session): the model stored on
  // an earlier visit still runs; a new one can only come with the token.
  const saved = storage()?.getItem(LAST_DEPLOYMENT);
  if (saved) {
    try {
      const j = JSON.parse(saved) as unknown;
      if (validDeployment(j)) return { d: j, online: false, refused };
    } catch {
      /* fall through */
    }
  }
  if (refused) throw new ModelLoadError('model.json: HTTP 401: this server needs its token (open the page as …/#token=<token>)');
  throw new ModelLoadError(
    res ? `model.json: HTTP ${res.status} from the server` : 'no network and no stored model: open this page once while it can reach its server, then it works offline',
  );
}

async function download(d: Deployment, headers: Record<string, string>, onProgress?: (done: number, total: number) => void): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(d.file, { headers, cache: 'no-store' });
  } catch (err) {
    throw new ModelLoadError(`${d.file}: cannot download the model (${(err as Error).message})`);
  }
  if (!res.ok) throw new ModelLoadError(`${d.file}: HTTP ${res.status}${res.status === 401 ? ' (open the page as …/#token=<token>)' : ''}`);
  const total = Number(res.headers.get('content-length')) || d.bytes;
  if (!res.body || !onProgress) return new Uint8Array(await res.arrayBuffer());
  const out = new Uint8Array(total);
  let done = 0;
  const parts: Uint8Array[] = [];
  const reader = res.body.getReader();
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    if (done + value.length <= out.length) out.set(value, done);
    parts.push(value);
    done += value.length;
    onProgress(done, total);
  }
  if (done === out.length) return out;
  const joined = new Uint8Array(done);
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  return joined;
}

/**
 * The runtimes the deployment seen last shipped (model.json's `runtimes`, kept in localStorage), null on a first
 * visit: lets the page start onnxruntime-web before this visit's model.json has answered.
 */
export function lastRuntimes(): string[] | null {
  try {
    const j = JSON.parse(storage()?.getItem(LAST_DEPLOYMENT) ?? 'null') as unknown;
    return validDeployment(j) ? j.runtimes : null;
  } catch {
    return null;
  }
}

/**
 * The model bytes for this visit (see the module comment). `onDescribed` is called as soon as the deployment is
 * known, before the model is read or downloaded (the page starts the runtime then, alongside).
 */
export async function loadModelBytes(
  headers: Record<string, string>,
  onProgress?: (done: number, total: number) => void,
  onDescribed?: (d: Deployment) => void,
): Promise<ModelSource> {
  const { d, online, refused = false } = await describe(headers);
  onDescribed?.(d);
  const cache = 'caches' in self ? await caches.open(MODEL_CACHE) : null;
  const key = new Request(new URL(`model/${d.sha256}`, location.href).href);
  const previous = storage()?.getItem(LAST_SHA) ?? null;
  let bytes: Uint8Array | null = null;
  let from: ModelSource['from'] = 'cache';
  const hit = cache ? await cache.match(key) : undefined;
  if (hit) bytes = new Uint8Array(await hit.arrayBuffer());
  if (!bytes) {
    if (!online) throw new ModelLoadError(`no network, and the model ${d.sha256.slice(0, 12)}… is not stored in this browser: open the page once while it can reach its server`);
    bytes = await download(d, headers, onProgress);
    from = 'network';
    const sha = await inference.digestSha256Hex(bytes);
    if (sha !== d.sha256) {
      throw new ModelLoadError(`${d.file}: the download's SHA-256 ${sha.slice(0, 12)}… differs from the ${d.sha256.slice(0, 12)}… model.json names (a partial download or a model replaced meanwhile); reload the page`);
    }
    if (cache) {
      try {
        await cache.put(key, new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream', 'x-nextray-sha256': sha } }));
        // One model at a time: the one replaced is removed (storage on small devices is scarce).
        for (const k of await cache.keys()) if (k.url !== key.url) await cache.delete(k);
      } catch {
        // Storage full or refused: the page still runs this visit, only not offline.
      }
    }
  }
  storage()?.setItem(LAST_SHA, d.sha256);
  return { bytes, deployment: d, from, online, refused, replaced: previous && previous !== d.sha256 ? previous : null };
}

/** Whether the model with this SHA-256 is stored in this browser. */
export async function modelStored(sha256: string): Promise<boolean> {
  if (!('caches' in self)) return false;
  const cache = await caches.open(MODEL_CACHE);
  return (await cache.match(new URL(`model/${sha256}`, location.href).href)) !== undefined;
}
