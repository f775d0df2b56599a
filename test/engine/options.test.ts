/**
 * Engine settings: the NEXTRAY_* variables parse into one typed object (defaults where unset, a clear error naming
 * the variable for a bad value), and src/engine has no import cycle (fused-kernels.ts and native-backend.ts once
 * imported each other; the array pool now has a module of its own).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { DEFAULT_ENGINE_OPTIONS, engineOptionsFromEnv } from '../../src/engine/options.js';

describe('engine options from NEXTRAY_* variables', () => {
  it('gives the defaults for an empty environment', () => {
    assert.deepEqual(engineOptionsFromEnv({}), {
      engine: 'auto', threads: 0, elementwiseThreads: 0, addonPath: undefined, profile: false, poolMb: 512, weightCache: true, weightCachePixels: 4096,
      winograd: true, shortcutPostOp: 'binary', precision: 'fp32',
    });
    assert.deepEqual(engineOptionsFromEnv({}), DEFAULT_ENGINE_OPTIONS);
  });

  it('reads every variable', () => {
    const o = engineOptionsFromEnv({
      NEXTRAY_ENGINE: 'cpu', NEXTRAY_THREADS: '3', NEXTRAY_ELEMENTWISE_THREADS: '2', NEXTRAY_NATIVE_ADDON: '/x/a.node',
      NEXTRAY_PROFILE: '1', NEXTRAY_POOL_MB: '0', NEXTRAY_WEIGHT_CACHE: '0', NEXTRAY_WEIGHT_CACHE_PIXELS: '100',
      NEXTRAY_WINOGRAD: '0', NEXTRAY_SHORTCUT_POSTOP: 'sum', NEXTRAY_PRECISION: 'bf16',
    });
    assert.deepEqual(o, {
      engine: 'cpu', threads: 3, elementwiseThreads: 2, addonPath: '/x/a.node', profile: true, poolMb: 0, weightCache: false, weightCachePixels: 100,
      winograd: false, shortcutPostOp: 'sum', precision: 'bf16',
    });
  });

  it('rejects bad values naming the variable', () => {
    assert.throws(() => engineOptionsFromEnv({ NEXTRAY_ENGINE: 'gpu' }), /NEXTRAY_ENGINE: unknown engine 'gpu'/);
    assert.throws(() => engineOptionsFromEnv({ NEXTRAY_THREADS: 'two' }), /NEXTRAY_THREADS='two' is not a whole number/);
    assert.throws(() => engineOptionsFromEnv({ NEXTRAY_POOL_MB: '-1' }), /NEXTRAY_POOL_MB='-1'/);
    assert.throws(() => engineOptionsFromEnv({ NEXTRAY_WEIGHT_CACHE: 'yes' }), /NEXTRAY_WEIGHT_CACHE='yes' must be 0 or 1/);
    assert.throws(() => engineOptionsFromEnv({ NEXTRAY_SHORTCUT_POSTOP: 'add' }), /NEXTRAY_SHORTCUT_POSTOP='add' must be binary or sum/);
    assert.throws(() => engineOptionsFromEnv({ NEXTRAY_PRECISION: 'fp16' }), /NEXTRAY_PRECISION: unknown precision 'fp16'; use one of fp32, bf16/);
  });
});

describe('src/engine module graph', () => {
  it('has no import cycle', () => {
    const dir = fileURLToPath(new URL('../../src/engine/', import.meta.url));
    const files = readdirSync(dir).filter((f) => f.endsWith('.js'));
    const deps = new Map<string, string[]>();
    for (const f of files) {
      const src = readFileSync(join(dir, f), 'utf8');
      // Value imports only: `import type` is erased by tsc and never reaches the compiled file.
      deps.set(f, [...src.matchAll(/^(?:import|export)\s[^;]*?from\s+'\.\/([\w-]+\.js)'/gm)].map((m) => m[1]!));
    }
    assert.ok((deps.get('fused-kernels.js') ?? []).includes('array-pool.js'), 'the graph was read (fused-kernels imports array-pool)');
    const state = new Map<string, 'open' | 'done'>();
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      assert.notEqual(state.get(f), 'open', `import cycle: ${[...path, f].join(' -> ')}`);
      state.set(f, 'open');
      for (const d of deps.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
  });
});
