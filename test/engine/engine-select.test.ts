/**
 * Engine selection in fresh child processes: 'auto' uses the native addon when it loads, falls back to the
 * pure-JS backend with exactly one stderr line when it does not, NEXTRAY_ENGINE and explicit names are
 * honoured, 'native' fails loudly when unavailable, and gradients are registered on every engine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { nativeSkip } from './require-native.js';

const engineUrl = new URL('../../src/engine/index.js', import.meta.url).href;

function child(code: string, env: Record<string, string | undefined>): { code: number; stdout: string; stderr: string } {
  const script = `import { initEngine, engineInfo, tf } from ${JSON.stringify(engineUrl)};\n${code}`;
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
    env: { ...process.env, NEXTRAY_ENGINE: undefined, NEXTRAY_NATIVE_ADDON: undefined, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const probe = `
const info = await initEngine();
const g = tf.grad((x) => tf.sum(tf.mul(x, x)))(tf.tensor([1, 2, 3])).arraySync();
console.log(JSON.stringify({ backend: tf.getBackend(), engine: info.engine, same: engineInfo() === info, g }));`;

describe('engine selection', () => {
  it('falls back to pure JS with one clear stderr line when the addon is missing', () => {
    const r = child(probe, { NEXTRAY_NATIVE_ADDON: '/nonexistent/nextray_native.node' });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.deepEqual(out, { backend: 'cpu', engine: 'cpu', same: true, g: [2, 4, 6] });
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('nextray:'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /pure-JS .*run: /);
  });

  it("'native' requested but unavailable is an error naming the fix", () => {
    const r = child(`try { await initEngine('native'); console.log('no error'); } catch (e) { console.log(e.message); }`,
      { NEXTRAY_NATIVE_ADDON: '/nonexistent/nextray_native.node' });
    assert.match(r.stdout, /engine 'native' unavailable: .*npm run build:native/);
  });

  it('NEXTRAY_ENGINE=cpu selects pure JS silently; an unknown name is rejected', () => {
    const r = child(probe, { NEXTRAY_ENGINE: 'cpu' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!).backend, 'cpu');
    assert.ok(!/nextray:/.test(r.stderr), r.stderr);
    const bad = child(`try { await initEngine(); } catch (e) { console.log(e.message); }`, { NEXTRAY_ENGINE: 'gpu' });
    assert.match(bad.stdout, /NEXTRAY_ENGINE: unknown engine 'gpu'/);
  });

  it("'auto' picks the native engine when the addon loads", { skip: nativeSkip() }, () => {
    const r = child(probe, {});
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { backend: 'nextray-native', engine: 'native', same: true, g: [2, 4, 6] });
    const d = child(`const i = await initEngine('native'); console.log(JSON.stringify([i.description, i.native.kernels]));`, {});
    const [description, kernels] = JSON.parse(d.stdout.trim().split('\n').pop()!) as [string, string[]];
    assert.match(description, /^native \(oneDNN \d+\.\d+\.\d+, \w+, \d+ threads\)/);
    for (const k of ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', 'MaxPoolGrad', 'AvgPoolGrad'])
      assert.ok(kernels.includes(k), `${k} is native`);
  });
});
