/**
 * Where the page's onnxruntime-web build lives in Cache Storage: one cache per onnxruntime-web version, written by
 * the service worker (sw.ts) and read by the page itself on later visits (runtime.ts).
 */
export function runtimeCacheName(ortVersion: string): string {
  return `nextray-runtime-${ortVersion}`;
}
