/** Launching Debian's Chromium through playwright-core for the app tests and the browser bench. */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.NEXTRAY_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * Why the browser tests cannot run here, or null when they can. With NEXTRAY_REQUIRE_BROWSER=1 (set by .ci/run) a
 * missing browser is an error, so CI cannot pass by skipping them.
 */
export function chromiumMissing(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const why = `${CHROMIUM} not found (apt-get install chromium, or set NEXTRAY_CHROMIUM)`;
  if (process.env.NEXTRAY_REQUIRE_BROWSER === '1') throw new Error(`NEXTRAY_REQUIRE_BROWSER=1: ${why}`);
  return why;
}

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A page where every request outside `origin` is aborted and recorded, so a test proves the app needs nothing
 * from the network.
 */
export async function offlinePage(browser: Browser, origin: string, viewport?: { width: number; height: number }): Promise<{ page: Page; blocked: string[]; consoleErrors: string[] }> {
  const context = await browser.newContext(viewport ? { viewport } : {});
  const page = await context.newPage();
  const blocked: string[] = [];
  const consoleErrors: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/') || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
    blocked.push(url);
    return route.abort('internetdisconnected');
  });
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return { page, blocked, consoleErrors };
}
