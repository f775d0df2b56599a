/** Paths tests need: the repository root, the torchvision fixtures (in-repo small, shared large), a temporary folder. */
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
/**
 * Small torchvision parity fixtures inside the repository (narrow networks of torchvision's own block types, about
 * 1 MB; made by test/fixtures/torchvision-small/make.py): every parity/import test runs on these, always.
 */
export const SMALL_FIXTURES = resolve(REPO_ROOT, 'test', 'fixtures', 'torchvision-small');
/**
 * The large torchvision parity fixtures (resnet18, bottleneck_mini, densenet121: torchvision widths, ~160 MB),
 * shipped beside the repository, never copied into it. May be absent (a fresh clone): see SHARED_FIXTURES_SKIP.
 */
export const TORCHVISION_FIXTURES = resolve(REPO_ROOT, '..', 'shared', 'fixtures', 'torchvision');
/**
 * `false` when the large fixtures are present, else the reason to give `test(..., { skip })`: tests that need
 * torchvision-width networks (the zoo's resnet18/densenet121 through the CLI) run only beside them.
 */
export const SHARED_FIXTURES_SKIP: string | false = existsSync(join(TORCHVISION_FIXTURES, 'resnet18.safetensors'))
  ? false
  : `large torchvision fixtures not found at ${TORCHVISION_FIXTURES} (only beside the repository, not in a fresh clone); the in-repo test/fixtures/torchvision-small cover parity`;

/** A new empty temporary directory; call the returned cleanup in `after`. */
export function tempDir(prefix = 'nextray-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
