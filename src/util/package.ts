/**
 * Where this package is installed and which version it is: found by walking up from this module to the
 * package.json named "nextray" (works from src/ under tsx and from dist/src/ after tsc, in a checkout or in
 * node_modules). Node-only. The one package-root walk (src/engine/native-addon.ts finds the addon with it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InstallError } from './errors.js';

let cachedRoot: { dir: string; version: string } | null | undefined;

function find(): { dir: string; version: string } | null {
  if (cachedRoot !== undefined) return cachedRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const j = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (j.name === 'nextray') return (cachedRoot = { dir, version: j.version ?? 'unknown' });
    }
    const up = dirname(dir);
    if (up === dir) return (cachedRoot = null);
    dir = up;
  }
}

/** The folder holding nextray's package.json; throws when it cannot be found (a broken install). */
export function packageRoot(): string {
  const r = find();
  if (!r) throw new InstallError(`package.json of nextray not found above ${dirname(fileURLToPath(import.meta.url))}`, { hint: 'the install is incomplete: reinstall neXt-Ray (npm ci in its folder)' });
  return r.dir;
}

/** nextray's version from its package.json, or 'unknown' when it cannot be found. */
export function packageVersion(): string {
  return find()?.version ?? 'unknown';
}

/** The version of an installed dependency (e.g. '@tensorflow/tfjs-core'), or 'unknown' when not resolvable. */
export function dependencyVersion(name: string): string {
  try {
    return (createRequire(import.meta.url)(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
