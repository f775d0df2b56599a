/**
 * How a native-engine test treats a missing addon: skipped with the reason on a machine without it (a fresh clone
 * without oneDNN still passes), but a failure when NEXTRAY_REQUIRE_NATIVE=1 (set by .ci/run), so CI can never
 * pass by silently skipping every native test.
 */
import { loadNativeAddon } from '../../src/engine/native-addon.js';

/** `false` when the addon loads, else the skip reason; throws (failing the test file) when the addon is required. */
export function nativeSkip(): false | string {
  const load = loadNativeAddon();
  if (load.ok) return false;
  if (process.env.NEXTRAY_REQUIRE_NATIVE === '1') {
    throw new Error(`NEXTRAY_REQUIRE_NATIVE=1 but the native addon is unavailable: ${load.reason}`);
  }
  return `native addon unavailable: ${load.reason}`;
}
