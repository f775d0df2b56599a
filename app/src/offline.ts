/**
 * The page's side of working offline: registering the service worker (sw.ts), asking it to keep the runtime build
 * this browser uses, and saying how much this browser stores.
 */

export interface OfflineState {
  /** Whether a service worker controls the page (the next visit works without network). */
  controlled: boolean;
  /** Bytes this origin stores (navigator.storage.estimate), when the browser says. */
  usage: number | null;
  quota: number | null;
  /** Whether the browser promised not to evict the storage under pressure. */
  persisted: boolean | null;
  /** Why the page cannot work offline, when it cannot. */
  problem: string | null;
}

const RELOADED = 'nextray.isolationReload';

/** Registers the service worker; resolves once one is active. Null when the browser has none (file://, old browser). */
export async function registerWorker(): Promise<ServiceWorkerRegistration | null> {
  if (!('serviceWorker' in navigator) || !self.isSecureContext) return null;
  try {
    const reg = await navigator.serviceWorker.register('./sw.js', { scope: './' });
    await navigator.serviceWorker.ready;
    return reg;
  } catch {
    return null;
  }
}

/**
 * A static host that sends no COOP/COEP leaves the first visit without threads; the service worker adds the headers
 * to what it serves, so once it controls the page, one reload makes the page cross-origin isolated. Done at most once
 * per tab session, and only before the user has picked anything. Returns true when a reload was started.
 */
export function reloadForIsolation(userBusy: () => boolean): Promise<boolean> {
  if (self.crossOriginIsolated || !('serviceWorker' in navigator)) return Promise.resolve(false);
  try {
    if (sessionStorage.getItem(RELOADED)) return Promise.resolve(false);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const go = (): void => {
      if (userBusy()) return resolve(false);
      sessionStorage.setItem(RELOADED, '1');
      location.reload();
      resolve(true);
    };
    if (navigator.serviceWorker.controller) go();
    else navigator.serviceWorker.addEventListener('controllerchange', go, { once: true });
  });
}

/** Asks the active service worker to store these same-origin files (the runtime build the page loaded). */
export async function keepFiles(urls: string[]): Promise<boolean> {
  const reg = await navigator.serviceWorker?.ready;
  const sw = reg?.active;
  if (!sw) return false;
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    const timer = setTimeout(() => resolve(false), 120_000);
    ch.port1.onmessage = (e: MessageEvent<{ ok: boolean }>) => {
      clearTimeout(timer);
      resolve(e.data.ok);
    };
    sw.postMessage({ type: 'keep', urls }, [ch.port2]);
  });
}

export async function offlineState(): Promise<OfflineState> {
  const s: OfflineState = { controlled: !!navigator.serviceWorker?.controller, usage: null, quota: null, persisted: null, problem: null };
  if (!('serviceWorker' in navigator)) s.problem = 'this browser has no service workers';
  else if (!self.isSecureContext) s.problem = 'the page is not served from a secure origin (https:// or http://127.0.0.1)';
  try {
    const e = await navigator.storage?.estimate();
    if (e) {
      s.usage = e.usage ?? null;
      s.quota = e.quota ?? null;
    }
    s.persisted = (await navigator.storage?.persisted?.()) ?? null;
  } catch {
    /* not offered */
  }
  return s;
}

/** Asks the browser to keep the stored files under storage pressure (it may say no; nothing depends on it). */
export async function askPersistence(): Promise<boolean | null> {
  try {
    return (await navigator.storage?.persist?.()) ?? null;
  } catch {
    return null;
  }
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}
