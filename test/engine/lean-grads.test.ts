/**
 * leanVariableGrads / leanGradients (src/engine/lean-grads.ts) against tf.variableGrads / tf.grads: the same
 * gradients bit for bit (same tape, same gradient functions, same order) on a small ResNet in training mode and
 * on graphs where one tensor feeds several ops (accumulated gradients) or a gradient is asked for an input;
 * a lower peak of live tensor bytes than TF.js's own backward pass; and no tensor leaks.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf, leanGradients, leanVariableGrads } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';

function rand(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

function flat(m: tf.NamedTensorMap): Map<string, Float32Array> {
  return new Map(Object.entries(m).map(([k, t]) => [k, t.dataSync() as Float32Array]));
}

describe('leanVariableGrads', () => {
  before(async () => {
    await initEngine('cpu');
  });

  it('takes the lean path on this tfjs-core (not the tf.variableGrads fallback)', () => {
    const v = tf.variable(tf.tensor1d([1, 2, 3]));
    const res = leanGradients(() => tf.sum(tf.square(v)), [v]);
    assert.ok(res, 'leanGradients fell back: tfjs-core engine internals changed');
    assert.deepEqual(Array.from(res.grads[0]!.dataSync()), [2, 4, 6]);
    tf.dispose([res.value, ...res.grads.filter((g): g is tf.Tensor => g !== null)]);
    v.dispose();
  });

  it('equals tf.variableGrads bit for bit on a ResNet-18 training step, and leaks nothing', async () => {
    const model = createModel('resnet18', { head: 'binary', seed: 3, dropout: 0 }); // no dropout: both passes see the same network
    const x = rand([2, 32, 32, 3], 5) as tf.Tensor4D;
    const y = tf.tensor1d([1, 0]);
    const vars = model.trainableVariables();
    const loss = () => tf.losses.sigmoidCrossEntropy(y, tf.reshape(model.forwardTrainable(model.forwardFrozen(x), true), [-1])) as tf.Scalar;

    const before = tf.memory().numTensors;
    let ref!: Map<string, Float32Array>;
    let refValue = 0;
    const refProfile = await tf.profile(() => {
      tf.tidy(() => {
        const r = tf.variableGrads(loss, vars);
        ref = flat(r.grads);
        refValue = r.value.dataSync()[0]!;
      });
    });
    let got!: Map<string, Float32Array>;
    let gotValue = 0;
    const leanProfile = await tf.profile(() => {
      tf.tidy(() => {
        const r = leanVariableGrads(loss, vars);
        got = flat(r.grads);
        gotValue = r.value.dataSync()[0]!;
      });
    });
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.equal(gotValue, refValue);
    assert.equal(got.size, ref.size);
    assert.equal(got.size, vars.length);
    for (const [name, g] of ref) assert.deepEqual(got.get(name), g, `gradient of ${name}`);
    // (At this size the weights and their gradients dominate the peak; the next test measures activations.)
    assert.ok(leanProfile.peakBytes <= refProfile.peakBytes, `peak ${leanProfile.peakBytes} vs ${refProfile.peakBytes}`);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('frees activations and their gradients during backward, where TF.js keeps them all to the end', () => {
    // A deep chain whose activations (1 MB each) dwarf its weights, like a ResNet at training resolution; each
    // layer in its own tidy, as the models' modules are. A probe at the bottom of the chain (the last node
    // backward visits) counts the data buffers still alive then. (tf.memory().numBytes cannot tell: it counts
    // a buffer once per tensor that shares it, and the tape saves clones.)
    const backend = tf.engine().backend as unknown as { numDataIds(): number };
    const x = rand([256, 1024], 1);
    const ws = Array.from({ length: 12 }, (_, i) => tf.variable(tf.add(rand([1024], 10 + i), 1)));
    let liveAtBottom = 0;
        const probe = tf.customGrad(((t: tf.Tensor) => ({
      value: tf.clone(t),
      gradFunc: (dy: tf.Tensor) => {
        liveAtBottom = backend.numDataIds();
        return tf.clone(dy);
      },
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    const f = () => {
      let h = tf.mul(x, ws[0]!);
      h = probe(h) as tf.Tensor;
      for (const w of ws.slice(1)) {
        const prev = h;
        h = tf.tidy(() => tf.tanh(tf.mul(prev, w)));
      }
      return tf.mean(h) as tf.Scalar;
    };
    const before = tf.memory().numTensors;
    let ref!: Map<string, Float32Array>;
    let got!: Map<string, Float32Array>;
    tf.tidy(() => void (ref = flat(tf.variableGrads(f, ws).grads)));
    const refLive = liveAtBottom;
    tf.tidy(() => void (got = flat(leanVariableGrads(f, ws).grads)));
    const leanLive = liveAtBottom;
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    for (const [name, g] of ref) assert.deepEqual(got.get(name), g, `gradient of ${name}`);
    // 11 layers above the probe: TF.js still holds each one's saved activation and its gradients.
    assert.ok(refLive - leanLive >= 2 * 11, `live buffers at the bottom: lean ${leanLive}, TF.js ${refLive}`);
    tf.dispose([x, ...ws]);
  });

  it('accumulates gradients of a tensor used several times, and gives gradients for plain input tensors', () => {
    const a = tf.tensor2d([[1, -2], [3, 0.5]]);
    const b = tf.tensor2d([[0.5, 1], [-1, 2]]);
    const f = () => {
      const h = tf.relu(tf.matMul(a, b));
      const s = tf.add(h, tf.mul(h, a)); // h feeds two ops; a feeds three
      return tf.sum(tf.mul(s, tf.sigmoid(s))) as tf.Scalar;
    };
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const ref = tf.grads(() => f())([a, b]);
      const lean = leanGradients(f, [a, b]);
      assert.ok(lean);
      for (let i = 0; i < 2; i++) assert.deepEqual(lean.grads[i]!.dataSync(), ref[i]!.dataSync());
    });
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([a, b]);
  });

  it('keeps a gradient that one closure returns for two inputs (customGrad), as tf.variableGrads does', () => {
    // g(a, b) = a * b, with a gradient that hands the same tensor to both inputs. g(v, 3v): v also feeds the loss
    // after g, so v's gradient is already in the map when g's node runs and the shared tensor is summed into it;
    // it must survive until g's second closure has returned it for 3v.
    const v = tf.variable(tf.tensor1d([1, 2]));
    const g = tf.customGrad(((x: tf.Tensor, y: tf.Tensor) => ({
      value: tf.mul(x, y),
      gradFunc: (dy: tf.Tensor) => {
        const shared = tf.mul(dy, 2);
        return [shared, shared];
      },
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    const f = () => tf.sum(tf.add(g(v, tf.mul(v, 3)) as tf.Tensor, tf.mul(v, 5))) as tf.Scalar;
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const ref = tf.variableGrads(f, [v]).grads[v.name]!.dataSync();
      const lean = leanVariableGrads(f, [v]).grads[v.name]!.dataSync();
      assert.deepEqual(Array.from(lean), Array.from(ref));
      assert.deepEqual(Array.from(lean), [2 + 2 * 3 + 5, 2 + 2 * 3 + 5]);
    });
    assert.equal(tf.memory().numTensors, before);
    v.dispose();
  });

  it('leaks nothing when the forward pass throws or the loss is not a scalar', () => {
    const v = tf.variable(tf.tensor1d([1, 2]));
    const before = tf.memory().numTensors;
    assert.throws(() => leanVariableGrads(() => {
      tf.square(tf.exp(v)); // saved for backward on the tape
      throw new Error('boom');
    }, [v]), /boom/);
    assert.equal(tf.memory().numTensors, before, 'after a throwing forward');
    assert.throws(() => leanVariableGrads(() => tf.square(v) as unknown as tf.Scalar, [v]), /must return a scalar/);
    assert.equal(tf.memory().numTensors, before, 'after a non-scalar loss');
    // The engine is usable afterwards.
    const r = leanVariableGrads(() => tf.sum(tf.square(v)), [v]);
    assert.deepEqual(Array.from(r.grads[v.name]!.dataSync()), [2, 4]);
    tf.dispose([r.value, ...Object.values(r.grads), v]);
  });

  it('skips variables the loss does not reach, and rejects a loss that reaches none', () => {
    const used = tf.variable(tf.scalar(2));
    const unused = tf.variable(tf.scalar(5));
    const r = leanVariableGrads(() => tf.square(used), [used, unused]);
    assert.deepEqual(Object.keys(r.grads), [used.name]);
    assert.equal(r.grads[used.name]!.dataSync()[0], 4);
    tf.dispose([r.value, ...Object.values(r.grads)]);
    assert.throws(() => leanVariableGrads(() => tf.scalar(1), [unused]), /connection between any variable/);
    tf.dispose([used, unused]);
  });
});
