/**
 * Where the engine looks for the oneDNN addon: under the package root that src/util/package.ts finds (one walk up to
 * nextray's package.json for the whole package), and, when the modules sit outside any nextray package (a broken
 * install), a load reason that says where it looked instead of an exception.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { addonPath } from '../../src/engine/native-addon.js';
import { packageRoot } from '../../src/util/package.js';
import { tempDir } from '../helpers/paths.js';

test('the addon path is under the package root src/util/package.ts finds', () => {
  assert.equal(addonPath(''), join(packageRoot(), 'native', 'build', 'Release', 'nextray_native.node'));
  assert.equal(addonPath('/x/y.node'), '/x/y.node');
});

test('outside a nextray package: the load fails with a reason naming the folder it searched from', async () => {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/test/engine
  const dist = join(here, '..', '..', 'src');
  const tmp = tempDir('nextray-addon-root-');
  try {
    // The compiled modules the addon loader needs, in a folder with no nextray package.json above it
    // (a package.json of another package on the way is passed over).
    for (const f of ['engine/native-addon.js', 'engine/options.js', 'util/package.js', 'util/errors.js']) {
      mkdirSync(dirname(join(tmp.dir, 'src', f)), { recursive: true });
      cpSync(join(dist, f), join(tmp.dir, 'src', f));
    }
    writeFileSync(join(tmp.dir, 'package.json'), JSON.stringify({ name: 'not-nextray', type: 'module' }));
    const mod = (await import(pathToFileURL(join(tmp.dir, 'src', 'engine', 'native-addon.js')).href)) as typeof import('../../src/engine/native-addon.js');
    const r = mod.loadNativeAddon('');
    assert.equal(r.ok, false);
    assert.equal((r as { reason: string }).reason, `package.json of nextray not found above ${join(tmp.dir, 'src', 'util')}`);
  } finally {
    tmp.cleanup();
  }
});
