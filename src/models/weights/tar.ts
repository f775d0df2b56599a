/**
 * A minimal reader for POSIX/PAX tar archives held in memory, enough for the tar-based `torch.save` format of
 * PyTorch < 0.1.10, in which torchvision's original ImageNet weights (resnet18-5c106cde.pth,
 * resnet50-19c8e357.pth, resnet152-b121ed2d.pth, ...) are still published. Entries come back as views.
 */
import { WeightFormatError } from './types.js';

/** True when the 512-byte header at 0 carries the ustar magic. */
export function isTar(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 512 && String.fromCharCode(...bytes.subarray(257, 262)) === 'ustar';
}

function field(bytes: Uint8Array, start: number, len: number): string {
  let end = start;
  while (end < start + len && bytes[end] !== 0) end++;
  return new TextDecoder('utf-8').decode(bytes.subarray(start, end));
}

/** Regular files by name (PAX `path`/`size` records honoured, directories and links skipped). */
export function readTar(bytes: Uint8Array, source = '<bytes>'): Map<string, Uint8Array> {
  const fail = (msg: string): never => {
    throw new WeightFormatError(source, `tar archive: ${msg}`);
  };
  const files = new Map<string, Uint8Array>();
  let pos = 0;
  let pax: Record<string, string> = {};
  while (pos + 512 <= bytes.byteLength) {
    const header = bytes.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    // Header checksum: sum of all bytes with the checksum field itself counted as spaces.
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    const stored = Number.parseInt(field(header, 148, 8).trim() || 'x', 8);
    if (stored !== sum) fail(`header checksum mismatch at byte ${pos} (damaged or not a tar file)`);
    let name = field(header, 0, 100);
    const prefix = field(header, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
    let size = Number.parseInt(field(header, 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] as number);
    if (pax['path']) name = pax['path'];
    if (pax['size']) size = Number(pax['size']);
    if (!Number.isSafeInteger(size) || size < 0) fail(`bad size for '${name}'`);
    const start = pos + 512;
    if (start + size > bytes.byteLength) fail(`entry '${name}' runs past the end (${bytes.byteLength} bytes): truncated`);
    const body = bytes.subarray(start, start + size);
    pos = start + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      // PAX extended header for the next entry: "<len> key=value\n" records.
      pax = {};
      const text = new TextDecoder('utf-8').decode(body);
      for (const m of text.matchAll(/\d+ ([^=]+)=([^\n]*)\n/g)) pax[m[1]!] = m[2]!;
      continue;
    }
    pax = {};
    if (type === 'g') continue; // global PAX header: nothing needed from it
    if (type === '0' || type === '\0' || type === '7') files.set(name.replace(/^\.\//, ''), body);
  }
  return files;
}
