// Small helpers every bench script uses.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The median of numbers (the mean of the two middle ones for an even count); null for none. */
export function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The value after `--name` in argv, else `dflt`. */
export function option(argv, name, dflt) {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
}

/** The repository's root folder (bench/lib/..). */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Imports a compiled module of the library: `fromDist('calibrate/adapt-host.js')` (needs `npm run build`). */
export function fromDist(p) {
  return import(join(repoRoot, 'dist', 'src', p));
}
