/** Paths tests need: the repository root, the shared torchvision fixtures, a fresh temporary folder. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'nextray') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`package.json of nextray not found above ${start}`);
    dir = up;
  }
}

export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
/** torchvision parity fixtures, shipped beside the repository (never copied into it). */
export const TORCHVISION_FIXTURES = resolve(REPO_ROOT, '..', 'shared', 'fixtures', 'torchvision');

/** A new empty temporary directory; call the returned cleanup in `after`. */
export function tempDir(prefix = 'nextray-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
