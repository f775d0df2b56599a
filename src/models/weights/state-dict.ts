/**
 * Format detection and format-independent helpers for state_dicts: `parseStateDict` reads safetensors, torch.save
 * (zip or legacy) and .npz bytes by their magic bytes (never by file extension alone), and `compareStateDicts`
 * says precisely how two state_dicts differ (used for pth/safetensors parity and checkpoint round trips).
 * Pure: works on Uint8Arrays in Node and the browser.
 */
import { parseNpz, isNpy } from './npy.js';
import { looksLikeSafetensors, parseSafetensors } from './safetensors.js';
import { isLegacyTorch, parseTorchPth, type StateDictOptions } from './torch-pth.js';
import { WeightFormatError, type RawTensor, type StateDict } from './types.js';
import { bytesOf } from './dtype.js';
import { isTar } from './tar.js';
import { isZip, openZip } from './zip.js';

export type WeightFormat = 'safetensors' | 'torch-zip' | 'torch-legacy' | 'torch-tar' | 'npz' | 'npy' | 'unknown';

/** Identify a weight file from its first bytes (and, for ZIPs, its entry names). */
export function detectWeightFormat(bytes: Uint8Array): WeightFormat {
  if (isZip(bytes)) {
    try {
      const names = [...openZip(bytes).entries.keys()];
      if (names.some((n) => n === 'data.pkl' || n.endsWith('/data.pkl'))) return 'torch-zip';
      if (names.length && names.every((n) => n.endsWith('.npy'))) return 'npz';
    } catch {
      return 'torch-zip'; // a damaged ZIP: let the torch reader report what is wrong
    }
    return 'unknown';
  }
  if (isLegacyTorch(bytes)) return 'torch-legacy';
  if (isTar(bytes)) return 'torch-tar';
  if (isNpy(bytes)) return 'npy';
  if (looksLikeSafetensors(bytes)) return 'safetensors';
  return 'unknown';
}

export interface ParseStateDictOptions extends StateDictOptions {
  /** Always copy tensor data instead of viewing the given bytes (safetensors/npz). */
  copy?: boolean;
}

/** Parse any supported weight file into a StateDict (safetensors metadata is dropped: use parseSafetensors). */
export function parseStateDict(bytes: Uint8Array, opts: ParseStateDictOptions = {}): StateDict {
  const source = opts.source ?? '<bytes>';
  const format = detectWeightFormat(bytes);
  switch (format) {
    case 'safetensors':
      return parseSafetensors(bytes, opts).tensors;
    case 'torch-zip':
    case 'torch-legacy':
    case 'torch-tar':
      return parseTorchPth(bytes, opts);
    case 'npz':
      return parseNpz(bytes, opts);
    case 'npy':
      throw new WeightFormatError(source, 'this is a single NumPy array (.npy), not a state_dict; use parseNpy');
    default: {
      const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
      throw new WeightFormatError(
        source,
        `unrecognised weight file (first bytes: ${head || 'none, the file is empty'}); expected safetensors, ` +
          'a torch.save .pth/.pt file or a NumPy .npz',
      );
    }
  }
}

function sameBytes(a: RawTensor, b: RawTensor): boolean {
  const x = bytesOf(a.data);
  const y = bytesOf(b.data);
  if (x.byteLength !== y.byteLength) return false;
  for (let i = 0; i < x.byteLength; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Every difference between two state_dicts: missing/extra keys, dtype, shape and byte content (bit-exact;
 * NaNs compare by bit pattern). Empty when identical. Key order is ignored.
 */
export function compareStateDicts(a: StateDict, b: StateDict, limit = 20): string[] {
  const out: string[] = [];
  const push = (s: string): boolean => {
    out.push(s);
    return out.length < limit;
  };
  for (const k of a.keys()) if (!b.has(k) && !push(`only in first: ${k}`)) return out;
  for (const k of b.keys()) if (!a.has(k) && !push(`only in second: ${k}`)) return out;
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y) continue;
    let msg: string | null = null;
    if (x.dtype !== y.dtype) msg = `${k}: dtype ${x.dtype} vs ${y.dtype}`;
    else if (x.shape.length !== y.shape.length || x.shape.some((d, i) => d !== y.shape[i])) {
      msg = `${k}: shape [${x.shape.join(', ')}] vs [${y.shape.join(', ')}]`;
    } else if (!sameBytes(x, y)) msg = `${k}: values differ`;
    if (msg && !push(msg)) return out;
  }
  return out;
}
