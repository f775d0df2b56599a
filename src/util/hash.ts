/**
 * SHA-256 as lowercase hex, the one helper for checkpoint file digests and dataset CSV fingerprints. Node-only
 * (node:crypto). Several parts (e.g. a list of chunks) are hashed as their concatenation.
 */
import { createHash } from 'node:crypto';

export function sha256Hex(...parts: Array<Uint8Array | string>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}
