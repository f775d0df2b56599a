/**
 * UIDs for the objects neXt-Ray writes, under the 2.25 root (PS3.5 B.2: "2.25." followed by a UUID as one
 * unsigned decimal integer; no registration needed). Result UIDs are derived, not random: the SHA-256 of a name —
 * the source Study Instance UID, the model's SHA-256 and the object's role — cut to a 128-bit UUID of version 8
 * (RFC 9562: custom, name-based). So predicting a study again with the same model gives the same SR Series and SOP
 * Instance UIDs, and a PACS replaces the earlier result instead of storing a second one; another model gives other
 * UIDs, and both results stay. Browser-safe (Web Crypto, in Node 20 as in the page).
 */

/** neXt-Ray's Implementation Class UID (PS3.7 D.3.3.2), a fixed 2.25 UID made once from a random UUID. */
export const IMPLEMENTATION_CLASS_UID = '2.25.73353272168268468480055932954071332946';

/** '2.25.<decimal>' of 16 bytes. */
export function uuidBytesToUid(b: Uint8Array): string {
  let n = 0n;
  for (const x of b.subarray(0, 16)) n = (n << 8n) | BigInt(x);
  return `2.25.${n.toString(10)}`;
}

/** The 2.25 UID of a version-8 UUID made from SHA-256(name). */
export async function derivedUid(name: string): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(name)));
  const b = digest.slice(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80; // version 8
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  return uuidBytesToUid(b);
}

/** A random 2.25 UID (for objects that are not results of a study, e.g. tests). */
export function randomUid(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80;
  return uuidBytesToUid(b);
}

export interface ResultUids {
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

/**
 * The UIDs of a study's results SR: a function of (source Study Instance UID, model SHA-256) only, so that a
 * re-run replaces rather than duplicates (see the module comment).
 */
export async function resultUids(studyInstanceUid: string, modelSha256: string): Promise<ResultUids> {
  const base = `nextray-result|${studyInstanceUid}|${modelSha256}`;
  return { seriesInstanceUid: await derivedUid(`${base}|series`), sopInstanceUid: await derivedUid(`${base}|sr`) };
}

/**
 * The UIDs of a study's heatmap Secondary Capture images: one series per (study, model) beside the SR's, one image
 * per source view (a function of the view's SOP Instance UID too), derived like resultUids so a re-run replaces.
 */
export async function heatmapUids(studyInstanceUid: string, modelSha256: string, sourceSopInstanceUid: string): Promise<ResultUids> {
  const base = `nextray-result|${studyInstanceUid}|${modelSha256}`;
  return { seriesInstanceUid: await derivedUid(`${base}|sc-series`), sopInstanceUid: await derivedUid(`${base}|sc|${sourceSopInstanceUid}`) };
}
