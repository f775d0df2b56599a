/**
 * src/engine/gradients.ts loads tfjs-core's gradient sources through a module-loader hook scoped to tfjs-core's
 * dist/ folder (they are not reachable through the package's public entry). That is tfjs-core's internal layout,
 * so this test pins the version it was verified on: a TF.js upgrade fails here, loudly, until the hook is
 * re-checked; and it checks that every gradient of the ops the models train with is registered and correct.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { initEngine, tf } from '../../src/engine/index.js';
import { VERIFIED_TFJS_CORE } from '../../src/engine/gradients.js';

describe('TF.js gradients through the tfjs-core loader hook', () => {
  it(`runs on the tfjs-core version the hook was verified on (${VERIFIED_TFJS_CORE})`, () => {
    assert.equal(
      tf.version_core,
      VERIFIED_TFJS_CORE,
      `tfjs-core is ${tf.version_core}: re-verify src/engine/gradients.ts (dist/register_all_gradients.js, dist/engine.js, ` +
        'extensionless imports) against it, then set VERIFIED_TFJS_CORE',
    );
  });

  it('registers a gradient for every gradient source tfjs-core ships and every op the models train with', async () => {
    await initEngine('cpu');
    const dist = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-core'));
    const sources = readdirSync(join(dist, 'gradients')).filter((f) => f.endsWith('_grad.js'));
    assert.ok(sources.length > 90, `only ${sources.length} gradient sources in ${dist}/gradients`);
    const used = ['Conv2D', 'Conv2DBackpropInput', 'FusedBatchNorm', 'MaxPool', 'AvgPool', 'Concat', 'BatchMatMul', 'Mean', 'Relu',
      'Add', 'Sub', 'Multiply', 'RealDiv', 'Sum', 'Reshape', 'Sigmoid', 'Log', 'Log1p', 'Exp', 'Maximum', 'Square', 'Sqrt', 'Rsqrt',
      'Slice', 'Cast', 'Neg', 'Abs', 'Select', 'PadV2', 'Transpose'];
    const missing = used.filter((k) => tf.getGradient(k) === undefined);
    assert.deepEqual(missing, [], `no gradient registered for ${missing.join(', ')}`);
  });

  it('computes a convolution gradient by hand', async () => {
    await initEngine('cpu');
    // y = sum(conv2d(x, w)), x a 2x2 image of ones, w a 3x3 filter of ones, 'same' padding: each of the 4 outputs'
    // windows covers all 4 input pixels, so dy/dx = 4 everywhere.
    const x = tf.ones([1, 2, 2, 1]) as tf.Tensor4D;
    const w = tf.ones([3, 3, 1, 1]) as tf.Tensor4D;
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, w, 1, 'same')))(x);
    assert.deepEqual(Array.from(g.dataSync()), [4, 4, 4, 4]);
    tf.dispose([x, w, g]);
  });
});
