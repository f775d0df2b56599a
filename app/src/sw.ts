/**
 * The page's service worker (built into sw.js by app/vite.config.ts, with the list of the page's files and a version
 * hash of their contents put in at build time). Hand-written rather than Workbox because the three things it must do
 * are small and page-specific, and one of them Workbox does not do:
 *
 *  1. Precache the shell (index.html, the scripts and styles, the manifest and icons) at install, serve it cache-first,
 *     and drop the previous version's cache at activation. The page's address answers with the cached index.html
 *     when the network is gone.
 *  2. Keep the one onnxruntime-web build this browser uses (ort/…): stored when the page first fetches it or asks for
 *     it (message 'keep'), served cache-first afterwards; the cache name carries onnxruntime-web's version
 *     (runtime-cache.ts). On later visits the page reads the wasm from that cache itself (runtime.ts storedWasm).
 *  3. Add Cross-Origin-Opener-Policy / -Embedder-Policy to everything it serves, so the page is cross-origin isolated
 *     (SharedArrayBuffer, hence wasm threads) from its cache and on static hosts that send no such headers.
 *
 * Where the browser offers the static routing API (InstallEvent.addRoutes, Chromium 123+), the same decisions are also
 * given to the browser as routes at install: the shell and the runtime's wasm straight from Cache Storage, the model,
 * its description and the API straight to the network. A warm visit then needs no JavaScript of this worker at all —
 * a worker stopped after idling (as it is on any visit after the last one ended) is not started before the page and
 * its 14 MB runtime can load, and the wasm is not piped through this worker's thread. What a route finds nothing for
 * goes to the network; the page's 'keep' message then stores the runtime's wasm. The runtime's glue scripts (ort/*.mjs)
 * stay with the fetch handler: the threads' workers start from them, so they must always come with the isolation
 * headers this worker adds, also on their first fetch from a host that sends none.
 *
 * The model is not handled here: the page keeps it in Cache Storage under its SHA-256 (store.ts), because fetching
 * it may need the page's credentials and the page must notice when it changed. model.json and the server's API go
 * to the network untouched.
 */
import { runtimeCacheName } from './runtime-cache.js';

declare const self: ServiceWorkerGlobalScope;
declare const __PRECACHE__: string[];
declare const __VERSION__: string;
declare const __RUNTIME_VERSION__: string;

const SHELL = `nextray-shell-${__VERSION__}`;
const RUNTIME = runtimeCacheName(__RUNTIME_VERSION__);
const scope = new URL(self.registration.scope);
const at = (path: string): string => new URL(path, scope).href;
const PRECACHE = __PRECACHE__.map(at);
const INDEX = at('index.html');

/** A URLPattern init dict matching this worker's origin and `path` (relative to the scope; `*` is a wildcard). */
function pattern(path: string, search?: string): Record<string, string> {
  const escaped = path.replace(/[\\:(){}+?]/g, (c) => `\\${c}`);
  return {
    protocol: scope.protocol.slice(0, -1),
    hostname: scope.hostname,
    port: scope.port,
    pathname: scope.pathname + escaped,
    ...(search === undefined ? {} : { search }),
  };
}

/**
 * The routes (see the module comment), most specific first. The page's address and index.html match only without a
 * query (the cache holds them without one; other navigations go to the fetch handler).
 */
export function routes(precache: readonly string[]): { condition: { urlPattern: Record<string, string> }; source: 'cache' | 'network' }[] {
  const rel = (u: string): string => u.slice(scope.href.length);
  return [
    ...['model.json', 'model.onnx', 'v1/*', 'model/*'].map((p) => ({ condition: { urlPattern: pattern(p) }, source: 'network' as const })),
    { condition: { urlPattern: pattern('', '') }, source: 'cache' as const },
    { condition: { urlPattern: pattern('index.html', '') }, source: 'cache' as const },
    ...precache.filter((u) => u !== INDEX).map((u) => ({ condition: { urlPattern: pattern(rel(u)) }, source: 'cache' as const })),
    { condition: { urlPattern: pattern('ort/*.wasm') }, source: 'cache' as const },
  ];
}

self.addEventListener('install', (event) => {
  const addRoutes = (event as unknown as { addRoutes?: (r: unknown) => Promise<void> }).addRoutes;
  // A browser that refuses a route still has the fetch handler: routes only make it faster.
  if (addRoutes) event.waitUntil(addRoutes.call(event, routes(PRECACHE)).catch(() => undefined));
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL);
      // cache: 'reload' so a stale HTTP cache entry never ends up in a new version's precache. Stored with the
      // isolation headers already on, so what the cache answers later is the stored response itself (the browser
      // keeps compiled code beside a stored response, not beside a copy).
      await Promise.all(
        PRECACHE.map(async (u) => {
          const res = await fetch(new Request(u, { cache: 'reload' }));
          if (!res.ok) throw new Error(`${u}: HTTP ${res.status}`);
          const stored = isolated(res);
          // The page's own address too, for the route that answers its navigation from the cache.
          if (u === INDEX) await cache.put(scope.href, stored.clone());
          await cache.put(u, stored);
        }),
      );
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if ((name.startsWith('nextray-shell-') && name !== SHELL) || (name.startsWith('nextray-runtime-') && name !== RUNTIME)) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

/** The response with COOP/COEP (and CORP for same-origin subresources) added when missing. */
function isolated(res: Response): Response {
  if (res.type === 'opaque' || res.type === 'opaqueredirect' || res.status === 0) return res;
  if (res.headers.get('cross-origin-embedder-policy') && res.headers.get('cross-origin-opener-policy')) return res;
  const headers = new Headers(res.headers);
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  if (!headers.has('Cross-Origin-Resource-Policy')) headers.set('Cross-Origin-Resource-Policy', 'same-origin');
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

async function fromCacheOrNetwork(req: Request, cacheName: string, store: boolean): Promise<Response> {
  const cache = await caches.open(cacheName);
  const hit = await cache.match(req, { ignoreSearch: true });
  if (hit) return isolated(hit);
  const res = isolated(await fetch(req));
  if (store && res.ok) await cache.put(req, res.clone()).catch(() => undefined);
  return res;
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== scope.origin || !url.href.startsWith(scope.href)) return;
  const path = url.href.slice(scope.href.length);
  // The model, its description and the server's API: always the network (the page handles being offline).
  if (path === 'model.json' || path === 'model.onnx' || path.startsWith('v1/') || path.startsWith('model/')) return;
  if (req.mode === 'navigate' && (path === '' || path === 'index.html' || path.startsWith('?') || path.startsWith('#'))) {
    event.respondWith(
      (async () => {
        const cache = await caches.open(SHELL);
        const hit = (await cache.match(INDEX)) ?? null;
        if (hit) return isolated(hit);
        return isolated(await fetch(req));
      })(),
    );
    return;
  }
  if (path.startsWith('ort/')) {
    event.respondWith(fromCacheOrNetwork(req, RUNTIME, true));
    return;
  }
  if (PRECACHE.includes(url.origin + url.pathname)) {
    event.respondWith(fromCacheOrNetwork(req, SHELL, false));
    return;
  }
  event.respondWith(fetch(req).then(isolated));
});

self.addEventListener('message', (event) => {
  const data = event.data as { type?: string; urls?: string[] } | null;
  const port = event.ports[0];
  if (data?.type !== 'keep' || !Array.isArray(data.urls)) return;
  event.waitUntil(
    (async () => {
      try {
        const cache = await caches.open(RUNTIME);
        for (const u of data.urls!) {
          const url = new URL(u, scope);
          if (url.origin !== scope.origin || !url.href.startsWith(at('ort/'))) continue;
          if (await cache.match(url.href)) continue;
          const res = await fetch(url.href);
          if (!res.ok) throw new Error(`${url.href}: HTTP ${res.status}`);
          await cache.put(url.href, isolated(res));
        }
        port?.postMessage({ ok: true });
      } catch {
        port?.postMessage({ ok: false });
      }
    })(),
  );
});
