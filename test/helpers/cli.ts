/** Runs the real `nextray` CLI (bin/nextray.js over the compiled dist/) in a child process. */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

// The user-level cache (XDG_CACHE_HOME: ONNX Runtime's optimised graphs) of the commands a test runs: a temporary
// folder of this test process, unless the test names one, so that tests neither fill nor read the real ~/.cache.
let cacheHome: string | undefined;
function testCacheHome(): string {
  if (cacheHome === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'nextray-test-cache-'));
    cacheHome = dir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return cacheHome;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  const r: SpawnSyncReturns<string> = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'nextray.js'), ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, XDG_CACHE_HOME: testCacheHome(), ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 10 * 60 * 1000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
