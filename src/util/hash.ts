/**
 * SHA-256 as lowercase hex, the one helper for checkpoint and model file digests and dataset CSV fingerprints. Node-only
 * (node:crypto). Several parts (e.g. a list of chunks) are hashed as their concatenation.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export function sha256Hex(...parts: Array<Uint8Array | string>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** SHA-256 (lowercase hex) of a file's bytes, streamed in 4 MiB pieces (a 240 MB model never sits in memory twice). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
