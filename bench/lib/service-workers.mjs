/**
 * Shared by the browser benches (browser.mjs, trace-warm.mjs): stop every service worker of a Playwright browser
 * context and wait until Chromium reports them stopped (as after the idle period that ends a worker), so the next
 * visit measures a later visit rather than a tab opened right after the last one.
 */
export async function stopWorkers(ctx, page) {
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('ServiceWorker.enable');
  await cdp.send('ServiceWorker.stopAllWorkers');
  for (let i = 0; i < 50; i++) {
    const running = await new Promise((r) => {
      const t = setTimeout(() => r(false), 100);
      cdp.once('ServiceWorker.workerVersionUpdated', (e) => {
        clearTimeout(t);
        r(e.versions.some((v) => v.runningStatus !== 'stopped'));
      });
    });
    if (!running) break;
  }
  await cdp.detach();
}
